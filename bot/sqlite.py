"""SQLite connection set-up shared by the ticket store (action side) and the tracker store (Rasa side).

Standard library only: both processes import it, from two virtual environments with different pins.

Why a module of its own: ``PRAGMA journal_mode=WAL`` needs the database's exclusive lock for the moment
it converts the file, and SQLite does not call the busy handler for it — a connection that asks while
another is converting (two action servers, or one store's pooled connections, opening a new database at
the same moment) gets ``database is locked`` at once, whatever the connection's ``timeout``. So the
switch is retried here, with short waits, for as long as the connection's own timeout would have
waited.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: How long a connection waits for another to finish switching the database to WAL (seconds).
WAL_SWITCH_TIMEOUT = 15.0


def use_wal(dbapi_connection: Any, *, synchronous: str | None = None,
            foreign_keys: bool = False, timeout: float = WAL_SWITCH_TIMEOUT) -> None:
    """Put a fresh DB-API SQLite connection in WAL mode (and the given pragmas).

    Args:
        dbapi_connection: the ``sqlite3`` connection SQLAlchemy's ``connect`` event hands over.
        synchronous: ``PRAGMA synchronous`` value to set (``"NORMAL"``), or ``None`` to leave it.
        foreign_keys: turn on ``PRAGMA foreign_keys``.
        timeout: seconds to keep retrying the switch while another connection holds the lock.

    Raises:
        sqlite3.OperationalError: the database stayed locked for ``timeout`` seconds, or another error.
    """
    cursor = dbapi_connection.cursor()
    try:
        deadline = time.monotonic() + timeout
        wait = 0.005
        while True:
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)
                wait = min(wait * 2, 0.2)
        if synchronous:
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        if foreign_keys:
            cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class SharedFile:
    """A SQLite file several processes of this machine share (the Rasa server's Sanic workers):
    per-conversation locks, WeChat's replay memory, rate limits.

    Why a class: Sanic forks its workers after the channels and stores are built, and a SQLite
    connection must not cross a ``fork``; so each process opens its own connection on first use.
    Every change that reads before it writes goes through :meth:`transaction` (``BEGIN IMMEDIATE``):
    two processes never interleave one.
    """

    def __init__(self, path: str | Path, schema: Sequence[str], timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.schema = tuple(schema)
        self.timeout = timeout
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0

    def connection(self) -> sqlite3.Connection:
        """This process's connection (autocommit: transactions are explicit)."""
        if self._connection is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None,
                                 check_same_thread=False)
            use_wal(db, synchronous="NORMAL", timeout=self.timeout)
            for statement in self.schema:
                db.execute(statement)
            self._connection, self._pid = db, os.getpid()
        return self._connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed when the block ends, rolled back on error."""
        with self._lock:
            db = self.connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.connection().execute(sql, params).fetchall()
