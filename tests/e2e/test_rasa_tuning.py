"""The Rasa server's CPU cuts (:mod:`bot.channels.tuning`, the SQLite tracker store's settings and
its last-turn read) change how much work a message costs, never what the citizen gets: checked
against the real Rasa server and, for the schema check, against jsonschema's own ``validate`` in
the Rasa server's virtual environment."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from ops.stack import RASA_BIN, ROOT, new_sender, texts

pytestmark = pytest.mark.e2e

SAME_AS_JSONSCHEMA = r"""
import jsonschema
from rasa.core.actions.action import RemoteAction
from bot.channels import tuning

spec = RemoteAction.action_response_format_spec()
cases = [
    {"events": [{"event": "slot", "name": "item", "value": "x", "timestamp": None}], "responses": [{"text": "好"}]},
    {"events": [{"event": 5}], "responses": []},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    [],
]

def outcome(validate, instance, schema):
    try:
        validate(instance, schema)
        return "ok"
    except jsonschema.ValidationError as error:
        return ("invalid", error.message, list(error.absolute_path))
    except jsonschema.SchemaError as error:
        return ("bad schema", error.message)

original = jsonschema.validate
for instance in cases:
    for _ in range(2):  # the second call uses the cached check
        assert outcome(tuning.validate, instance, spec) == outcome(original, instance, spec), instance
bad = {"type": "no such type"}
assert outcome(tuning.validate, {}, bad)[0] == "bad schema" == outcome(original, {}, bad)[0]
tuning.apply()
assert jsonschema.validate is tuning.validate
print("same")
"""


def test_the_cached_schema_check_decides_exactly_as_jsonschema():
    done = subprocess.run([str(RASA_BIN.with_name("python")), "-c", SAME_AS_JSONSCHEMA], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip().endswith("same"), done.stderr[-2000:]


def test_the_sqlite_tracker_store_runs_in_wal_mode(servers):
    servers.say(new_sender("e2e"), "你好")
    with sqlite3.connect(servers.env["RASA_TRACKER_DB"]) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("typed", ["第一个", "1", "{title}"])
def test_typing_a_button_reads_the_last_turn_from_the_store(servers, typed):
    user = new_sender("e2e")
    messages = servers.say(user, "身份证")
    buttons = [b for m in messages for b in m.get("buttons", [])]
    assert len(buttons) >= 2, messages
    chosen = texts(servers.say(user, typed.format(title=buttons[0]["title"])))
    assert "一次性告知" in chosen and buttons[0]["title"].split("（")[0][:6] in chosen, chosen


EVENT_TABLE_SAME = r"""
from rasa.shared.core.events import Event
from rasa.shared.utils.common import all_subclasses
from bot.channels import tuning

original = Event.resolve_by_type
names = sorted({cls.type_name for cls in all_subclasses(Event)})
tuning.apply()
assert Event.resolve_by_type is not original
for name in names + ["topic"]:
    assert Event.resolve_by_type(name) is original(name), name
assert Event.resolve_by_type("no-such-event", default=Event) is Event
try:
    Event.resolve_by_type("no-such-event")
except ValueError as error:
    assert "no-such-event" in str(error)
else:
    raise AssertionError("an unknown event name must raise")

class LaterEvent(Event):  # a class defined after the table was built is still found
    type_name = "later_event_for_the_test"
    def __eq__(self, other): return isinstance(other, LaterEvent)
    def __hash__(self): return 1
    def as_story_string(self): return None
assert Event.resolve_by_type("later_event_for_the_test") is LaterEvent
print("same", len(names))
"""


def rasa_python(script: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RASA_BIN.with_name("python")), "-c", script], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_event_classes_from_the_table_are_the_ones_rasa_would_find():
    done = rasa_python(EVENT_TABLE_SAME)
    assert done.returncode == 0 and done.stdout.strip().startswith("same"), done.stderr[-2000:]


SAME_TRACKER = r"""
import asyncio, sys, tempfile, os
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from bot.channels.tracker_store import MaskingSQLTrackerStore

domain = Domain.load("domain.yml")
db = os.path.join(tempfile.mkdtemp(), "t.db")
ours = MaskingSQLTrackerStore(domain=domain, dialect="sqlite", db=db)
theirs = SQLTrackerStore(domain=domain, dialect="sqlite", db=db)

async def main():
    tracker = DialogueStateTracker("c1", domain.slots)
    for round in range(2):  # two sessions: only the latest one is read back
        tracker.update(ActionExecuted("action_session_start"))
        tracker.update(SessionStarted())
        tracker.update(ActionExecuted("action_listen"))
        tracker.update(UserUttered(f"身份证丢了 {round}", intent={"name": "ask_guide", "confidence": 0.9}))
        tracker.update(SlotSet("item", "居民身份证补领"))
        tracker.update(BotUttered("答复", data={"custom": {"kind": "answer"}}))
        tracker.update(ActionExecuted("action_listen"))
        await ours.save(tracker)
    for full in (False, True):
        a = await ours._retrieve("c1", full)
        b = await theirs._retrieve("c1", full)
        assert [e.as_dict() for e in a.events] == [e.as_dict() for e in b.events], full
        assert a.current_slot_values() == b.current_slot_values()
    assert await ours.retrieve("nobody") is None
    before = len((await theirs.retrieve_full_tracker("c1")).events)
    read = await ours.retrieve("c1")  # read, changed and saved by this store: only the new events are added
    read.update(UserUttered("要多少钱", intent={"name": "ask_fee", "confidence": 0.9}))
    read.update(ActionExecuted("action_listen"))
    await ours.save(read)
    await ours.save(read)  # saving again adds nothing
    # a tracker this store did not read is counted by Rasa's own query
    other = DialogueStateTracker.from_dict("c1", [e.as_dict() for e in (await theirs.retrieve("c1")).events],
                                           domain.slots)
    other.update(ActionExecuted("action_listen"))
    await ours.save(other)
    after = [e.as_dict() for e in (await theirs.retrieve_full_tracker("c1")).events]
    assert len(after) == before + 3, (before, len(after))
    assert [e["event"] for e in after[-3:]] == ["user", "action", "action"], after[-3:]
    print("same", len(after))

asyncio.run(main())
"""


def test_the_tracker_read_of_the_data_column_gives_rasas_own_tracker():
    done = rasa_python(SAME_TRACKER)
    assert done.returncode == 0 and done.stdout.strip().startswith("same"), done.stderr[-2000:]


LOCKS_ACROSS_PROCESSES = r"""
import asyncio, multiprocessing, os, sys, tempfile, time, json
from rasa.utils.endpoints import EndpointConfig
from bot.channels.lock_store import SQLiteLockStore
from rasa.core.lock_store import LockError

path = os.path.join(tempfile.mkdtemp(), "locks.db")
store = SQLiteLockStore(EndpointConfig(type="bot.channels.lock_store.SQLiteLockStore", db=path))  # before the fork
log = os.path.join(os.path.dirname(path), "log")

def worker(n):
    async def go():
        for i in range(4):
            async with store.lock("one-conversation", wait_time_in_seconds=0.01):
                with open(log, "a") as f:
                    f.write(f"enter {n}\n")
                await asyncio.sleep(0.01)
                with open(log, "a") as f:
                    f.write(f"leave {n}\n")
    asyncio.run(go())

processes = [multiprocessing.get_context("fork").Process(target=worker, args=(n,)) for n in range(4)]
for p in processes: p.start()
for p in processes: p.join(60)
assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
lines = open(log).read().split()
pairs = [lines[i:i + 4] for i in range(0, len(lines), 4)]
assert len(pairs) == 16, lines
for enter, a, leave, b in pairs:  # nobody entered while another was inside
    assert (enter, leave) == ("enter", "leave") and a == b, pairs
assert store.get_lock("one-conversation") is None  # the last one out removed the lock

# tickets issued at once by several processes are all different
def issue(q):
    q.put([store.issue_ticket("c2") for _ in range(20)])
q = multiprocessing.get_context("fork").Queue()
ps = [multiprocessing.get_context("fork").Process(target=issue, args=(q,)) for _ in range(4)]
for p in ps: p.start()
tickets = [t for _ in ps for t in q.get(timeout=60)]
for p in ps: p.join(60)
assert sorted(tickets) == list(range(80)), sorted(tickets)

try:
    SQLiteLockStore(EndpointConfig(type="x", db="${RASA_LOCK_DB}"))
except LockError as error:
    assert "RASA_LOCK_DB" in str(error)
else:
    raise AssertionError("an unfilled db setting must be refused")
print("exclusive")
"""


def test_the_sqlite_lock_store_lets_one_process_at_a_time_into_a_conversation():
    done = rasa_python(LOCKS_ACROSS_PROCESSES)
    assert done.returncode == 0 and done.stdout.strip().endswith("exclusive"), done.stderr[-3000:]


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_rasa_server_answers_with_two_workers_sharing_the_lock_file(servers):
    assert servers.env.get("RASA_WORKERS", "2") == "2"
    assert len(children_of(servers.rasa.proc.pid)) >= 2  # Sanic's worker processes
    user = new_sender("e2e")
    servers.say(user, "身份证")
    with sqlite3.connect(servers.env["RASA_LOCK_DB"]) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'locks'").fetchone()[0] == 1


def test_messages_of_one_conversation_sent_at_once_are_answered_one_after_another(servers):
    from concurrent.futures import ThreadPoolExecutor

    user = new_sender("e2e")
    servers.say(user, "你好")
    asked = ["护照怎么办", "要多少钱", "在哪里办", "要带什么材料"]
    with ThreadPoolExecutor(len(asked)) as pool:
        answers = list(pool.map(lambda text: servers.say(user, text), asked))
    assert all(texts(a) for a in answers), answers
    with sqlite3.connect(servers.env["RASA_TRACKER_DB"]) as db:
        kinds = [row[0] for row in db.execute(
            "SELECT CASE WHEN type_name = 'user' THEN 'user' "
            "WHEN type_name = 'action' AND action_name = 'action_listen' THEN 'listen' ELSE 'other' END "
            "FROM events WHERE sender_id = ? ORDER BY id", (user,))]
    # each message's turn ends with action_listen before the next message's user event
    turns = "".join("U" if k == "user" else "L" if k == "listen" else "" for k in kinds)
    assert turns.count("U") == 1 + len(asked), kinds
    assert "UU" not in turns, turns


SHARED_REPLIES = r"""
import asyncio, multiprocessing, os, sys, tempfile, time
from bot.channels.rest import SharedRecentReplies

path = os.path.join(tempfile.mkdtemp(), "locks.db")
memory = SharedRecentReplies(path)
ran = multiprocessing.Value("i", 0)

def worker(text, delay, queue):
    async def answer():
        with ran.get_lock():
            ran.value += 1
        await asyncio.sleep(delay)
        return [{"text": text}]
    queue.put(asyncio.run(memory.once(("s", "m-1"), answer)))

queue = multiprocessing.Queue()
first = multiprocessing.Process(target=worker, args=("first", 0.5, queue))
first.start(); time.sleep(0.2)  # the retry arrives while the first attempt is being answered
retry = multiprocessing.Process(target=worker, args=("retry", 0.0, queue))
retry.start(); first.join(); retry.join()
got = [queue.get(), queue.get()]
assert got == [[{"text": "first"}], [{"text": "first"}]], got
assert ran.value == 1, ran.value

async def failing():
    raise RuntimeError("action server down")
async def works():
    return [{"text": "second try"}]
try:
    asyncio.run(memory.once(("s", "m-2"), failing))
except RuntimeError:
    pass
assert asyncio.run(memory.once(("s", "m-2"), works)) == [{"text": "second try"}]  # a failed attempt is forgotten
assert asyncio.run(memory.once(None, works)) == [{"text": "second try"}]  # no message id: always answered
print("shared")
"""


def test_a_retry_answered_by_the_other_worker_gets_the_first_answer():
    """With two Rasa workers a retried message may reach the one that did not answer it: the workers'
    shared file holds the answer (and a retry during the first attempt waits for it)."""
    done = rasa_python(SHARED_REPLIES)
    assert done.returncode == 0 and done.stdout.strip().endswith("shared"), done.stderr[-2000:]
