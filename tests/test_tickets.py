"""The ticket store, on SQLite and on a real PostgreSQL."""

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.tickets.model import DraftTicket, NewTicket, category_from_text
from bot.tickets.recorder import Recorder
from bot.tickets.store import TicketError, TicketFilter, TicketStore, TicketStoreUnavailable

MONDAY = dt.datetime(2026, 11, 23, 10, 0)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    clock = Clock(MONDAY)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 't.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        with sa.create_engine(url).begin() as conn:  # a clean schema per test
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    s = TicketStore(url, clock=clock)
    s.migrate()
    s.clock = clock
    yield s
    s.engine.dispose()


def new(conversation="c1", **kw) -> NewTicket:
    values = dict(category="failed", description="网上提交了三次都失败", name="张三", phone="13812345678",
                  conversation_id=conversation, item="居民身份证换领")
    values.update(kw)
    return NewTicket(**values)


def test_migrations_are_applied_once(store):
    assert store.schema_version() == 2
    assert store.migrate() == []


def test_create_numbers_tickets_per_day_and_sets_the_due_time(store):
    first, created = store.create(new(), "c1:m1")
    second, _ = store.create(new("c2"), "c2:m1")
    assert created and first.number == "BC20261123-0001" and second.number == "BC20261123-0002"
    assert store.get(first.number).number == first.number
    # One working day: before the window closes on Tuesday.
    assert first.status == "open" and first.due_at == dt.datetime(2026, 11, 24, 17, 30)
    assert first.history[0].action == "created"


def test_a_retried_turn_never_makes_two_tickets(store):
    first, created = store.create(new(), "c1:m1")
    again, created_again = store.create(new(), "c1:m1")
    assert created and not created_again and again.number == first.number
    assert len(store.list()) == 1


def test_concurrent_creation_gets_distinct_numbers(store):
    numbers, errors = [], []

    def make(i):
        try:
            numbers.append(store.create(new(f"c{i}"), f"c{i}:m")[0].number)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(numbers)) == 8


def test_staff_changes_are_kept_in_the_ledger(store):
    ticket, _ = store.create(new(), "k")
    store.assign(ticket.number, "李四", actor="window-1")
    store.set_triage(ticket.number, "complex", actor="window-1")
    store.add_note(ticket.number, "已联系公安分局，回电 13900001111", actor="window-1")
    store.open_phone(ticket.number, actor="window-1")
    done = store.resolve(ticket.number, "已当场补办", actor="window-1")
    assert [h.action for h in done.history] == ["created", "assigned", "triaged", "note", "viewed_phone", "resolved"]
    assert "139****1111" in done.history[3].detail  # numbers in notes are masked
    assert done.status == "resolved" and done.assignee == "李四" and done.triage == "complex"
    with pytest.raises(TicketError, match="already resolved"):
        store.resolve(ticket.number, "again", actor="x")
    with pytest.raises(TicketError, match="no ticket"):
        store.assign("BC00000000-0000", "x", actor="x")


def test_filters_and_overdue(store):
    late, _ = store.create(new("a", category="conduct"), "a")
    store.clock.now = MONDAY + dt.timedelta(days=3)
    fresh, _ = store.create(new("b"), "b")
    assert [t.number for t in store.list(TicketFilter(overdue=True))] == [late.number]
    assert [t.number for t in store.list(TicketFilter(category="failed"))] == [fresh.number]
    assert store.get(late.number).overdue(store.now())
    assert not store.get(fresh.number).overdue(store.now())


def test_status_lookup_needs_the_random_access_code(store):
    ticket, _ = store.create(new(), "k")
    other, _ = store.create(new("c2"), "k2")
    code = ticket.access_code
    assert code and len(code) == 6 and code.isdigit() and code != other.access_code
    found = store.lookup(ticket.number, code, asker="citizen")
    assert found.outcome == "found" and found.ticket.number == ticket.number
    full_width = code.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert store.lookup(ticket.number.lower(), f"查询码 {full_width}", asker="citizen").outcome == "found"
    assert store.lookup(ticket.number, "5678", asker="citizen").outcome == "no_match"  # the phone tail is no key
    assert store.lookup(ticket.number, other.access_code, asker="citizen").outcome == "no_match"
    assert store.lookup("BC19990101-0001", code, asker="citizen").outcome == "no_match"


def test_a_retried_filing_gives_the_same_access_code(store):
    first, _ = store.create(new(), "turn-1")
    again, created = store.create(new(), "turn-1")
    assert not created and again.access_code == first.access_code


def test_guessing_codes_locks_the_ticket_then_the_asker(store):
    ticket, _ = store.create(new(), "k")
    wrong = "000000" if ticket.access_code != "000000" else "111111"
    for attempt in range(5):
        assert store.lookup(ticket.number, wrong, asker=f"guesser-{attempt}").outcome == "no_match"
    # Five failures on this ticket within the hour: even the right code is refused, from anyone.
    assert store.lookup(ticket.number, ticket.access_code, asker="citizen").outcome == "locked"
    store.clock.now = MONDAY + dt.timedelta(minutes=61)
    assert store.lookup(ticket.number, ticket.access_code, asker="citizen").outcome == "found"
    # One asker trying many tickets is locked after ten failures, whatever the ticket.
    for n in range(10):
        assert store.lookup(f"BC20261123-{9000 + n}", "123456", asker="sweeper").outcome == "no_match"
    assert store.lookup(ticket.number, ticket.access_code, asker="sweeper").outcome == "locked"


def test_migrating_a_version_1_database_gives_old_tickets_codes(tmp_path):
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    TicketStore(url).migrate()
    with sa.create_engine(url).begin() as conn:  # back to the database as version 1 left it, with one ticket
        conn.execute(sa.text("ALTER TABLE tickets DROP COLUMN access_code"))
        conn.execute(sa.text("DROP TABLE status_attempts"))
        conn.execute(sa.text("DELETE FROM schema_migrations WHERE version = 2"))
        conn.execute(sa.text(
            "INSERT INTO tickets (number, idempotency_key, category, description, name, phone, conversation_id, "
            "source, status, triage, created_at, due_at) VALUES ('BC20261101-0001', 'k', 'failed', 'd', '王', "
            "'13812345678', 'c', 'conversation', 'open', 'simple', '2026-11-01 09:00:00', '2026-11-02 09:00:00')"))
    store = TicketStore(url)
    assert store.migrate() == [2]
    old = store.get("BC20261101-0001")
    assert old.access_code and len(old.access_code) == 6
    assert store.lookup(old.number, old.access_code, asker="c").outcome == "found"


def draft(conversation="c1", **kw) -> DraftTicket:
    values = dict(category="failed", description="网上提交了三次都失败", name="张三", conversation_id=conversation,
                  item="居民身份证换领")
    values.update(kw)
    return DraftTicket(**values)


def stored_phone(store, number):
    with store.engine.connect() as conn:
        return conn.execute(sa.text("select phone from tickets where number = :n"), {"n": number}).scalar()


def test_phone_draft_is_kept_until_the_ticket_is_made(store):
    store.save_draft_phone("c1", "13812345678")
    assert store.has_draft("c1")
    store.create(new("c1"), "k")
    assert not store.has_draft("c1")


def test_a_ticket_filed_from_its_draft_keeps_the_full_number_inside_the_store(store):
    store.save_draft_phone("c1", "13812345678")
    ticket, created = store.create_from_draft(draft("c1"), "c1:m1")
    assert created and ticket.phone == "138****5678"  # what the caller sees
    assert stored_phone(store, ticket.number) == "13812345678" and not store.has_draft("c1")
    again, created_again = store.create_from_draft(draft("c1"), "c1:m1")  # a retried turn: the same ticket
    assert not created_again and again.number == ticket.number and again.phone == "138****5678"
    assert store.get(ticket.number).phone == "13812345678"  # staff open it from the store


def test_a_draft_filed_without_its_phone_or_after_it_expired_has_none(store):
    store.save_draft_phone("skip", "13812345678")
    skipped, _ = store.create_from_draft(draft("skip"), "skip:m1", with_phone=False)
    assert skipped.phone is None and stored_phone(store, skipped.number) is None
    assert not store.has_draft("skip")  # the unused number is not kept either
    store.save_draft_phone("late", "13912345678")
    store.clock.now = MONDAY + store.draft_ttl + dt.timedelta(seconds=1)
    late, _ = store.create_from_draft(draft("late"), "late:m1")
    assert late.phone is None and stored_phone(store, late.number) is None
    with pytest.raises(TicketError, match="unknown category"):
        store.create_from_draft(draft("x", category="nonsense"), "x:m1")


def test_a_cancelled_or_abandoned_draft_is_deleted(store):
    store.save_draft_phone("cancelled", "13812345678")
    store.forget_draft("cancelled")
    assert not store.has_draft("cancelled")
    store.save_draft_phone("abandoned", "13912345678")
    store.clock.now = MONDAY + store.draft_ttl + dt.timedelta(seconds=1)
    assert not store.has_draft("abandoned")
    with store.engine.begin() as conn:  # gone from the table, not only hidden
        assert conn.execute(sa.text("select count(*) from drafts")).scalar() == 0


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "private" / "tickets.db"
    store = TicketStore(f"sqlite:///{path}")
    store.migrate()
    store.save_draft_phone("c", "13812345678")
    for name in ("tickets.db", "tickets.db-wal", "tickets.db-shm"):
        if (path.parent / name).exists():
            assert (path.parent / name).stat().st_mode & 0o077 == 0, name


def test_bad_rating_ticket_is_due_in_24_hours(store):
    ticket, _ = store.create(new(source="bad_rating", rating=1, category="other"), "r")
    assert ticket.due_at == MONDAY + dt.timedelta(hours=24)


def test_a_dead_database_is_a_clear_error_and_nothing_half_written(tmp_path):
    broken = TicketStore("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(TicketStoreUnavailable, match="nothing was saved"):
        broken.create(new(), "k")


def test_a_ticket_filed_on_friday_evening_is_due_when_monday_closes(store):
    store.clock.now = dt.datetime(2026, 11, 27, 19, 45)
    ticket, _ = store.create(new(), "friday")
    assert ticket.due_at == dt.datetime(2026, 11, 30, 17, 30)
    store.clock.now = dt.datetime(2026, 11, 30, 17, 31)
    assert [t.number for t in store.list(TicketFilter(overdue=True))] == [ticket.number]


def test_recorder_keeps_questions_and_ratings_masked_in_the_same_database(store):
    recorder = Recorder.over(store)
    recorder.record_interaction("c1", "我的电话13812345678办不了", "fallback", None)
    recorder.record_interaction("c2", "怎么换身份证", "notification", "guide-1")
    recorder.record_rating("c1", 2, "等了13912345678很久", "guide-1")
    with pytest.raises(TicketError):
        recorder.record_rating("c1", 6, None, None)
    day = dt.datetime(2026, 11, 23)
    asked = recorder.interactions_between(day, day + dt.timedelta(days=1))
    assert [(i.conversation_id, i.kind, i.question) for i in asked] == [
        ("c1", "fallback", "我的电话138****5678办不了"), ("c2", "notification", "怎么换身份证")]
    rated = recorder.ratings_between(day, day + dt.timedelta(days=1))
    assert [(r.rating, r.comment, r.guide_id) for r in rated] == [(2, "等了139****5678很久", "guide-1")]
    assert recorder.interactions_between(day + dt.timedelta(days=1), day + dt.timedelta(days=2)) == []
    assert not hasattr(store, "record_rating")


def test_tickets_created_between_two_times(store):
    first, _ = store.create(new("a"), "a")
    store.clock.now = MONDAY + dt.timedelta(days=1)
    second, _ = store.create(new("b"), "b")
    assert [t.number for t in store.created_between(MONDAY, MONDAY + dt.timedelta(days=2))] == [
        first.number, second.number]
    assert [t.number for t in store.created_between(MONDAY + dt.timedelta(hours=1), MONDAY + dt.timedelta(days=2))
            ] == [second.number]


@pytest.mark.parametrize(("text", "code"), [
    ("申请办理没办成（线上或线下）", "failed"), ("跑了好几次都没办好", "repeated"), ("对结果不服", "disputed"),
    ("窗口工作人员态度很差", "conduct"), ("其他", "other"), ("conduct", "conduct"), ("嗯", None),
])
def test_category_from_text(text, code):
    assert category_from_text(text) == code


def test_processes_starting_together_migrate_once(store):
    """Two action servers behind one address start at the same moment (the scaled
    deployment); each migrates, and neither may trip over the other's schema."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    else:
        store.engine.dispose()
        Path(store.engine.url.database).unlink()
    stores = [TicketStore(store.url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def start(s):
        barrier.wait()
        return s.migrate()

    with ThreadPoolExecutor(len(stores)) as pool:
        applied = list(pool.map(start, stores))
    assert sorted(applied) == [[], [], [], [1, 2]]
    assert all(s.schema_version() == 2 for s in stores)
    for s in stores:
        s.engine.dispose()
