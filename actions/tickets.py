"""Ticket, status and rating actions: rasa_sdk glue over :mod:`bot.tickets`.

The forms (``domain.yml``) ask the questions; :mod:`bot.tickets.intake` decides what counts as
an answer, the ticket store keeps the phone number (the slot only ever holds it masked; the full
number goes from the store's draft into the ticket inside the store), and the wording is in
``domain.yml``'s responses. A dead database is said so plainly: nothing is half-written, and
"重新提交" tries again.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.actions import triaged
from bot.answering.service import get_service
from bot.privacy import mask_phone
from bot.settings import get_settings
from bot.tickets import get_recorder, get_store, intake
from bot.tickets.model import CATEGORIES, STATUSES, DraftTicket
from bot.tickets.store import TicketError, TicketStoreUnavailable

logger = logging.getLogger(__name__)

#: Sent with "the ticket system cannot save": the same payloads as the confirmation's buttons, so
#: tapping (or saying) 重新提交 files again through the "saving failed" rules.
RETRY_BUTTONS = [{"title": "重新提交", "payload": "/affirm"}, {"title": "先不登记", "payload": "/deny"}]
DUE_FORMAT = "%m月%d日 %H:%M"


def _turn_key(tracker: Tracker) -> str:
    """The conversation turn that confirmed: a retry of the same turn gives the same key."""
    message_id = tracker.latest_message.get("message_id")
    if not message_id:
        message_id = next((str(e.get("timestamp")) for e in reversed(tracker.events) if e.get("event") == "user"), "")
    return f"{tracker.sender_id}:{message_id}"


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def _hotline() -> str:
    return get_settings().hotline


def _unavailable(dispatcher: CollectingDispatcher) -> None:
    dispatcher.utter_message(response="utter_ticket_store_unavailable", hotline=_hotline(), buttons=RETRY_BUTTONS)


def _forget_draft(tracker: Tracker) -> None:
    """A cancelled form leaves no phone number behind."""
    try:
        get_store().forget_draft(tracker.sender_id)
    except TicketStoreUnavailable:
        logger.warning("draft not deleted now: ticket database unavailable (it expires on its own)")


def _cancel_everything() -> dict[str, Any]:
    """Fill the form so it ends at once; action_create_ticket then sees ticket_confirm False."""
    return {"ticket_category": "-", "ticket_description": "-", "ticket_name": "-", "ticket_phone": "-",
            "ticket_confirm": False}


def _slot(name: str, checked: intake.Checked, dispatcher: CollectingDispatcher) -> dict[str, Any]:
    """A checked answer as the slot update the form expects (asking again after a problem)."""
    if checked.cancelled:
        return _cancel_everything()
    if checked.problem:
        dispatcher.utter_message(response=checked.problem)
    return {name: checked.value}


class ValidateTicketForm(FormValidationAction):
    def name(self) -> str:
        return "validate_ticket_form"

    def validate_ticket_category(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                 domain: DomainDict) -> dict[str, Any]:
        return _slot("ticket_category", intake.check_category(value), dispatcher)

    def validate_ticket_description(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> dict[str, Any]:
        return _slot("ticket_description", intake.check_description(value), dispatcher)

    def validate_ticket_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        return _slot("ticket_name", intake.check_name(value), dispatcher)

    def validate_ticket_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> dict[str, Any]:
        checked = intake.check_phone(value)
        if not checked.ok:
            return _slot("ticket_phone", checked, dispatcher)
        try:
            get_store().save_draft_phone(tracker.sender_id, checked.value)
        except TicketStoreUnavailable:
            _unavailable(dispatcher)
            return _cancel_everything()
        return {"ticket_phone": mask_phone(checked.value)}

    def extract_ticket_confirm(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        """At the confirmation, its own button payloads and plain yes or no words answer it, whatever
        intent the words were classified as (so the form goes on instead of being interrupted)."""
        if tracker.get_slot("requested_slot") != "ticket_confirm":
            return {}
        answer = intake.confirmation(tracker.latest_message.get("text"))
        return {} if answer is None else {"ticket_confirm": answer}

    def validate_ticket_confirm(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        answer = value if isinstance(value, bool) else intake.confirmation(value)
        return {"ticket_confirm": answer}


class ActionAskTicketConfirm(Action):
    """Read back the cleaned answers before filing (the phone masked)."""

    def name(self) -> str:
        return "action_ask_ticket_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        item = _item_title(tracker)
        dispatcher.utter_message(
            response="utter_ticket_confirm_item" if item else "utter_ticket_confirm",
            category=CATEGORIES.get(tracker.get_slot("ticket_category") or "", CATEGORIES["other"]),
            description=tracker.get_slot("ticket_description") or "", name=tracker.get_slot("ticket_name") or "",
            phone=tracker.get_slot("ticket_phone") or "", **({"item": item} if item else {}))
        return []


def _item_title(tracker: Tracker) -> str | None:
    guide_id = tracker.get_slot("guide_id")
    if not guide_id:
        return None
    try:
        guide = get_service().guide(guide_id)
    except Exception:  # the knowledge service being down must not block filing a ticket
        return None
    return guide.title if guide else None


class ActionCreateTicket(Action):
    """File the ticket once the citizen confirmed; idempotent per confirming turn."""

    def name(self) -> str:
        return "action_create_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet(slot, None) for slot in intake.TICKET_SLOTS]
        answer = intake.confirmation(tracker.latest_message.get("text"), _intent(tracker))
        if answer is False or not tracker.get_slot("ticket_confirm"):
            _forget_draft(tracker)
            dispatcher.utter_message(response="utter_ticket_cancelled")
            return [*reset, SlotSet("ticket_failed", False)]
        draft = DraftTicket(
            category=tracker.get_slot("ticket_category") or "other",
            description=tracker.get_slot("ticket_description") or "",
            name=tracker.get_slot("ticket_name") or "", conversation_id=tracker.sender_id, item=_item_title(tracker),
        )
        try:
            ticket, _ = get_store().create_from_draft(draft, _turn_key(tracker))
        except TicketStoreUnavailable:
            _unavailable(dispatcher)
            return [SlotSet("ticket_failed", True)]
        except TicketError as error:
            logger.warning("ticket not created: %s", error)
            dispatcher.utter_message(response="utter_ticket_not_filed", hotline=_hotline())
            return [*reset, SlotSet("ticket_failed", False)]
        dispatcher.utter_message(response="utter_ticket_filed", number=ticket.number, code=ticket.access_code or "",
                                 due=ticket.due_at.strftime(DUE_FORMAT))
        return [*reset, SlotSet("ticket_failed", False), SlotSet("failures", 0.0)]


class ValidateTicketStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_ticket_status_form"

    def validate_ticket_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        return _slot("ticket_number", intake.check_ticket_number(value), dispatcher)

    def validate_ticket_code(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        return _slot("ticket_code", intake.check_access_code(value), dispatcher)


class ActionTicketStatus(Action):
    """A ticket's status and answer-by time, for a citizen who gives its number and access code.

    Nothing else is said about the ticket (no staff names, no resolution text): whoever asks
    here has only shown they hold the number and code."""

    def name(self) -> str:
        return "action_ticket_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet("ticket_number", None), SlotSet("ticket_code", None)]
        number, code = tracker.get_slot("ticket_number") or "", tracker.get_slot("ticket_code") or ""
        try:
            found = get_store().lookup(number, code, asker=tracker.sender_id)
        except TicketStoreUnavailable:
            dispatcher.utter_message(response="utter_ticket_status_unavailable", hotline=_hotline())
            return reset
        if found.outcome == "locked":
            dispatcher.utter_message(response="utter_ticket_locked", hotline=_hotline())
            return reset
        ticket = found.ticket
        if ticket is None:
            dispatcher.utter_message(response="utter_ticket_not_found", hotline=_hotline())
            return reset
        status = STATUSES.get(ticket.status, ticket.status)
        if ticket.status == "resolved":
            dispatcher.utter_message(response="utter_ticket_status_resolved", number=ticket.number, status=status)
        else:
            dispatcher.utter_message(response="utter_ticket_status", number=ticket.number, status=status,
                                     due=ticket.due_at.strftime(DUE_FORMAT))
        return reset


class ActionRecordRating(Action):
    """Keep a rating (好差评); a bad one starts the callback form (rating_bad)."""

    def name(self) -> str:
        return "action_record_rating"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        said = next(tracker.get_latest_entity_values("rating"), None)
        rating = intake.rating_from(said or tracker.get_slot("rating"))
        if rating is None:
            # No stars in it ("中午12点到1点半能办事吗" read as a rating): a question retrieval can answer
            # is answered; otherwise the rating is asked for.
            answered = triaged(dispatcher, tracker, "rate")
            if answered is None:
                dispatcher.utter_message(response="utter_ask_rating")
            return [*(answered or []), SlotSet("rating_bad", False)]
        try:
            get_recorder().record_rating(tracker.sender_id, rating, None, tracker.get_slot("guide_id"))
        except TicketStoreUnavailable:
            logger.warning("rating not stored: ticket database unavailable")
        if not intake.is_bad_rating(rating):
            dispatcher.utter_message(response="utter_rating_thanks")
            return [SlotSet("rating", str(rating)), SlotSet("rating_bad", False)]
        return [SlotSet("rating", str(rating)), SlotSet("rating_bad", True)]


class ValidateCallbackForm(FormValidationAction):
    def name(self) -> str:
        return "validate_callback_form"

    def validate_rating_comment(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        return {"rating_comment": intake.check_comment(value)}

    def validate_callback_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        checked = intake.check_callback_phone(value)
        if not checked.ok or checked.value == intake.NO_PHONE:
            return _slot("callback_phone", checked, dispatcher)
        try:
            get_store().save_draft_phone(tracker.sender_id, checked.value)
        except TicketStoreUnavailable:
            _unavailable(dispatcher)
            return {"callback_phone": intake.NO_PHONE}
        return {"callback_phone": mask_phone(checked.value)}


class ActionCreateCallbackTicket(Action):
    """A bad rating becomes a ticket due for a callback within 24 hours."""

    def name(self) -> str:
        return "action_create_callback_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet("rating_comment", None), SlotSet("callback_phone", None), SlotSet("rating_bad", False)]
        rating = intake.rating_from(tracker.get_slot("rating")) or 1  # never trust a slot to be a number
        wants_call = (tracker.get_slot("callback_phone") or intake.NO_PHONE) != intake.NO_PHONE
        draft = DraftTicket(category="other",
                            description=intake.callback_description(rating, tracker.get_slot("rating_comment") or ""),
                            name=intake.CALLBACK_NAME, conversation_id=tracker.sender_id, item=_item_title(tracker),
                            source="bad_rating", rating=rating)
        try:
            ticket, _ = get_store().create_from_draft(draft, _turn_key(tracker), with_phone=wants_call)
        except TicketStoreUnavailable:
            dispatcher.utter_message(response="utter_callback_unavailable", hotline=_hotline())
            return reset
        if ticket.phone:
            dispatcher.utter_message(response="utter_callback_filed", number=ticket.number,
                                     code=ticket.access_code or "")
        else:
            dispatcher.utter_message(response="utter_callback_noted", number=ticket.number,
                                     code=ticket.access_code or "", hotline=_hotline())
        return reset
