"""Rasa's SQL tracker store, with phone and identity numbers masked before they are stored.

Loaded by the **Rasa server** (its own venv) from ``endpoints.yml``::

    tracker_store:
      type: bot.channels.tracker_store.MaskingSQLTrackerStore

Every string inside every event (the citizen's text, parse data, entity and slot values, bot
texts) passes through :func:`bot.privacy.mask_text` on its way to the database, so the
tracker store never holds a readable phone or identity number. The ticket form never needs
one back from the tracker: the action server keeps the real number in its own ticket store.

On SQLite (the embedded default) the database runs in WAL mode with ``synchronous=NORMAL`` and a
few connections stay open: a commit no longer waits for the disk (an ``fsync`` on every turn
blocked Rasa's event loop for every conversation at once) and no connection is opened per read or
write. A crash of the process loses nothing, a power cut at most the last turns (tickets live in
their own store, which keeps full sync). Building the store also applies the Rasa-side CPU cuts
(:mod:`bot.channels.tuning`).

Only this module, :mod:`bot.channels.tuning` and :mod:`bot.privacy` (standard library only) are
imported by Rasa.
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import event as sa_event
from sqlalchemy.pool import QueuePool

from bot.channels import tuning
from bot.privacy import mask_text
from bot.sqlite import use_wal

#: How far back :meth:`MaskingSQLTrackerStore.last_bot_turn` looks for the citizen's last message.
LAST_TURN_EVENTS = 60

#: Trackers this process read or saved, by ``id``: (the tracker, how many of its events are stored).
#: An entry holds its tracker (so its ``id`` cannot be reused) until :data:`STORED_TRACKERS` newer ones
#: push it out; a tracker not found here is counted by Rasa's own query.
_stored: OrderedDict[int, tuple[DialogueStateTracker, int]] = OrderedDict()
STORED_TRACKERS = 256


def mask_value(value: Any) -> Any:
    """``value`` with every string in it masked (dicts and lists walked)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: mask_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_value(item) for item in value]
    return value


class MaskingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` whose stored events have numbers masked."""

    engine: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        tuning.apply()
        super().__init__(*args, **kwargs)
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            # SQLAlchemy 1.4 opens and closes a file database's connection for every session (NullPool):
            # a few connections are kept instead (Rasa uses the store from its event loop's thread).
            url = self.engine.url
            self.engine.dispose()
            self.engine = sa.create_engine(url, poolclass=QueuePool, pool_size=2, max_overflow=8,
                                           connect_args={"check_same_thread": False})
            sa_event.listen(self.engine, "connect", _sqlite_pragmas)
            self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def last_bot_turn(self, sender_id: str) -> list[dict[str, Any]]:
        """The data of every bot message since the citizen's last message (oldest first), read
        from the newest rows only: what the channel needs to map typed words to buttons, without
        loading and replaying the whole conversation."""
        with self.session_scope() as session:
            rows = (session.query(self.SQLEvent.type_name, self.SQLEvent.data)
                    .filter(self.SQLEvent.sender_id == sender_id)
                    .order_by(self.SQLEvent.id.desc()).limit(LAST_TURN_EVENTS).all())
        turn: list[dict[str, Any]] = []
        for type_name, data in rows:
            if type_name == "user":
                break
            if type_name == "bot":
                turn.insert(0, (json.loads(data or "{}").get("data")) or {})
        return turn

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> DialogueStateTracker | None:
        """Rasa's own read, loading only the ``data`` column: the same events, without building an
        ORM object per row (a third of reading a tracker once the event classes come from a table)."""
        with self.session_scope() as session:
            rows = (self._event_query(session, sender_id, fetch_events_from_all_sessions=fetch_events_from_all_sessions)
                    .with_entities(self.SQLEvent.data).all())
        events = [json.loads(data) for (data,) in rows]
        if self.domain and events:
            tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
            if not fetch_events_from_all_sessions:
                _remember(tracker)
            return tracker
        return None

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Any:
        """The events not stored yet. A tracker this store read (or saved) knows how many of its events
        are stored — the same number Rasa's count query would find, since the conversation's lock keeps
        every other worker out between the read and the save — so the query runs only for others."""
        known = _stored.get(id(tracker))
        if known is not None and known[0] is tracker and known[1] <= len(tracker.events):
            return itertools.islice(tracker.events, known[1], len(tracker.events))
        return super()._additional_events(session, tracker)

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)
        with self.session_scope() as session:
            for event in self._additional_events(session, tracker):
                data = mask_value(event.as_dict())
                intent = (data.get("parse_data") or {}).get("intent", {}).get("name")
                session.add(self.SQLEvent(
                    sender_id=tracker.sender_id, type_name=event.type_name, timestamp=data.get("timestamp"),
                    intent_name=intent, action_name=data.get("name"), data=json.dumps(data),
                ))
            session.commit()
        _remember(tracker)


def _remember(tracker: DialogueStateTracker) -> None:
    _stored[id(tracker)] = (tracker, len(tracker.events))
    _stored.move_to_end(id(tracker))
    while len(_stored) > STORED_TRACKERS:
        _stored.popitem(last=False)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    use_wal(connection, synchronous="NORMAL")
