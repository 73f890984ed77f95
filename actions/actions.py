"""Rasa custom actions. Each reads slots and the latest message, calls the guide service
in :mod:`bot.answering.service`, and sends the reply. No retrieval or wording lives here.

The service is reached through :func:`service`, resolved on first use; the action server
(``bot.servers.action_server``) warms it up before accepting requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.answering.answers import canonical_aspect
from bot.answering.service import GuideService, Reply, get_service
from bot.answering.social import courtesy
from bot.errors import BotError
from bot.settings import get_settings
from bot.tickets import get_recorder
from bot.tickets.intake import asks_about_a_ticket

logger = logging.getLogger(__name__)


def service() -> GuideService:
    return get_service()


def record(tracker: Tracker | None, reply: Reply) -> None:
    """Note what was asked and how it went, for the hall's reports (masked; never blocks)."""
    if tracker is None or reply.kind == "empty":
        return
    try:
        get_recorder().record_interaction(tracker.sender_id, tracker.latest_message.get("text") or "", reply.kind,
                                       reply.guide_id)
    except BotError as error:
        logger.warning("interaction not recorded: %s", error)


def send(
    dispatcher: CollectingDispatcher, reply: Reply, failures: int = 0, *, moves_on: bool = False,
    tracker: Tracker | None = None,
) -> list[EventType]:
    """Utter a :class:`Reply`, remember the guide it was about, and count unresolved turns.

    The text and buttons are what chat channels show. A second message carries the same answer as
    the reply contract (:class:`bot.contract.Answer`): its kind, the items it is about with short
    titles, a notification's sections and checklist, the sheet's address and the spoken form.
    """
    if reply.kind == "escalate":
        # A person asked for in so many words ("预约两次都失败，想找人工"), whatever the NLU took the
        # message for: the window's ticket form opens now, as the request_human rule would.
        record(tracker, reply)
        dispatcher.utter_message(response="utter_escalation")
        return [FollowupAction("ticket_form")]
    buttons = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
    dispatcher.utter_message(text=reply.text, buttons=buttons or None)
    record(tracker, reply)
    dispatcher.utter_message(json_message={"answer": service().to_answer(reply).to_json()})
    events: list[EventType] = [SlotSet("failures", 0.0 if reply.resolved else float(failures + 1))]
    if reply.kind == "empty":
        events = []
    if reply.event:
        # A life event is now under discussion, no single item: "在哪办" is asked of all its items.
        events += [SlotSet("event", reply.event), SlotSet("guide_id", None)]
    elif reply.guide_id or (moves_on and reply.kind != "empty"):
        # A new question moves the conversation on: if it found no single item, no item is
        # "under discussion" any more, so "那要多少钱？" will ask which one instead of guessing.
        events.append(SlotSet("guide_id", reply.guide_id))
        if moves_on:
            events.append(SlotSet("event", None))
    if reply.kind == "candidates" and tracker is not None:
        # Candidates offered by whichever action ("我在广州，办护照去哪里" is an inform; "注册公司要多久" an
        # aspect): the question they answer is remembered, so "要带什么" next is asked of the first of
        # them, and no earlier item stays under discussion.
        events += [SlotSet("last_question", tracker.latest_message.get("text") or ""), SlotSet("guide_id", None)]
    return events


def unavailable(dispatcher: CollectingDispatcher, error: BotError) -> list[EventType]:
    """The knowledge service cannot answer: say so and give the next step, never a traceback."""
    logger.error("guide service unavailable: %s", error)
    dispatcher.utter_message(response="utter_service_unavailable", hotline=get_settings().hotline)
    return []


def answer(
    dispatcher: CollectingDispatcher, produce: Callable[[GuideService], Reply], failures: int = 0,
    *, moves_on: bool = False, tracker: Tracker | None = None,
) -> list[EventType]:
    """Ask the service for a reply and send it, or say politely that the service is down."""
    try:
        reply = produce(service())
    except BotError as error:
        return unavailable(dispatcher, error)
    return send(dispatcher, reply, failures, moves_on=moves_on, tracker=tracker)


def _failures(tracker: Tracker) -> int:
    """Unresolved questions in a row so far (slot ``failures``)."""
    value = tracker.get_slot("failures")
    try:
        return max(0, int(float(value or 0)))
    except (TypeError, ValueError):
        return 0


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


def _respond(tracker: Tracker, intent: str) -> Callable[[GuideService], Reply | None]:
    """The service's answer to the latest message, read with the conversation's slots."""
    text = tracker.latest_message.get("text") or ""
    aspect, current = _aspect(tracker), tracker.get_slot("guide_id")
    item = _entity(tracker, "item")
    region, department = tracker.get_slot("region"), tracker.get_slot("department")
    failures, last, event = _failures(tracker), tracker.get_slot("last_question"), tracker.get_slot("event")
    return lambda s: s.respond(text, intent, current_id=current, aspect=aspect, names_item=item is not None,
                               region=region, department=department, failures=failures, last_question=last,
                               item_words=item, event=event)


def _always(produce: Callable[[GuideService], Reply | None]) -> Callable[[GuideService], Reply]:
    def run(service: GuideService) -> Reply:
        reply = produce(service)
        if reply is None:  # not for these intents: respond() always answers them
            raise AssertionError("no reply")
        return reply
    return run


class ActionAnswerGuide(Action):
    """Answer a question about an item: a follow-up about the item under discussion, else the full
    one-time notification of the item found (or candidates, or next steps)."""

    def name(self) -> str:
        return "action_answer_guide"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        chosen = _entity(tracker, "guide_id")
        if chosen:
            return answer(dispatcher, lambda s: s.answer_record(chosen))
        if courteous(dispatcher, tracker):
            return []
        text = tracker.latest_message.get("text") or ""
        failures = _failures(tracker)
        events = answer(dispatcher, _always(_respond(tracker, "ask_item")), failures, moves_on=True,
                        tracker=tracker)
        return [*events, SlotSet("last_question", text)]


class ActionAnswerAspect(Action):
    """Answer one aspect (fee, place, materials …) or any follow-up about the item under discussion."""

    def name(self) -> str:
        return "action_answer_aspect"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if courteous(dispatcher, tracker):
            return []
        return answer(dispatcher, _always(_respond(tracker, "ask_aspect")), _failures(tracker), tracker=tracker)


class ActionAnswerLifeEvent(Action):
    """Answer a life event (出生、结婚、购房…) with one combined notification across its items."""

    def name(self) -> str:
        return "action_answer_life_event"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text = tracker.latest_message.get("text") or ""
        event, current, item = _entity(tracker, "life_event"), tracker.get_slot("event"), tracker.get_slot("guide_id")
        return answer(dispatcher, lambda s: s.answer_life_event(event, text, current, item), _failures(tracker),
                      tracker=tracker)


class ActionApplyScope(Action):
    """A region or department was named ("我在广州", "我在广州，办护照去哪里"): a question in the same
    sentence is answered for it; a bare name re-answers the item under discussion or the last question."""

    def name(self) -> str:
        return "action_apply_scope"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if courteous(dispatcher, tracker):
            return []
        return answer(dispatcher, _always(_respond(tracker, "inform")), _failures(tracker), tracker=tracker)


#: The responses given when the knowledge base has nothing for a message of these intents.
OWN_RESPONSES = {"greet": ("utter_greet",), "chitchat": ("utter_chitchat",), "out_of_scope": ("utter_out_of_scope",),
                 "affirm": ("utter_affirm_ack",), "deny": ("utter_deny_ack",),
                 "goodbye": ("utter_goodbye", "utter_ask_rating"), "thank": ("utter_you_are_welcome",)}


def own_response(dispatcher: CollectingDispatcher, intent: str) -> None:
    for response in OWN_RESPONSES.get(intent, ("utter_out_of_scope",)):
        dispatcher.utter_message(response=response)


def courteous(dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """A message of courtesy only ("好的，谢谢，再见") gets the courtesy's own answer whatever the NLU
    took it for (:mod:`bot.answering.social`); True when it was one."""
    kind = courtesy(tracker.latest_message.get("text") or "")
    if kind is None:
        return False
    own_response(dispatcher, kind)
    return True


def triaged(dispatcher: CollectingDispatcher, tracker: Tracker, intent: str) -> list[EventType] | None:
    """Retrieval first for a message the NLU took for ``intent`` (small talk, a complaint, a status
    question, a rating without stars): the events of the answer sent, or None when the knowledge base
    has no confident answer and the intent's own flow should go on."""
    try:
        reply = _respond(tracker, intent)(service())
    except BotError as error:
        logger.warning("triage without the knowledge service: %s", error)
        return None
    if reply is None or reply.kind == "empty":
        return None
    return send(dispatcher, reply, _failures(tracker), tracker=tracker)


class ActionTriage(Action):
    """Greetings, thanks, goodbyes, small talk, out-of-scope and complaints, with retrieval asked first:
    a follow-up about the item under discussion or a question the knowledge base clearly answers is
    answered ("中午12点到1点半能办事吗" is no goodbye, whatever the NLU says); otherwise the intent's own
    response (goodbye: and the rating; complaint: slot ``escalate`` set, and the rules open the form)."""

    def name(self) -> str:
        return "action_triage"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = str((tracker.latest_message.get("intent") or {}).get("name") or "out_of_scope")
        if intent == "request_human":
            intent = "complain"  # the same question: does the knowledge base answer it, or does a person?
        if courteous(dispatcher, tracker):
            return [SlotSet("escalate", False)] if intent == "complain" else []
        events = triaged(dispatcher, tracker, intent)
        if events is None:
            if intent == "complain":
                return [SlotSet("escalate", True)]
            own_response(dispatcher, intent)
            return []
        return [*events, SlotSet("escalate", False)] if intent == "complain" else events


class ActionTriageComplaint(ActionTriage):
    """A complaint or a request for a person, retrieval first: the same as :class:`ActionTriage`, as its
    own action because it sets slot ``escalate`` (Rasa's rules need an action to set the same slots in
    every rule). A request for a person is weighed as a complaint: one that names a person or the
    window opens the form; a question the knowledge base answers is answered."""

    def name(self) -> str:
        return "action_triage_complaint"


class ActionTriageStatus(Action):
    """A ticket-status question, retrieval first unless it names a ticket (:func:`asks_about_a_ticket`):
    "有两个违章没处理，能年检吗" is a follow-up about the item under discussion, and the status form would
    ask it for a ticket number. Sets slot ``status_lookup``; the rules open the form when it is true."""

    def name(self) -> str:
        return "action_triage_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text = tracker.latest_message.get("text") or ""
        if asks_about_a_ticket(text) or _entity(tracker, "ticket_number"):
            return [SlotSet("status_lookup", True)]
        events = triaged(dispatcher, tracker, "ticket_status")
        return [SlotSet("status_lookup", True)] if events is None else [*events, SlotSet("status_lookup", False)]
