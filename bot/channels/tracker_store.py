"""Rasa's SQL tracker store, with phone and identity numbers masked before they are stored.

Loaded by the **Rasa server** (its own venv) from ``endpoints.yml``::

    tracker_store:
      type: bot.channels.tracker_store.MaskingSQLTrackerStore

Every string inside every event (the citizen's text, parse data, entity and slot values, bot
texts) passes through :func:`bot.privacy.mask_text` on its way to the database, so the
tracker store never holds a readable phone or identity number. The ticket form never needs
one back from the tracker: the action server keeps the real number in its own ticket store.

Only this module and :mod:`bot.privacy` (standard library only) are imported by Rasa.
"""

from __future__ import annotations

import json
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker

from bot.privacy import mask_text


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
