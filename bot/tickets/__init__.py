"""Tickets for the "unresolvable matter" window: rules (:mod:`.model`) and storage (:mod:`.store`).

:func:`get_store` is the process-wide store, built from the settings on first use and
migrated once; tests and servers may install their own with :func:`install_store`.
"""

from __future__ import annotations

import datetime as dt

from bot.lazy import Lazy
from bot.tickets.store import TicketStore


def _open() -> TicketStore:
    from bot.settings import load_settings

    settings = load_settings()
    store = TicketStore(settings.tickets_db_url, timezone=settings.hall_timezone,
                        draft_ttl=dt.timedelta(minutes=settings.draft_ttl_minutes))
    store.migrate()
    return store


_store: Lazy[TicketStore] = Lazy(_open)


def install_store(store: TicketStore | None) -> None:
    _store.install(store)


def get_store() -> TicketStore:
    """The process-wide ticket store (thread-safe; migrates the schema on first use).

    Raises:
        TicketStoreUnavailable: when the database cannot be reached (the next call tries again).
    """
    return _store.get()
