"""`make load`: a bounded load test on loopback — thousands of conversations, nothing lost.

Starts the whole stack (ops.stack) and runs N conversations (default 2,000), 20 at a time.
Each is one of: an item question with follow-ups and thanks; a life event; an off-topic
question; or (every 20th) a complete ticket filing through the form. It checks:

* zero 5xx responses and zero failed requests;
* zero lost tickets: every ticket number the assistant gave is in the ticket store, and the
  store holds no ticket the assistant did not announce;
* memory stable: the servers' resident memory at the end is within 15% of what it was after
  the first quarter (when caches are warm).

Prints a summary, writes results/load.json, and exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.answering.evaluate import DEFAULT_QUESTIONS, load_questions  # noqa: E402
from ops.stack import start_stack  # noqa: E402

NUMBER = re.compile(r"BC\d{8}-\d{4,}")
LIFE_EVENTS = ["生了孩子要办哪些手续", "我们要结婚了需要办什么", "我下个月退休，要办哪些事",
               "想开公司，从头到尾要办哪些事"]
OFF_TOPIC = ["今天天气怎么样", "给我讲个笑话", "这件衣服多少钱", "股票明天会涨吗"]
TICKET = ["转人工", "多次办理仍未办成", "在网上申请了三次都被退回，也没说原因", "张先生", None, "/affirm"]


def script(i: int, questions: list[str]) -> list[str]:
    if i % 20 == 0:
        return [f"1380000{i % 10000:04d}" if step is None else step for step in TICKET]
    kind = i % 4
    if kind == 0:
        return [LIFE_EVENTS[i % len(LIFE_EVENTS)], "谢谢"]
    if kind == 1:
        return [OFF_TOPIC[i % len(OFF_TOPIC)]]
    return [questions[i % len(questions)], "那要多少钱？", "在哪里办？", "谢谢"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "load.json")
    args = parser.parse_args()
    questions = [q.question for q in load_questions(DEFAULT_QUESTIONS) if q.expected]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    announced: set[str] = set()
    memory: list[dict[str, float | None]] = []
    lock = threading.Lock()
    done = 0

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        print("starting the servers ...", flush=True)
        stack = start_stack(data)
        url = f"{stack.rasa_url}/webhooks/guide/webhook"
        started = time.perf_counter()

        def run(i: int) -> None:
            nonlocal done
            sender = f"load-{i}"
            with httpx.Client(timeout=120) as client:
                for text in script(i, questions):
                    try:
                        response = client.post(url, json={"sender": sender, "message": text})
                    except httpx.HTTPError as exc:
                        with lock:
                            failures.append(f"{sender}: {type(exc).__name__}")
                        return
                    with lock:
                        statuses[response.status_code] += 1
                    if response.status_code != 200:
                        with lock:
                            failures.append(f"{sender}: HTTP {response.status_code}")
                        return
                    found = NUMBER.findall(json.dumps(response.json(), ensure_ascii=False))
                    if found and text == "/affirm":
                        with lock:
                            announced.update(found)
            with lock:
                done += 1
                if done % (args.conversations // 8 or 1) == 0:
                    memory.append({"after": done, "rasa_mb": stack.rasa.rss_mb(), "actions_mb": stack.actions.rss_mb()})
                    print(f"  {done} conversations, {time.perf_counter() - started:.0f} s", flush=True)

        try:
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                list(pool.map(run, range(args.conversations)))
            seconds = time.perf_counter() - started
            memory.append({"after": done, "rasa_mb": stack.rasa.rss_mb(), "actions_mb": stack.actions.rss_mb()})
        finally:
            stack.stop()
        with sqlite3.connect(data / "tickets.db") as db:
            stored = {row[0] for row in db.execute("select number from tickets")}

    expected_tickets = len(range(0, args.conversations, 20))
    quarter = next((m for m in memory if m["after"] >= args.conversations // 4), memory[0])
    growth = {
        name: round(((memory[-1][name] or 0) - (quarter[name] or 0)) / (quarter[name] or 1), 4)
        for name in ("rasa_mb", "actions_mb")
    }
    checks = {
        "no_5xx": not any(code >= 500 for code in statuses),
        "no_failed_requests": not failures,
        "no_lost_tickets": announced == stored and len(stored) == expected_tickets,
        "memory_stable": all(g < 0.15 for g in growth.values()),
    }
    report = {
        "conversations": args.conversations, "concurrency": args.concurrency, "seconds": round(seconds, 1),
        "messages": sum(statuses.values()), "messages_per_s": round(sum(statuses.values()) / seconds, 1),
        "statuses": dict(statuses), "failures": failures[:20],
        "tickets": {"expected": expected_tickets, "announced": len(announced), "stored": len(stored)},
        "memory": memory, "memory_growth_after_first_quarter": growth, "checks": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"{args.conversations} conversations, {report['messages']} messages in {report['seconds']} s "
          f"({report['messages_per_s']}/s); statuses {dict(statuses)}")
    print(f"tickets: {expected_tickets} filed, {len(announced)} announced, {len(stored)} stored")
    print(f"memory growth after the first quarter: {growth}")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(f"written to {args.out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
