"""The ticket store: SQLite by default, PostgreSQL when ``TICKETS_DB_URL`` says so.

Everything the window needs persists here, each change in one transaction (a dead database
leaves nothing half-written):

* ``tickets`` and their ``ticket_history`` (the 台账: every creation, assignment, note,
  opening of the phone number and resolution, with who and when);
* ``drafts``: the phone number a citizen is typing into the ticket form, kept here and not
  in Rasa's tracker (the tracker only ever sees it masked);
* ``interactions`` and ``ratings``: what was asked and how it went, for the reports (written and
  read by :class:`bot.tickets.recorder.Recorder`, over the same database).

Ticket numbers read ``BC<date>-<sequence>``: short enough to read out on the phone, and
therefore guessable. What a citizen needs besides the number to see a ticket's status is its
**access code**, six random digits given once when the ticket is filed. Failed status look-ups
are counted per ticket and per asker in the database (shared by every action server): too many
within an hour lock that ticket, or that asker, for the rest of the hour.

Creating a ticket is idempotent: the caller passes a key naming the conversation turn that
confirmed it, and a retry of that turn returns the ticket made the first time. The conversation
files its ticket with :meth:`TicketStore.create_from_draft`: the phone number typed into the form
goes from the draft into the ticket inside the store, and only a masked copy comes back.

Due times come from the store's :class:`bot.tickets.hours.OfficeCalendar` (working days, public
holidays with 调休, the office's closures); :meth:`TicketStore.now` is the hall's clock that the
staff page and the reports judge them by.

The schema is versioned (``schema_migrations``); :meth:`TicketStore.migrate` applies the
steps a database has not seen yet, so an office upgrading keeps its tickets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import os
import secrets
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.errors import BotError
from bot.privacy import fold, mask_phone, mask_text
from bot.sqlite import use_wal
from bot.tickets.hours import OfficeCalendar
from bot.tickets.model import (
    CATEGORIES,
    TRIAGE,
    DraftTicket,
    HistoryEntry,
    NewTicket,
    Ticket,
    triage_for,
)

log = logging.getLogger(__name__)


class TicketError(BotError):
    """A ticket operation that cannot be done as asked (unknown ticket, bad value)."""


class TicketStoreUnavailable(BotError):
    """The ticket database cannot be reached; nothing was written."""


metadata = sa.MetaData()

migrations_table = sa.Table(
    "schema_migrations", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)
tickets = sa.Table(
    "tickets", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(48), nullable=False, unique=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("category", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(20)),
    sa.Column("conversation_id", sa.String(200), nullable=False),
    sa.Column("item", sa.String(300)),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("rating", sa.Integer),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("triage", sa.String(20), nullable=False),
    sa.Column("assignee", sa.String(100)),
    sa.Column("resolution", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("due_at", sa.DateTime, nullable=False, index=True),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("access_code", sa.String(12)),
)
history = sa.Table(
    "ticket_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False, index=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(30), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
drafts = sa.Table(
    "drafts", metadata,
    sa.Column("conversation_id", sa.String(200), primary_key=True),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
interactions = sa.Table(
    "interactions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("conversation_id", sa.String(200), nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("guide_id", sa.String(200)),
)
ratings = sa.Table(
    "ratings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("conversation_id", sa.String(200), nullable=False),
    sa.Column("rating", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("guide_id", sa.String(200)),
)

status_attempts = sa.Table(
    "status_attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("number", sa.String(48), nullable=False, index=True),
    sa.Column("asker", sa.String(200), nullable=False, index=True),
    sa.Column("ok", sa.Boolean, nullable=False),
)


def _add_access_codes(conn: Connection) -> None:
    """Tickets get an access code; tickets filed before it existed get one too (staff read it
    out to a citizen who calls), and failed status look-ups are counted."""
    if "access_code" not in {column["name"] for column in sa.inspect(conn).get_columns("tickets")}:
        conn.execute(sa.text("ALTER TABLE tickets ADD COLUMN access_code VARCHAR(12)"))  # a v1 database
    for (ticket_id,) in conn.execute(sa.text("SELECT id FROM tickets WHERE access_code IS NULL")).all():
        conn.execute(sa.text("UPDATE tickets SET access_code = :code WHERE id = :id"),
                     {"code": new_access_code(), "id": ticket_id})
    metadata.create_all(conn, tables=[status_attempts], checkfirst=True)


#: Schema steps, in order. Never edit a released step; append a new one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, lambda conn: metadata.create_all(
        conn, tables=[tickets, history, drafts, interactions, ratings], checkfirst=True)),
    (2, _add_access_codes),
]

#: Digits of a ticket's access code: 10^6 codes, with at most LOOKUP_FAILURES_PER_TICKET tries an
#: hour on any one ticket.
ACCESS_CODE_DIGITS = 6
#: Failed look-ups of one ticket within LOOKUP_WINDOW that lock it until the window has passed.
LOOKUP_FAILURES_PER_TICKET = 5
#: Failed look-ups by one asker (conversation) within LOOKUP_WINDOW that lock that asker.
LOOKUP_FAILURES_PER_ASKER = 10
LOOKUP_WINDOW = dt.timedelta(hours=1)


def new_access_code() -> str:
    """Six random digits (from the operating system's random source)."""
    return "".join(secrets.choice("0123456789") for _ in range(ACCESS_CODE_DIGITS))


@dataclass(frozen=True)
class Lookup:
    """The outcome of a citizen's status look-up: ``found`` (with the ticket), ``no_match``
    (wrong number or code: the same answer for both, so nobody learns which numbers exist)
    or ``locked`` (too many failures; try again after ``LOOKUP_WINDOW``)."""

    outcome: Literal["found", "no_match", "locked"]
    ticket: Ticket | None = None


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    category: str | None = None
    triage: str | None = None
    overdue: bool | None = None
    due_before: dt.datetime | None = None
    limit: int = 200


_SCHEMA_LOCK_KEY = 0x6775_6964  # "guid": the advisory lock id for schema changes


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction on the ticket database; a database that cannot be reached is
    :class:`TicketStoreUnavailable` (and nothing of the transaction is written)."""
    try:
        with engine.begin() as conn:
            yield conn
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        log.error("ticket database unavailable: %s", type(exc).__name__)
        raise TicketStoreUnavailable(
            "工单数据库暂时无法连接 (ticket database unavailable); nothing was saved"
        ) from None


class TicketStore:
    """All ticket data, behind one engine. Build once per process; it is thread-safe."""

    def __init__(self, url: str, *, timezone: str = "Asia/Shanghai",
                 clock: Callable[[], dt.datetime] | None = None, draft_ttl: dt.timedelta = dt.timedelta(minutes=30),
                 calendar: OfficeCalendar | None = None) -> None:
        self.url = url
        self.zone = ZoneInfo(timezone)
        self._clock = clock
        self.draft_ttl = draft_ttl
        #: Working days and hours: due times are computed with it.
        self.calendar = calendar or OfficeCalendar()
        kwargs: dict[str, Any] = {"pool_pre_ping": True, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 15, "check_same_thread": False}
            database = sa.engine.make_url(url).database
            if database and database != ":memory:":
                _private_file(Path(database))
        else:
            kwargs["connect_args"] = {"connect_timeout": 5}
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_connection: Any, _: Any) -> None:
                use_wal(dbapi_connection, foreign_keys=True)

    def now(self) -> dt.datetime:
        """The hall's local time, without tzinfo (how times are stored)."""
        if self._clock is not None:
            return self._clock()
        return dt.datetime.now(self.zone).replace(tzinfo=None, microsecond=0)

    def _tx(self) -> contextlib.AbstractContextManager[Connection]:
        return transaction(self.engine)

    # --- schema ---------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the schema steps this database lacks; return the versions applied."""
        applied: list[int] = []
        with self._tx() as conn:
            self._lock_schema(conn)
            metadata.create_all(conn, tables=[migrations_table], checkfirst=True)
            done = {row[0] for row in conn.execute(sa.select(migrations_table.c.version))}
            for version, step in MIGRATIONS:
                if version in done:
                    continue
                step(conn)
                conn.execute(migrations_table.insert().values(version=version, applied_at=self.now()))
                applied.append(version)
        return applied

    def _lock_schema(self, conn: Connection) -> None:
        """Hold the schema for this transaction, so that processes starting together
        (two action servers behind one address) migrate one after the other: without it
        both see no ``schema_migrations`` and both try to create it."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        elif conn.dialect.name == "sqlite":
            # pysqlite opens no transaction before DDL; take the one writer lock now.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def schema_version(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(sa.select(sa.func.max(migrations_table.c.version))).scalar() or 0)

    # --- the ticket form ------------------------------------------------------------

    def save_draft_phone(self, conversation_id: str, phone: str) -> None:
        """Keep the number a citizen typed into the form until the ticket is filed, the form is
        cancelled (:meth:`forget_draft`) or ``draft_ttl`` has passed, whichever comes first."""
        with self._tx() as conn:
            self._expire_drafts(conn)
            conn.execute(drafts.delete().where(drafts.c.conversation_id == conversation_id))
            conn.execute(drafts.insert().values(conversation_id=conversation_id, phone=phone, updated_at=self.now()))

    def has_draft(self, conversation_id: str) -> bool:
        """Whether this conversation's form holds a number that has not expired (the number itself
        never leaves the store: :meth:`create_from_draft` puts it into the ticket)."""
        with self._tx() as conn:
            return self._draft_phone(conn, conversation_id) is not None

    def _draft_phone(self, conn: Connection, conversation_id: str) -> str | None:
        self._expire_drafts(conn)
        return conn.execute(sa.select(drafts.c.phone).where(drafts.c.conversation_id == conversation_id)).scalar()

    def forget_draft(self, conversation_id: str) -> None:
        """The citizen cancelled the form: the number they typed is deleted now."""
        with self._tx() as conn:
            conn.execute(drafts.delete().where(drafts.c.conversation_id == conversation_id))

    def _expire_drafts(self, conn: Connection) -> None:
        conn.execute(drafts.delete().where(drafts.c.updated_at < self.now() - self.draft_ttl))

    def create(self, new: NewTicket, idempotency_key: str) -> tuple[Ticket, bool]:
        """Create a ticket, or return the one this key already made. Returns (ticket, created)."""
        return self._create(new.category, idempotency_key, lambda conn: new)

    def create_from_draft(self, draft: DraftTicket, idempotency_key: str, *,
                          with_phone: bool = True) -> tuple[Ticket, bool]:
        """File what the conversation collected, with the phone number its form left in the draft
        (unless ``with_phone`` is False, or the draft has expired: then without one), in one
        transaction; the draft is deleted. The returned ticket carries the number masked: the full
        number stays in the store. Idempotent per key, like :meth:`create`."""
        def complete(conn: Connection) -> NewTicket:
            phone = self._draft_phone(conn, draft.conversation_id) if with_phone else None
            return draft.with_phone(phone)

        ticket, created = self._create(draft.category, idempotency_key, complete)
        return replace(ticket, phone=mask_phone(ticket.phone) if ticket.phone else None), created

    def _create(self, category: str, idempotency_key: str,
                complete: Callable[[Connection], NewTicket]) -> tuple[Ticket, bool]:
        if category not in CATEGORIES:
            raise TicketError(f"unknown category {category!r}")
        for _attempt in range(5):
            try:
                with self._tx() as conn:
                    existing = conn.execute(
                        sa.select(tickets.c.id).where(tickets.c.idempotency_key == idempotency_key)).scalar()
                    if existing is not None:
                        return self._load(conn, existing), False
                    new = complete(conn)
                    created = self.now()
                    ticket_id = conn.execute(tickets.insert().values(
                        number=f"pending-{uuid.uuid4().hex}", idempotency_key=idempotency_key, category=new.category,
                        description=new.description[:4000], name=new.name[:100], phone=new.phone,
                        conversation_id=new.conversation_id[:200], item=(new.item or None) and new.item[:300],
                        source=new.source,
                        rating=new.rating, status="open", triage=triage_for(new.category), assignee=None,
                        resolution=None, created_at=created, due_at=self.calendar.due_at(created, new.source),
                        resolved_at=None, access_code=new_access_code(),
                    )).inserted_primary_key[0]  # type: ignore[index]
                    # The number is the date and the row id: unique without counting, so concurrent
                    # filings never collide. Short enough to read out on the phone.
                    number = f"BC{created:%Y%m%d}-{ticket_id:04d}"
                    conn.execute(tickets.update().where(tickets.c.id == ticket_id).values(number=number))
                    self._log(conn, ticket_id, "citizen", "created",
                              f"{CATEGORIES[new.category]}；来源：{new.source}")
                    conn.execute(drafts.delete().where(drafts.c.conversation_id == new.conversation_id))
                    return self._load(conn, ticket_id), True
            except sa.exc.IntegrityError:
                continue  # a concurrent retry of the same turn inserted the key first: look again
        raise TicketStoreUnavailable("could not save the ticket; nothing was saved")

    # --- reading --------------------------------------------------------------------

    def get(self, number: str) -> Ticket | None:
        with self._tx() as conn:
            ticket_id = conn.execute(sa.select(tickets.c.id).where(tickets.c.number == number.strip().upper())).scalar()
            return self._load(conn, ticket_id) if ticket_id is not None else None

    def lookup(self, number: str, code: str, asker: str) -> Lookup:
        """A citizen's status look-up: the ticket only when its number and access code match, and
        neither this ticket nor this asker has failed too often within the last hour.

        Every attempt is recorded (in the same database every action server uses), so spreading
        guesses over several servers gains nothing.
        """
        number = unicodedata.normalize("NFKC", number).strip().upper()[:48]
        code = "".join(ch for ch in fold(code) if ch.isdigit())
        asker = asker[:200]
        with self._tx() as conn:
            since = self.now() - LOOKUP_WINDOW
            failed = sa.and_(status_attempts.c.ok.is_(False), status_attempts.c.at >= since)
            by_ticket = conn.execute(sa.select(sa.func.count()).select_from(status_attempts).where(
                failed, status_attempts.c.number == number)).scalar() or 0
            by_asker = conn.execute(sa.select(sa.func.count()).select_from(status_attempts).where(
                failed, status_attempts.c.asker == asker)).scalar() or 0
            if by_ticket >= LOOKUP_FAILURES_PER_TICKET or by_asker >= LOOKUP_FAILURES_PER_ASKER:
                log.warning("status look-up locked (ticket failures %d, asker failures %d)", by_ticket, by_asker)
                return Lookup("locked")
            row = conn.execute(sa.select(tickets.c.id, tickets.c.access_code).where(tickets.c.number == number)).first()
            ok = bool(row is not None and row.access_code and code
                      and hmac.compare_digest(row.access_code.encode(), code.encode()))
            conn.execute(status_attempts.insert().values(at=self.now(), number=number, asker=asker, ok=ok))
            return Lookup("found", self._load(conn, row.id)) if ok and row is not None else Lookup("no_match")

    def created_between(self, start: dt.datetime, end: dt.datetime) -> list[Ticket]:
        """Every ticket filed from ``start`` up to (not including) ``end``, oldest first, without
        their history (for the reports)."""
        query = (sa.select(tickets).where(tickets.c.created_at >= start, tickets.c.created_at < end)
                 .order_by(tickets.c.created_at, tickets.c.id))
        with self._tx() as conn:
            return [_ticket(row, ()) for row in conn.execute(query).mappings()]

    def list(self, filters: TicketFilter = TicketFilter()) -> list[Ticket]:
        query = sa.select(tickets).order_by(tickets.c.due_at)
        if filters.status:
            query = query.where(tickets.c.status == filters.status)
        if filters.category:
            query = query.where(tickets.c.category == filters.category)
        if filters.triage:
            query = query.where(tickets.c.triage == filters.triage)
        if filters.due_before:
            query = query.where(tickets.c.due_at <= filters.due_before)
        if filters.overdue is not None:
            late = sa.and_(tickets.c.status != "resolved", tickets.c.due_at < self.now())
            query = query.where(late if filters.overdue else sa.not_(late))
        with self._tx() as conn:
            rows = conn.execute(query.limit(max(1, min(filters.limit, 1000)))).mappings()
            return [_ticket(row, ()) for row in rows]

    # --- staff changes --------------------------------------------------------------

    def assign(self, number: str, assignee: str, actor: str) -> Ticket:
        assignee = assignee.strip()
        if not assignee:
            raise TicketError("assignee must not be empty")
        return self._change(number, actor, "assigned", f"指派给 {assignee}",
                            {"assignee": assignee, "status": "assigned"}, open_only=True)

    def set_triage(self, number: str, triage: str, actor: str) -> Ticket:
        if triage not in TRIAGE:
            raise TicketError(f"unknown triage level {triage!r}; one of {', '.join(TRIAGE)}")
        return self._change(number, actor, "triaged", TRIAGE[triage], {"triage": triage})

    def add_note(self, number: str, note: str, actor: str) -> Ticket:
        if not note.strip():
            raise TicketError("a note must not be empty")
        return self._change(number, actor, "note", mask_text(note.strip()), {})

    def resolve(self, number: str, resolution: str, actor: str) -> Ticket:
        if not resolution.strip():
            raise TicketError("say how the matter was resolved")
        return self._change(number, actor, "resolved", mask_text(resolution.strip()),
                            {"status": "resolved", "resolution": resolution.strip(), "resolved_at": self.now()},
                            open_only=True)

    def open_phone(self, number: str, actor: str) -> Ticket:
        """The ticket with its phone number, for a staff member; the opening goes into the history."""
        return self._change(number, actor, "viewed_phone", "查看了联系电话", {})

    def _change(self, number: str, actor: str, action: str, detail: str, values: dict[str, Any],
                *, open_only: bool = False) -> Ticket:
        with self._tx() as conn:
            row = conn.execute(sa.select(tickets.c.id, tickets.c.status)
                               .where(tickets.c.number == number.strip().upper())).first()
            if row is None:
                raise TicketError(f"no ticket {number}")
            if open_only and row.status == "resolved":
                raise TicketError(f"ticket {number} is already resolved")
            if values:
                conn.execute(tickets.update().where(tickets.c.id == row.id).values(**values))
            self._log(conn, row.id, actor, action, detail)
            return self._load(conn, row.id)

    # --- internals ------------------------------------------------------------------

    def _log(self, conn: Connection, ticket_id: int, actor: str, action: str, detail: str) -> None:
        conn.execute(history.insert().values(ticket_id=ticket_id, at=self.now(), actor=actor, action=action,
                                             detail=detail))

    def _load(self, conn: Connection, ticket_id: int) -> Ticket:
        """One ticket with its history."""
        row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).mappings().one()
        entries = tuple(
            HistoryEntry(h.at, h.actor, h.action, h.detail)
            for h in conn.execute(sa.select(history).where(history.c.ticket_id == ticket_id).order_by(history.c.id))
        )
        return _ticket(row, entries)


def _ticket(row: Any, entries: tuple[HistoryEntry, ...]) -> Ticket:
    return Ticket(
        number=row["number"], category=row["category"], description=row["description"], name=row["name"],
        phone=row["phone"], conversation_id=row["conversation_id"], item=row["item"], source=row["source"],
        rating=row["rating"], status=row["status"], triage=row["triage"], assignee=row["assignee"],
        resolution=row["resolution"], created_at=row["created_at"], due_at=row["due_at"],
        resolved_at=row["resolved_at"], access_code=row["access_code"], history=entries,
    )


def _private_file(database: Path) -> None:
    """The SQLite file (and the WAL and shared-memory files SQLite makes beside it with the same
    permissions) readable by this user only: it holds citizens' phone numbers."""
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not database.exists():
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        if path.exists():
            os.chmod(path, 0o600)
