"""Tickets for the "unresolvable matter" window: rules (:mod:`.model`) and storage (:mod:`.store`).

:func:`get_store` is the process-wide store, built from the settings on first use and
migrated once; tests and servers may install their own with :func:`install_store`.
"""

from __future__ import annotations

import threading

from bot.tickets.store import TicketStore

_lock = threading.Lock()
_store: TicketStore | None = None


def install_store(store: TicketStore | None) -> None:
    global _store
    with _lock:
        _store = store


def get_store() -> TicketStore:
    """The process-wide ticket store (thread-safe; migrates the schema on first use).

    Raises:
        TicketStoreUnavailable: when the database cannot be reached (the next call tries again).
    """
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                from bot.settings import load_settings

                settings = load_settings()
                store = TicketStore(settings.tickets_db_url, timezone=settings.hall_timezone)
                store.migrate()
                _store = store
    return _store
