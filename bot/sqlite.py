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

import sqlite3
import time
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
