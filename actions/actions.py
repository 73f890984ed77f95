"""Rasa custom actions. Each reads slots and the latest message, calls the guide service
in :mod:`bot.service`, and sends the reply. No retrieval or wording lives here.

The service is reached through :func:`service`, resolved on first use; the action server
(``bot.action_server``) warms it up before accepting requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.answers import canonical_aspect
from bot.errors import BotError
from bot.service import GuideService, Reply, get_service
from bot.settings import load_settings

logger = logging.getLogger(__name__)


def service() -> GuideService:
    return get_service()


def send(dispatcher: CollectingDispatcher, reply: Reply) -> list[EventType]:
    """Utter a :class:`Reply` and remember the guide it was about."""
    buttons = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
    dispatcher.utter_message(text=reply.text, buttons=buttons or None)
    return [SlotSet("guide_id", reply.guide_id)] if reply.guide_id else []


def unavailable(dispatcher: CollectingDispatcher, error: BotError) -> list[EventType]:
    """The knowledge service cannot answer: say so and give the next step, never a traceback."""
    logger.error("guide service unavailable: %s", error)
    dispatcher.utter_message(response="utter_service_unavailable", hotline=load_settings().hotline)
    return []


def answer(dispatcher: CollectingDispatcher, produce: Callable[[GuideService], Reply]) -> list[EventType]:
    """Ask the service for a reply and send it, or say politely that the service is down."""
    try:
        reply = produce(service())
    except BotError as error:
        return unavailable(dispatcher, error)
    return send(dispatcher, reply)


def _entity(tracker: Tracker, name: str) -> str | None:
    value = next(tracker.get_latest_entity_values(name), None)
    return str(value) if value else None


def _aspect(tracker: Tracker) -> str | None:
    """The aspect asked in this message, else the one asked before ("那营业执照呢?").

    The NLU may pass several aspect spans, or spans its synonym list did not map; the first
    that names a known aspect wins.
    """
    for value in tracker.get_latest_entity_values("aspect"):
        aspect = canonical_aspect(str(value))
        if aspect:
            return aspect
    return canonical_aspect(tracker.get_slot("aspect"))


class ActionAnswerGuide(Action):
    """Answer a question about an item with its full one-time notification."""

    def name(self) -> str:
        return "action_answer_guide"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        chosen = _entity(tracker, "guide_id")
        if chosen:
            return answer(dispatcher, lambda s: s.answer_guide(chosen))
        text = tracker.latest_message.get("text") or ""
        return answer(dispatcher, lambda s: s.answer_question(text))


class ActionAnswerAspect(Action):
    """Answer one aspect (fee, place, materials …) of the item under discussion."""

    def name(self) -> str:
        return "action_answer_aspect"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text = tracker.latest_message.get("text") or ""
        aspect = _aspect(tracker)
        current = tracker.get_slot("guide_id")
        names_item = _entity(tracker, "item") is not None
        return answer(dispatcher, lambda s: s.answer_aspect(text, aspect, current, names_item=names_item))
