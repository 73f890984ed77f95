"""Reports for the hall: what citizens asked, what was answered, ratings, tickets and SLAs.

``python -m bot.servers.reports --from 2026-11-01 --to 2026-11-30`` prints the tables (``--json`` for
machines); the staff page draws the same figures as charts (``GET /api/reports``).
Questions are stored masked (:mod:`bot.privacy`), so a report never shows a phone number.
The figures come from the ticket store and the :class:`~bot.tickets.recorder.Recorder` on its
database; a ticket counts as due by the store's clock (:meth:`~bot.tickets.store.TicketStore.now`),
the same one the staff page shows overdue tickets by.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from typing import Any

from bot.errors import BotError
from bot.tickets.model import CATEGORIES
from bot.tickets.recorder import Recorder
from bot.tickets.store import TicketStore

#: Reply kinds that answered the citizen; the rest asked back or apologised.
ANSWERED = ("notification", "aspect", "life_event")


def report(store: TicketStore, start: dt.date, end: dt.date, titles: dict[str, str] | None = None,
           recorder: Recorder | None = None) -> dict[str, Any]:
    """All figures for the days ``start`` to ``end`` inclusive (questions and ratings from
    ``recorder``, by default the one on ``store``'s database)."""
    if end < start:
        raise BotError(f"the report ends ({end}) before it starts ({start})")
    lo = dt.datetime.combine(start, dt.time())
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    titles = titles or {}
    recorder = recorder or Recorder.over(store)
    now = store.now()
    asked = recorder.interactions_between(lo, hi)
    rated = recorder.ratings_between(lo, hi)
    made = store.created_between(lo, hi)
    answered = sum(1 for row in asked if row.kind in ANSWERED)
    unresolved = Counter(row.question for row in asked if row.kind not in ANSWERED and row.kind != "empty")
    per_day: dict[str, dict[str, int]] = {}
    day = start
    while day <= end:
        per_day[day.isoformat()] = {"answered": 0, "unresolved": 0}
        day += dt.timedelta(days=1)
    for row in asked:
        if row.kind == "empty":
            continue
        per_day[row.at.date().isoformat()]["answered" if row.kind in ANSWERED else "unresolved"] += 1
    by_item: dict[str, list[int]] = {}
    for rating_row in rated:
        by_item.setdefault(rating_row.guide_id or "", []).append(rating_row.rating)
    items: list[dict[str, Any]] = sorted(
        ({"guide_id": g or None, "title": titles.get(g, g or "（未关联事项）"), "count": len(v),
          "average": round(sum(v) / len(v), 2)} for g, v in by_item.items()),
        key=lambda x: (-x["count"], x["average"]))
    due = [t for t in made if t.resolved_at is not None or t.due_at <= now]
    on_time = [t for t in due if t.resolved_at is not None and t.resolved_at <= t.due_at]
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "questions": sum(1 for row in asked if row.kind != "empty"),
        "answered": answered,
        "unresolved": sum(unresolved.values()),
        "per_day": per_day,
        "top_unresolved": [{"question": q, "count": n} for q, n in unresolved.most_common(10)],
        "ratings": {
            "count": len(rated),
            "average": round(sum(r.rating for r in rated) / len(rated), 2) if rated else None,
            "by_level": {str(level): sum(1 for r in rated if r.rating == level) for level in range(1, 6)},
            "by_item": items[:20],
        },
        "tickets": {
            "count": len(made),
            "by_category": {code: sum(1 for t in made if t.category == code) for code in CATEGORIES},
            "open": sum(1 for t in made if t.status != "resolved"),
            "sla_due": len(due),
            "sla_met": len(on_time),
            "sla_compliance": round(len(on_time) / len(due), 4) if due else None,
        },
    }


def print_report(data: dict[str, Any]) -> None:
    print(f"报告期间 {data['from']} 至 {data['to']}")
    print(f"  咨询 {data['questions']} 次：解答 {data['answered']}，未解决 {data['unresolved']}")
    if data["top_unresolved"]:
        print("  未解决的问题（前10）：")
        for row in data["top_unresolved"]:
            print(f"    {row['count']:>4}  {row['question']}")
    r = data["ratings"]
    print(f"  评价 {r['count']} 条，平均 {r['average'] if r['average'] is not None else '-'}；"
          + "，".join(f"{k}星 {v}" for k, v in r["by_level"].items()))
    for row in r["by_item"][:10]:
        print(f"    {row['average']:>4}  ({row['count']})  {row['title']}")
    t = data["tickets"]
    sla = f"{t['sla_compliance']:.0%}" if t["sla_compliance"] is not None else "-"
    print(f"  工单 {t['count']} 件（未办结 {t['open']}），按时办结率 {sla}（{t['sla_met']}/{t['sla_due']}）")
    for code, n in t["by_category"].items():
        print(f"    {n:>4}  {CATEGORIES[code]}")


def main(argv: list[str] | None = None) -> int:
    from bot.tickets import open_store

    parser = argparse.ArgumentParser(prog="python -m bot.servers.reports", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", type=dt.date.fromisoformat,
                        help="first day (default: 29 days before --to)")
    parser.add_argument("--to", dest="end", type=dt.date.fromisoformat, help="last day (default: today in the hall)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        store = open_store()
        end = args.end or store.now().date()  # the hall's day, as the staff page counts it
        data = report(store, args.start or end - dt.timedelta(days=29), end)
    except BotError as error:
        print(f"reports: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print_report(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
