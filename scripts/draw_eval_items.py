"""Draw the items of the catalogue evaluation set (knowledge/eval/catalogue/) at random.

The set must represent the whole knowledge base as citizens search it, not the items someone
chose, so its items are drawn uniformly with a fixed seed. Question writers see only what this
script writes: each item's id, title, department and region (never aliases, typical questions
or any other field), plus the same three fields for every item, to find interchangeable ones.

    python scripts/draw_eval_items.py            # writes drawn.jsonl and catalogue.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.knowledge.base import KnowledgeBase  # noqa: E402

SEED = 20261202
DRAW = 440


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knowledge", type=Path, default=ROOT / "knowledge" / "guides")
    parser.add_argument("--out", type=Path, default=ROOT / "knowledge" / "eval" / "catalogue")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--draw", type=int, default=DRAW)
    args = parser.parse_args(argv)
    kb = KnowledgeBase.load(args.knowledge)
    rows = [{"id": g.id, "title": g.title, "department": g.department or "", "region": g.region or ""}
            for g in sorted(kb, key=lambda g: g.id)]
    drawn = random.Random(args.seed).sample(rows, args.draw)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, items in (("drawn.jsonl", drawn), ("catalogue.jsonl", rows)):
        with (args.out / name).open("w", encoding="utf-8") as out:
            for row in items:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"drew {len(drawn)} of {len(rows)} items (seed {args.seed}) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
