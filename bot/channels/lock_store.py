"""Rasa's ticket lock store in a SQLite file, so several Rasa worker processes on one machine share it.

Loaded by the **Rasa server** (its own venv) from ``endpoints.yml``::

    lock_store:
      type: bot.channels.lock_store.SQLiteLockStore
      db: ${RASA_LOCK_DB}

Why: one Rasa process handles one message at a time on one core (NLU, policies and the tracker
store all run on its event loop), so on a 2-core machine a burst of messages queues behind it
while the other core idles. Rasa runs several Sanic workers (``SANIC_WORKERS``, set from our
``RASA_WORKERS``) only with a lock store the workers share — its in-memory one is per process, and
two workers answering one conversation at once would interleave its events. Rasa ships Redis for
that; an embedded deployment has no Redis, and a small SQLite file on the same disk does the same
job for the workers of one machine (several machines keep Redis: ``endpoints-scaled.yml``).

Every change to a conversation's lock is one ``BEGIN IMMEDIATE`` transaction (read, change,
write), so two workers issuing tickets for one conversation at the same moment get different
numbers — the base class's read-then-save would not be atomic across processes. Standard library
and Rasa only; the lock state is transient (a restart may drop the file).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore

from bot.sqlite import SharedFile

T = TypeVar("T")

#: How long one worker waits for another's lock transaction before giving up (seconds).
BUSY_TIMEOUT = 10.0


#: The lock table (created on first use by each process).
SCHEMA = ("CREATE TABLE IF NOT EXISTS locks (conversation_id TEXT PRIMARY KEY, data TEXT NOT NULL)",)
_SELECT = "SELECT data FROM locks WHERE conversation_id = ?"


class SQLiteLockStore(LockStore):
    """Ticket locks in one SQLite table, shared by every Rasa worker that opens the same file."""

    def __init__(self, endpoint_config: Any = None, db: str | None = None) -> None:
        kwargs = dict(getattr(endpoint_config, "kwargs", None) or {})
        path = db or kwargs.get("db") or getattr(endpoint_config, "url", None)
        if not path or not str(path).strip() or str(path).startswith("${"):
            raise LockError("lock_store: no `db` file given (RASA_LOCK_DB in endpoints.yml)")
        self.path = Path(str(path))
        self._file = SharedFile(path, SCHEMA, timeout=BUSY_TIMEOUT)
        self._file.connection()  # opened now, so a bad path fails at start-up
        super().__init__()

    @staticmethod
    def _lock_of(rows: list[tuple[Any, ...]]) -> TicketLock | None:
        return TicketLock.from_dict(json.loads(rows[0][0])) if rows else None

    def _read(self, db: sqlite3.Connection, conversation_id: str) -> TicketLock | None:
        return self._lock_of(db.execute(_SELECT, (conversation_id,)).fetchall())

    @staticmethod
    def _write(db: sqlite3.Connection, lock: TicketLock) -> None:
        db.execute("INSERT INTO locks (conversation_id, data) VALUES (?, ?) "
                   "ON CONFLICT(conversation_id) DO UPDATE SET data = excluded.data",
                   (lock.conversation_id, lock.dumps()))

    def _change(self, conversation_id: str, change: Callable[[sqlite3.Connection, TicketLock | None], T]) -> T:
        with self._file.transaction() as db:
            return change(db, self._read(db, conversation_id))

    # -- the storage Rasa's LockStore asks for

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return self._lock_of(self._file.read(_SELECT, (conversation_id,)))

    def delete_lock(self, conversation_id: str) -> None:
        with self._file.transaction() as db:
            deleted = db.execute("DELETE FROM locks WHERE conversation_id = ?", (conversation_id,)).rowcount
        self._log_deletion(conversation_id, deletion_successful=bool(deleted))

    def save_lock(self, lock: TicketLock) -> None:
        with self._file.transaction() as db:
            self._write(db, lock)

    # -- the read-change-write steps, each made one transaction

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def issue(db: sqlite3.Connection, lock: TicketLock | None) -> int:
            lock = lock or self.create_lock(conversation_id)
            ticket = lock.issue_ticket(lock_lifetime)
            self._write(db, lock)
            return ticket

        try:
            return self._change(conversation_id, issue)
        except sqlite3.Error as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        def expire(db: sqlite3.Connection, lock: TicketLock | None) -> None:
            if lock:
                lock.remove_expired_tickets()
                self._write(db, lock)

        self._change(conversation_id, expire)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        def finish(db: sqlite3.Connection, lock: TicketLock | None) -> None:
            if lock:
                lock.remove_ticket_for(ticket_number)
                self._write(db, lock)

        self._change(conversation_id, finish)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Finish this ticket and drop the lock if nobody else waits: one transaction, so a ticket
        another worker issues in between is never deleted with it."""
        def clean(db: sqlite3.Connection, lock: TicketLock | None) -> None:
            if not lock:
                return
            lock.remove_ticket_for(ticket_number)
            if lock.is_someone_waiting():
                self._write(db, lock)
            else:
                db.execute("DELETE FROM locks WHERE conversation_id = ?", (conversation_id,))

        self._change(conversation_id, clean)
