"""Ticket, status and rating actions: glue between Rasa forms and :mod:`bot.tickets`.

The forms (``domain.yml``) ask the questions; these actions check the answers, keep the
phone number out of the tracker (only a masked copy goes into the slot; the full number is
saved in the ticket store's draft for this conversation), and file the ticket. A dead
database is said so plainly: nothing is half-written, and "重新提交" tries again.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.privacy import fold, mask_phone, normalize_mobile
from bot.service import get_service
from bot.settings import load_settings
from bot.tickets import get_store
from bot.tickets.model import CATEGORIES, STATUSES, NewTicket, category_from_text
from bot.tickets.store import ACCESS_CODE_DIGITS, TicketError, TicketStoreUnavailable

logger = logging.getLogger(__name__)

CANCEL_WORDS = ("取消", "不办了", "不登记了", "算了", "不用登记", "退出")
SKIP_WORDS = ("跳过", "不用", "没有", "无", "不需要", "算了")
TICKET_SLOTS = ("ticket_category", "ticket_description", "ticket_name", "ticket_phone", "ticket_confirm")
TICKET_NUMBER = re.compile(r"BC\d{8}-\d{4,}", re.IGNORECASE)


def _text(value: Any) -> str:
    return str(value or "").strip()


def _cancelled(value: Any) -> bool:
    text = _text(value)
    return len(text) <= 8 and any(word in text for word in CANCEL_WORDS)


def _turn_key(tracker: Tracker) -> str:
    """The conversation turn that confirmed: a retry of the same turn gives the same key."""
    message_id = tracker.latest_message.get("message_id")
    if not message_id:
        message_id = next((str(e.get("timestamp")) for e in reversed(tracker.events) if e.get("event") == "user"), "")
    return f"{tracker.sender_id}:{message_id}"


def _hotline() -> str:
    return load_settings().hotline


def _unavailable(dispatcher: CollectingDispatcher) -> None:
    dispatcher.utter_message(
        text=f"抱歉，工单系统暂时无法保存，您的反映还没有登记（没有任何信息被保存）。"
             f"请稍后点“重新提交”再试，或拨打 {_hotline()}、到“办不成事反映窗口”当面反映。",
        buttons=[{"title": "重新提交", "payload": "/affirm"}, {"title": "先不登记", "payload": "/deny"}],
    )


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


class ValidateTicketForm(FormValidationAction):
    def name(self) -> str:
        return "validate_ticket_form"

    def validate_ticket_category(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                 domain: DomainDict) -> dict[str, Any]:
        if _cancelled(value):
            return _cancel_everything()
        code = category_from_text(_text(value))
        if code is None:
            dispatcher.utter_message(text="请点选下面的一类情况（也可以直接说“其他”）。")
            return {"ticket_category": None}
        return {"ticket_category": code}

    def validate_ticket_description(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> dict[str, Any]:
        if _cancelled(value):
            return _cancel_everything()
        text = _text(value)
        if len(text) < 4:
            dispatcher.utter_message(text="请再多说几句：办的是什么事、遇到了什么问题？")
            return {"ticket_description": None}
        return {"ticket_description": text[:1000]}

    def validate_ticket_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        if _cancelled(value):
            return _cancel_everything()
        name = re.sub(r"^(我叫|我是|叫我|姓)", "", _text(value)).strip(" ，,。")
        if not 1 <= len(name) <= 20 or any(ch.isdigit() for ch in name):
            dispatcher.utter_message(text="请告诉我您的姓名或姓氏（不超过20个字，不要带数字）。")
            return {"ticket_name": None}
        return {"ticket_name": name}

    def validate_ticket_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> dict[str, Any]:
        if _cancelled(value):
            return _cancel_everything()
        phone = normalize_mobile(_text(value))
        if phone is None:
            dispatcher.utter_message(text="这不像一个手机号码。请输入11位手机号，例如 13812345678。")
            return {"ticket_phone": None}
        try:
            get_store().save_draft_phone(tracker.sender_id, phone)
        except TicketStoreUnavailable:
            _unavailable(dispatcher)
            return _cancel_everything()
        return {"ticket_phone": mask_phone(phone)}


class ActionAskTicketConfirm(Action):
    """Read everything back before filing (the phone masked)."""

    def name(self) -> str:
        return "action_ask_ticket_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        category = CATEGORIES.get(tracker.get_slot("ticket_category") or "", "其他合理诉求")
        item = _item_title(tracker)
        lines = ["请核对您的反映：", f"· 类别：{category}"]
        if item:
            lines.append(f"· 事项：{item}")
        lines += [f"· 经过：{tracker.get_slot('ticket_description')}", f"· 称呼：{tracker.get_slot('ticket_name')}",
                  f"· 电话：{tracker.get_slot('ticket_phone')}", "确认提交吗？"]
        dispatcher.utter_message(text="\n".join(lines), buttons=[
            {"title": "确认提交", "payload": "/affirm"}, {"title": "取消", "payload": "/deny"}])
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
        reset = [SlotSet(slot, None) for slot in TICKET_SLOTS]
        gave_up = (tracker.latest_message.get("intent") or {}).get("name") == "deny"
        if gave_up or not tracker.get_slot("ticket_confirm"):
            _forget_draft(tracker)
            dispatcher.utter_message(response="utter_ticket_cancelled")
            return [*reset, SlotSet("ticket_failed", False)]
        try:
            store = get_store()
            phone = store.draft_phone(tracker.sender_id)
            new = NewTicket(
                category=tracker.get_slot("ticket_category") or "other",
                description=tracker.get_slot("ticket_description") or "",
                name=tracker.get_slot("ticket_name") or "",
                phone=phone, conversation_id=tracker.sender_id, item=_item_title(tracker),
            )
            ticket, _ = store.create(new, _turn_key(tracker))
        except TicketStoreUnavailable:
            _unavailable(dispatcher)
            return [SlotSet("ticket_failed", True)]
        except TicketError as error:
            logger.warning("ticket not created: %s", error)
            dispatcher.utter_message(text=f"抱歉，登记没有成功。请拨打 {_hotline()} 或到“办不成事反映窗口”当面反映。")
            return [*reset, SlotSet("ticket_failed", False)]
        dispatcher.utter_message(response="utter_ticket_filed", number=ticket.number, code=ticket.access_code or "",
                                 due=ticket.due_at.strftime("%m月%d日 %H:%M"))
        return [*reset, SlotSet("ticket_failed", False), SlotSet("failures", 0.0)]


class ValidateTicketStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_ticket_status_form"

    def validate_ticket_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        match = TICKET_NUMBER.search(unicodedata.normalize("NFKC", _text(value)).replace(" ", ""))
        if match is None:
            dispatcher.utter_message(text="工单编号的格式是 BC + 8位日期 + 序号，例如 BC20261126-0042。")
            return {"ticket_number": None}
        return {"ticket_number": match.group(0).upper()}

    def validate_ticket_code(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        digits = re.sub(r"\D", "", fold(_text(value)))
        if len(digits) != ACCESS_CODE_DIGITS:
            dispatcher.utter_message(text=f"查询码是登记时告诉您的{ACCESS_CODE_DIGITS}位数字，请再输入一次。")
            return {"ticket_code": None}
        return {"ticket_code": digits}


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
            dispatcher.utter_message(text=f"抱歉，工单系统暂时无法查询，请稍后再试或拨打 {_hotline()}。")
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
            detail = "工作人员已办结并与您联系；如对结果有疑问，请回复“转人工”或到“办不成事反映窗口”反映。"
        else:
            detail = f"应答复时间：{ticket.due_at:%m月%d日 %H:%M}。"
        dispatcher.utter_message(response="utter_ticket_status", number=ticket.number, status=status, detail=detail)
        return reset


class ActionRecordRating(Action):
    """Keep a rating (好差评); a bad one starts the callback form (rating_bad)."""

    def name(self) -> str:
        return "action_record_rating"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        raw = next(tracker.get_latest_entity_values("rating"), None) or tracker.get_slot("rating")
        digits = re.sub(r"\D", "", str(raw or ""))
        rating = int(digits[0]) if digits and 1 <= int(digits[0]) <= 5 else None
        if rating is None:
            dispatcher.utter_message(response="utter_ask_rating")
            return [SlotSet("rating_bad", False)]
        try:
            get_store().record_rating(tracker.sender_id, rating, None, tracker.get_slot("guide_id"))
        except TicketStoreUnavailable:
            logger.warning("rating not stored: ticket database unavailable")
        if rating >= 3:
            dispatcher.utter_message(text="感谢您的评价！祝您办事顺利。")
            return [SlotSet("rating", str(rating)), SlotSet("rating_bad", False)]
        return [SlotSet("rating", str(rating)), SlotSet("rating_bad", True)]


class ValidateCallbackForm(FormValidationAction):
    def name(self) -> str:
        return "validate_callback_form"

    def validate_rating_comment(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        text = _text(value)
        return {"rating_comment": "" if text in SKIP_WORDS else text[:1000]}

    def validate_callback_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        text = _text(value)
        if any(word == text for word in SKIP_WORDS):
            return {"callback_phone": "none"}
        phone = normalize_mobile(text)
        if phone is None:
            dispatcher.utter_message(text="请输入11位手机号，或回复“跳过”。")
            return {"callback_phone": None}
        try:
            get_store().save_draft_phone(tracker.sender_id, phone)
        except TicketStoreUnavailable:
            _unavailable(dispatcher)
            return {"callback_phone": "none"}
        return {"callback_phone": mask_phone(phone)}


class ActionCreateCallbackTicket(Action):
    """A bad rating becomes a ticket due for a callback within 24 hours."""

    def name(self) -> str:
        return "action_create_callback_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet("rating_comment", None), SlotSet("callback_phone", None), SlotSet("rating_bad", False)]
        rating = int(tracker.get_slot("rating") or 1)
        comment = tracker.get_slot("rating_comment") or ""
        wants_call = (tracker.get_slot("callback_phone") or "none") != "none"
        try:
            store = get_store()
            phone = store.draft_phone(tracker.sender_id) if wants_call else None
            new = NewTicket(category="other", description=f"差评（{rating}星）：{comment or '未填写原因'}",
                            name="评价人", phone=phone, conversation_id=tracker.sender_id,
                            item=_item_title(tracker), source="bad_rating", rating=rating)
            ticket, _ = store.create(new, _turn_key(tracker))
        except TicketStoreUnavailable:
            dispatcher.utter_message(text=f"抱歉，系统暂时无法登记回访。您可以拨打 {_hotline()} 反映。")
            return reset
        if phone:
            dispatcher.utter_message(
                text=f"已登记回访，编号 {ticket.number}，查询码 {ticket.access_code}。"
                     "工作人员会在24小时内给您回电。谢谢您的意见！")
        else:
            dispatcher.utter_message(
                text=f"已记录您的意见（编号 {ticket.number}，查询码 {ticket.access_code}）。"
                     f"您没有留电话，如需回复请拨打 {_hotline()}。")
        return reset
