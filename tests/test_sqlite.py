"""The WAL switch both SQLite stores make on every new connection (bot/sqlite.py).

SQLite answers ``PRAGMA journal_mode=WAL`` with ``database is locked`` at once, without its busy
handler, when another connection is switching the same new file at that moment: CI saw two action
servers' ticket stores trip over each other this way. These tests pin the retry."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from bot.sqlite import use_wal


class _Cursor:
    def __init__(self, conn: _LockedConnection) -> None:
        self.conn = conn

    def execute(self, sql: str) -> None:
        self.conn.calls.append(sql)
        if sql.startswith("PRAGMA journal_mode") and self.conn.locked_for > 0:
            self.conn.locked_for -= 1
            raise sqlite3.OperationalError(self.conn.error)

    def close(self) -> None:
        self.conn.closed += 1


class _LockedConnection:
    """A DB-API connection whose WAL switch finds the database locked ``locked_for`` times."""

    def __init__(self, locked_for: int, error: str = "database is locked") -> None:
        self.locked_for = locked_for
        self.error = error
        self.calls: list[str] = []
        self.closed = 0

    def cursor(self) -> _Cursor:
        return _Cursor(self)


def test_a_locked_switch_is_retried_then_the_pragmas_follow():
    conn = _LockedConnection(locked_for=3)
    use_wal(conn, synchronous="NORMAL", foreign_keys=True)
    assert conn.calls == ["PRAGMA journal_mode=WAL"] * 4 + ["PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"]
    assert conn.closed == 1


def test_a_database_locked_for_longer_than_the_timeout_is_an_error():
    conn = _LockedConnection(locked_for=10**6)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(conn, timeout=0.05)
    assert conn.closed == 1


def test_other_errors_are_not_retried():
    conn = _LockedConnection(locked_for=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        use_wal(conn)
    assert conn.calls == ["PRAGMA journal_mode=WAL"]


def test_connections_opening_a_new_database_together_all_get_wal(tmp_path):
    """The real race: eight connections switch fresh files at the same moment, 25 times over
    (without the retry about one round in twenty-five failed on a 2-core machine)."""
    for round_ in range(25):
        path = tmp_path / f"r{round_}.db"
        barrier = threading.Barrier(8)
        modes: list[str] = []
        errors: list[BaseException] = []

        def open_one(path=path, barrier=barrier, modes=modes, errors=errors) -> None:
            try:
                barrier.wait()
                conn = sqlite3.connect(path, timeout=15, isolation_level=None)
                use_wal(conn)
                modes.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
                conn.close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, (round_, errors)
        assert modes == ["wal"] * 8
