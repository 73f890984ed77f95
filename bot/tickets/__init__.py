"""Tickets for the "unresolvable matter" window.

* :mod:`.model`: the window's rules as data (categories, triage, statuses);
* :mod:`.intake`: what counts as an answer to the ticket, status and callback forms;
* :mod:`.hours`: working days, holidays, office hours, and so the due times;
* :mod:`.store`: the tickets and the form's phone drafts; :mod:`.recorder`: questions and
  ratings, for the reports, in the same database.

:func:`get_store` is the process-wide store, built from the settings on first use and
migrated once (:func:`open_store` builds one the same way for the staff server and the
reports); tests and servers may install their own with :func:`install_store`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from bot.lazy import Lazy
from bot.tickets.hours import office_calendar
from bot.tickets.recorder import Recorder
from bot.tickets.store import TicketStore

if TYPE_CHECKING:
    from bot.settings import Settings


def open_store(settings: Settings | None = None) -> TicketStore:
    """A ticket store as the settings describe it (database, time zone, draft lifetime, the
    office's calendar), migrated. Every process that reads or writes tickets opens it this way,
    so all of them judge due times by the same clock.

    Raises:
        TicketStoreUnavailable: when the database cannot be reached.
        ConfigError: when a setting cannot be used.
    """
    from bot.settings import get_settings

    settings = settings or get_settings()
    store = TicketStore(settings.tickets_db_url, timezone=settings.hall_timezone,
                        draft_ttl=dt.timedelta(minutes=settings.draft_ttl_minutes), calendar=office_calendar())
    store.migrate()
    return store


_store: Lazy[TicketStore] = Lazy(open_store)


def install_store(store: TicketStore | None) -> None:
    _store.install(store)


def get_store() -> TicketStore:
    """The process-wide ticket store (thread-safe; migrates the schema on first use).

    Raises:
        TicketStoreUnavailable: when the database cannot be reached (the next call tries again).
    """
    return _store.get()


def get_recorder() -> Recorder:
    """The recorder of questions and ratings, on the process-wide store's database and clock."""
    return Recorder.over(get_store())
