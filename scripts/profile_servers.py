"""`make profile`: where each server's CPU goes per message, measured under load.

Starts the whole stack on loopback (ops.stack), keeps it busy with conversations (a question, a
follow-up, a question, a follow-up) from several clients at once, and samples both processes
with py-spy (a sampling profiler that attaches from outside: no code change, little overhead)
while /proc counts the CPU each process used. Every sample's stack is given to the first stage
whose marker it contains (the stages below, in order), so a stage's share of the busy samples
times the process's CPU per message is that stage's CPU per message. Samples where the event
loop waits are idle and not counted.

Writes results/profile-rasa.txt and results/profile-actions.txt (the stage table, then the
functions with the most samples under them) and results/profile.json; `make bench` includes it.

    .venv/actions/bin/python scripts/profile_servers.py [--seconds 40] [--clients 10]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import cpu_seconds, run_load  # noqa: E402

from bot.answering.evaluate import DEFAULT_QUESTIONS, load_questions  # noqa: E402
from ops.stack import Stack, start_stack  # noqa: E402

#: (stage, markers): a sample belongs to the first stage one of whose markers is in one of its frames.
RASA_STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("action reply validation (jsonschema)", ("_validate_action_result",)),
    ("action server call (HTTP, events)", ("rasa/core/actions/action.py",)),
    ("NLU pipeline (tokeniser, featurisers, DIET)", ("parse_message (rasa/core/processor.py",)),
    ("policy predictions (rules, memoisation)", ("_predict_next_with_tracker",)),
    ("tracker store: read", ("get_tracker (rasa/core/processor.py", "retrieve (rasa/core/tracker_store.py",
                             "last_bot_turn")),
    ("tracker store: write", ("save_tracker",)),
    ("lock store", ("rasa/core/lock_store.py",)),
    # Every message passes through the channel, so what Rasa itself does around the stages above
    # (events, slots, responses, the graph runner) is taken out before the channel's own share.
    ("Rasa's other message handling (events, slots, responses)", ("rasa/core/", "rasa/shared/", "rasa/engine/",
                                                                   "dask/")),
    ("channel (bot/channels: parsing, limits, JSON)", ("bot/channels/",)),
    ("other (Sanic, event loop, logging)", ("",)),
]
ACTION_STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("passage vectors for follow-ups (encoder, first time per item)", ("_passages (bot/answering/followup.py",)),
    ("query encoder", ("bot/knowledge/embedding/",)),
    ("FAISS search", ("faiss/", "bot/knowledge/index.py")),
    ("lexical scores (TF-IDF)", ("_Lexical", "sklearn/")),
    ("ranking features and calibration", ("bot/answering/ranking.py", "bot/answering/calibration.py",
                                          "_features (bot/answering/retrieval.py")),
    ("entities (spaCy, jieba)", ("bot/knowledge/entities.py", "spacy/", "jieba/")),
    ("follow-up scoring", ("bot/answering/followup.py",)),
    ("tickets and interaction log (SQLite)", ("bot/tickets/",)),
    ("rendering, speech, reply contract", ("bot/answering/answers.py", "bot/answering/speech.py", "to_answer",
                                           "bot/contract.py")),
    # What is left under the service (routing, scope, life events, normalising text) and the actions.
    ("the rest of answering (routing, scope, text)", ("bot/answering/", "bot/knowledge/", "actions/")),
    ("rasa-sdk, Sanic and JSON", ("rasa_sdk/", "sanic/", "json/")),
    ("other", ("",)),
]
#: A sample whose innermost frame is one of these is the event loop waiting: idle, not counted.
IDLE_LEAVES = re.compile(r"^(serve|run_forever|_run_once|select|poll|wait|sleep) \(")


def pyspy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).is_file() else None


def _frames(line: str) -> tuple[list[str], int] | None:
    line = line.rstrip()
    if not line or " " not in line:
        return None
    stack, count = line.rsplit(" ", 1)
    frames = [re.sub(r"\(/\S*?site-packages/", "(", f).replace(f"({ROOT}/", "(") for f in stack.split(";")]
    return frames, int(count)


def tables(raw: Path, stages: list[tuple[str, tuple[str, ...]]], cpu_ms: float) -> tuple[dict[str, float], str]:
    """(stage -> CPU ms per message, text table) from py-spy's raw (collapsed) output."""
    by_stage: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        parsed = _frames(line)
        if parsed is None:
            continue
        frames, count = parsed
        if IDLE_LEAVES.match(frames[-1]):
            continue
        busy += count
        stage = next(name for name, markers in stages if any(m in f for f in frames for m in markers))
        by_stage[stage] += count
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[frame] += count
    figures = {name: round(cpu_ms * by_stage[name] / max(busy, 1), 1) for name, _ in stages}
    lines = [f"CPU per message: {cpu_ms:.1f} ms ({busy} busy samples)", "", f"{'stage':<66}{'share':>7}{'ms':>8}"]
    for name, _ in stages:
        lines.append(f"{name:<66}{100 * by_stage[name] / max(busy, 1):>6.1f}%{figures[name]:>8.1f}")
    lines += ["", "functions with the most busy samples under them (inclusive):"]
    lines += [f"{100 * n / max(busy, 1):>6.1f}%  {frame[:150]}" for frame, n in inclusive.most_common(40)]
    return figures, "\n".join(lines) + "\n"


def profile(stack: Stack, questions: list[str], out_dir: Path, seconds: int = 40, clients: int = 10) -> dict:
    """Sample both servers for ``seconds`` under load from ``clients`` conversations at once."""
    spy = pyspy()
    if spy is None:
        return {"skipped": "py-spy is not installed (make profile installs it: requirements/profile.txt)"}
    assert stack.rasa.proc is not None and stack.actions.proc is not None
    pids = {"rasa": stack.rasa.proc.pid, "actions": stack.actions.proc.pid}
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raws = {name: Path(tmp) / f"{name}.txt" for name in pids}
        spies = [subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
                                   "--format", "raw", "--output", str(raws[name]), "--nonblocking",
                                   "--subprocesses"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for name, pid in pids.items()]
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        done = threading.Event()
        counted: list[int] = []

        def load() -> None:
            while not done.is_set():
                counted.append(run_load(stack, questions, clients, clients, 4)["messages"])

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        errors = [p.communicate()[1].decode(errors="replace") for p in spies]
        done.set()
        worker.join()  # the batch under way finishes: its messages and its CPU both count
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        messages = max(1, sum(counted))
        if not all(raw.is_file() for raw in raws.values()):
            return {"skipped": "py-spy could not attach (ptrace not permitted?): " + " ".join(errors)[-300:]}
        report: dict = {"messages": messages, "seconds": seconds, "clients": clients}
        for name, stages in (("rasa", RASA_STAGES), ("actions", ACTION_STAGES)):
            cpu_ms = (after[name] - before[name]) * 1000 / messages
            figures, text = tables(raws[name], stages, cpu_ms)
            (out_dir / f"profile-{name}.txt").write_text(text, encoding="utf-8")
            report[name] = {"cpu_ms_per_message": round(cpu_ms, 1), "stages_ms": figures,
                            "table": f"results/profile-{name}.txt"}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    questions = [q.question for q in load_questions(DEFAULT_QUESTIONS) if q.split == "test" and q.expected]
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            run_load(stack, questions, 10, 5, 4)  # warm: models loaded, caches as after a few minutes
            report = profile(stack, questions, ROOT / "results", args.seconds, args.clients)
        finally:
            stack.stop()
    (ROOT / "results" / "profile.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                                                   encoding="utf-8")
    if "skipped" in report:
        print(report["skipped"])
        return 1
    for name in ("rasa", "actions"):
        print((ROOT / "results" / f"profile-{name}.txt").read_text(encoding="utf-8").split("\n\nfunctions")[0], "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
