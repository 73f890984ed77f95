"""`make eval-conversations`: multi-turn conversations over real HTTP, each turn checked.

Starts the whole stack on loopback (ops.stack: the Rasa server and the action server from their
own venvs, as `make run` does), plays every conversation of
``knowledge/eval/conversations/conversations.jsonl`` through the guide channel (a fresh
conversation id each), and checks each turn's expectations against what a citizen would see:

* ``item``: the answer is about one of these guides (the items the answer reports, or the item
  it leaves under discussion);
* ``faq``: the answer is one of these FAQ entries;
* ``any`` / ``all`` / ``none``: strings in the reply's text;
* ``button_any``: a button whose title contains one of these;
* ``kind``: what sort of answer it is.

A conversation passes when every one of its turns does. Prints pass rates by split and by style and
writes every failure to ``results/conversations.json``. Tune on dev; the test split is frozen.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.channels import answer_of  # noqa: E402
from ops.stack import start_stack  # noqa: E402

CONVERSATIONS = ROOT / "knowledge" / "eval" / "conversations" / "conversations.jsonl"
TARGET = 0.95

#: ``kind`` expectations that are not an answer kind, recognised from the reply's text.
TEXT_KINDS: dict[str, Callable[[str], bool]] = {
    "ticket_filed": lambda text: "工单编号" in text and "查询码" in text,
    "ticket_status": lambda text: "工单 BC" in text or "没有找到与这个编号" in text,
    "rating_thanks": lambda text: "感谢您的评价" in text,
}
#: Answer kinds that answer a follow-up about the item under discussion.
FOLLOW_UP_KINDS = {"aspect", "passage", "follow_up"}


def reply_view(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What a turn's messages show: text, button titles, and the answers' kinds and items."""
    answers = [a for a in (answer_of(m) for m in messages) if a]
    items: set[str] = set()
    for answer in answers:
        items.update(item.id for item in answer.items)
        if answer.item_id:
            items.add(answer.item_id)
    return {
        "text": "\n".join(str(m.get("text") or "") for m in messages),
        "buttons": [str(b.get("title") or "") for m in messages for b in m.get("buttons") or []],
        "kinds": [a.kind for a in answers],
        "ids": [item.id for a in answers for item in a.items],
        "items": items,
    }


def check(expect: dict[str, Any], view: dict[str, Any]) -> list[str]:
    """The expectations this turn missed (empty when it passed)."""
    text, problems = view["text"], []
    if expect.get("item") and not set(expect["item"]) & view["items"]:
        problems.append(f"item: wanted one of {expect['item']}, got {sorted(view['items'])}")
    if expect.get("faq") and not ("faq" in view["kinds"] and set(expect["faq"]) & set(view["ids"])):
        problems.append(f"faq: wanted one of {expect['faq']}, got {view['kinds']} {view['ids']}")
    if expect.get("any") and not any(s in text for s in expect["any"]):
        problems.append(f"any: none of {expect['any']}")
    missing = [s for s in expect.get("all") or [] if s not in text]
    if missing:
        problems.append(f"all: missing {missing}")
    present = [s for s in expect.get("none") or [] if s in text]
    if present:
        problems.append(f"none: found {present}")
    if expect.get("button_any") and not any(s in b for b in view["buttons"] for s in expect["button_any"]):
        problems.append(f"button_any: none of {expect['button_any']} in {view['buttons']}")
    kind = expect.get("kind")
    if kind:
        ok = (TEXT_KINDS[kind](text) if kind in TEXT_KINDS
              else bool(FOLLOW_UP_KINDS & set(view["kinds"])) if kind == "follow_up" else kind in view["kinds"])
        if not ok:
            problems.append(f"kind: wanted {kind}, got {view['kinds']}")
    return problems


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(say: Callable[[str, str], list[dict[str, Any]]], conversations: list[dict[str, Any]]) -> dict[str, Any]:
    results = []
    for conversation in conversations:
        sender = f"conv-{conversation['id']}-{uuid.uuid4().hex[:6]}"
        failures = []
        for number, turn in enumerate(conversation["turns"], 1):
            view = reply_view(say(sender, turn["user"]))
            problems = check(turn.get("expect") or {}, view)
            if problems:
                failures.append({"turn": number, "user": turn["user"], "problems": problems,
                                 "reply": view["text"][:300], "kinds": view["kinds"]})
        results.append({"id": conversation["id"], "style": conversation["style"], "split": conversation["split"],
                        "passed": not failures, "failures": failures})
    return {"conversations": results, "summary": summarise(results)}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        for key in ("all", f"split:{r['split']}", f"style:{r['style']}", f"{r['split']}:{r['style']}"):
            groups[key].append(r["passed"])
    return {key: {"n": len(v), "passed": sum(v), "rate": round(sum(v) / len(v), 3)}
            for key, v in sorted(groups.items())}


def print_summary(summary: dict[str, Any]) -> None:
    def row(key: str, label: str) -> None:
        if key in summary:
            s = summary[key]
            print(f"  {label:<28}{s['passed']:>4}/{s['n']:<4} {s['rate']:.3f}")

    print(f"conversations passing (target {TARGET:.0%}):")
    for split in ("dev", "test"):
        row(f"split:{split}", split)
    row("all", "all")
    print("by style (dev / test):")
    styles = sorted({key.split(":", 1)[1] for key in summary if key.startswith("style:")})
    for style in styles:
        parts = []
        for split in ("dev", "test"):
            s = summary.get(f"{split}:{style}")
            parts.append(f"{s['passed']}/{s['n']}" if s else "-")
        print(f"  {style:<28}{parts[0]:>8}{parts[1]:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test", "all"), default="all")
    parser.add_argument("--style", help="only conversations of this style")
    parser.add_argument("--conversations", type=Path, default=CONVERSATIONS)
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "conversations.json")
    parser.add_argument("--failures", type=int, default=10, help="how many failed conversations to print")
    args = parser.parse_args(argv)
    conversations = [c for c in load(args.conversations) if args.split in ("all", c["split"])
                     and (not args.style or c["style"] == args.style)]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="guide-conversations-") as data:
        stack = start_stack(Path(data))
        try:
            report = run(stack.say, conversations)
        finally:
            stack.stop()
    report["seconds"] = round(time.monotonic() - started, 1)
    print_summary(report["summary"])
    failed = [r for r in report["conversations"] if not r["passed"]]
    for r in failed[: args.failures]:
        first = r["failures"][0]
        print(f"  FAIL {r['id']} ({r['style']}, {r['split']}) turn {first['turn']} {first['user']!r}: "
              f"{'; '.join(first['problems'])}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"{len(conversations)} conversations in {report['seconds']} s; details in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
