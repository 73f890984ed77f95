"""The ticket, status and callback forms' actions, run on JSON trackers the way Rasa sends them.

As in Rasa's financial-demo, each test builds a ``rasa_sdk.Tracker`` from a JSON dict (the slots,
the latest message and the events Rasa would send for that turn, with the slot candidates its
mappings extracted at the end), runs the validator or action with the real ``domain.yml`` and
asserts the events it returns; what the citizen would read is rendered from the domain's
responses (``tests/responses.py``), and no ``{placeholder}`` may be left unfilled.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

import actions.tickets as glue
from actions.tickets import (
    ActionAskTicketConfirm,
    ActionCreateCallbackTicket,
    ActionCreateTicket,
    ActionRecordRating,
    ActionTicketStatus,
    ValidateCallbackForm,
    ValidateTicketForm,
    ValidateTicketStatusForm,
)
from bot.channels.buttons import match_button
from bot.settings import ROOT
from bot.tickets import get_store, install_store
from bot.tickets.recorder import Recorder
from bot.tickets.store import TicketStore
from tests.responses import rendered, responses, said

#: The domain as Rasa sends it with every action call (forms, slots, responses).
DOMAIN: dict[str, Any] = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
FRIDAY_EVENING = dt.datetime(2026, 11, 27, 19, 45)
PHONE = "13812345678"

#: One turn, written out: the form has asked for confirmation and the citizen typed "对，提交吧",
#: which the NLU took for a complaint (so Rasa's from_intent mapping filled nothing).
CONFIRM_MISREAD = """
{
  "sender_id": "citizen-1",
  "slots": {"requested_slot": "ticket_confirm", "ticket_category": "failed",
            "ticket_description": "网上申请营业执照三次都被退回", "ticket_name": "王",
            "ticket_phone": "138****5678", "ticket_confirm": null},
  "latest_message": {"text": "对，提交吧", "message_id": "m5",
                     "intent": {"name": "complain", "confidence": 0.61}, "entities": []},
  "events": [
    {"event": "action", "name": "action_ask_ticket_confirm"},
    {"event": "action", "name": "action_listen"},
    {"event": "user", "text": "对，提交吧",
     "parse_data": {"intent": {"name": "complain", "confidence": 0.61}, "entities": []}}
  ],
  "paused": false,
  "followup_action": null,
  "active_loop": {"name": "ticket_form"},
  "latest_action_name": "action_listen"
}
"""


def turn(text: str, *, requested: str | None = None, intent: str = "inform", slots: dict[str, Any] | None = None,
         form: str = "ticket_form", message_id: str = "m1", sender: str = "citizen-1") -> dict[str, Any]:
    """The JSON tracker Rasa sends when the citizen answers ``requested`` with ``text``: the slot
    candidates the domain's mappings extract (from_text, or from_intent for the confirmation) are
    the last events."""
    slots = dict(slots or {})
    candidates: dict[str, Any] = {}
    if requested == "ticket_confirm":
        value = {"affirm": True, "deny": False}.get(intent)
        if value is not None:
            candidates[requested] = value
    elif requested:
        candidates[requested] = text
    parse = {"intent": {"name": intent, "confidence": 0.93}, "entities": []}
    state = {
        "sender_id": sender,
        "slots": {**slots, "requested_slot": requested, **candidates},
        "latest_message": {"text": text, "message_id": message_id, **parse},
        "events": [
            {"event": "action", "name": form},
            {"event": "active_loop", "name": form},
            {"event": "slot", "name": "requested_slot", "value": requested},
            {"event": "action", "name": "action_listen"},
            {"event": "user", "text": text, "parse_data": parse},
            *({"event": "slot", "name": k, "value": v} for k, v in candidates.items()),
        ],
        "paused": False,
        "followup_action": None,
        "active_loop": {"name": form} if requested else {},
        "latest_action_name": "action_listen",
    }
    return json.loads(json.dumps(state, ensure_ascii=False))  # exactly what survives the wire


def run(action, state: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, Tracker.from_dict(state), DOMAIN))
    for message in dispatcher.messages:  # every response exists, and every {value} it needs was passed
        if message.get("response"):
            assert message["response"] in responses(), message["response"]
        assert not re.search(r"\{\w+\}", rendered(message)), rendered(message)
    return events, dispatcher.messages


def names(messages: list[dict[str, Any]]) -> list[str | None]:
    return [m.get("response") for m in messages]


def slots_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def store(tmp_path):
    previous = get_store()
    clock = Clock(FRIDAY_EVENING)
    ticket_store = TicketStore(f"sqlite:///{tmp_path / 'tickets.db'}", clock=clock)
    ticket_store.migrate()
    ticket_store.clock = clock
    install_store(ticket_store)
    yield ticket_store
    install_store(previous)
    ticket_store.engine.dispose()


def stored_phones(store: TicketStore) -> list[str | None]:
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("select phone from tickets order by id"))]


# --- A: the answers are cleaned -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "name"), [
    ("我姓王", "王"), ("叫我李女士就行", "李女士"), ("我是张三", "张三"), ("免贵姓刘", "刘"), ("王先生", "王先生"),
])
def test_the_name_slot_gets_the_cleaned_name(text, name):
    events, messages = run(ValidateTicketForm(), turn(text, requested="ticket_name"))
    assert events == [SlotSet("ticket_name", name)] and messages == []


def test_an_unusable_name_is_asked_again():
    events, messages = run(ValidateTicketForm(), turn("13812345678", requested="ticket_name"))
    assert events == [SlotSet("ticket_name", None)] and names(messages) == ["utter_ticket_name_invalid"]


@pytest.mark.parametrize("text", ["138 1234 5678", "138-1234-5678", "138.1234.5678", "１３８１２３４５６７８",
                                  "+86 13812345678", "+86 138-1234-5678"])
def test_phones_in_every_usual_shape_are_kept_in_the_store_and_masked_in_the_slot(store, text):
    events, messages = run(ValidateTicketForm(), turn(text, requested="ticket_phone", sender="phone-owner"))
    assert events == [SlotSet("ticket_phone", "138****5678")] and messages == []
    assert store.has_draft("phone-owner")


def test_a_wrong_phone_is_asked_again_and_nothing_is_kept(store):
    events, messages = run(ValidateTicketForm(), turn("12345", requested="ticket_phone", sender="typo"))
    assert events == [SlotSet("ticket_phone", None)] and names(messages) == ["utter_ticket_phone_invalid"]
    assert "11位" in said(messages) and not store.has_draft("typo")


def test_the_description_is_kept_verbatim():
    text = "我姓王，网上申请营业执照（第3次）又被退回，\n窗口说“材料不全”，可清单上的都带了！"
    events, _ = run(ValidateTicketForm(), turn(f" {text} ", requested="ticket_description"))
    assert events == [SlotSet("ticket_description", text)]


def test_the_category_button_and_a_too_short_description():
    events, _ = run(ValidateTicketForm(), turn("多次办理仍未办成", requested="ticket_category"))
    assert events == [SlotSet("ticket_category", "repeated")]
    events, messages = run(ValidateTicketForm(), turn("不行", requested="ticket_description"))
    assert events == [SlotSet("ticket_description", None)]
    assert names(messages) == ["utter_ticket_description_too_short"]


@pytest.mark.parametrize("requested", ["ticket_category", "ticket_description", "ticket_name", "ticket_phone"])
def test_cancelling_at_any_step_ends_the_form_unconfirmed(requested):
    events, messages = run(ValidateTicketForm(), turn("算了", requested=requested))
    assert slots_of(events)["ticket_confirm"] is False and messages == []
    assert all(slots_of(events)[slot] == "-" for slot in ("ticket_category", "ticket_name", "ticket_phone"))


def test_a_dead_database_at_the_phone_step_says_so_and_keeps_nothing(monkeypatch):
    previous = get_store()
    install_store(TicketStore("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    try:
        events, messages = run(ValidateTicketForm(), turn(PHONE, requested="ticket_phone"))
    finally:
        install_store(previous)
    assert slots_of(events)["ticket_confirm"] is False
    assert names(messages) == ["utter_ticket_store_unavailable"]
    assert "没有任何信息被保存" in said(messages) and "12345" in said(messages)
    assert [b["payload"] for b in messages[0]["buttons"]] == ["/affirm", "/deny"]


def fill_the_form(sender: str, answers: list[tuple[str, str]]) -> dict[str, Any]:
    """Answer the form's questions one turn at a time, keeping what the validator returns."""
    slots: dict[str, Any] = {}
    for n, (requested, text) in enumerate(answers):
        events, _ = run(ValidateTicketForm(), turn(text, requested=requested, slots=slots, sender=sender,
                                                   message_id=f"m{n}"))
        slots.update(slots_of(events))
    return slots


def test_the_read_back_shows_the_cleaned_answers(store):
    slots = fill_the_form("citizen-2", [
        ("ticket_category", "多次办理仍未办成"), ("ticket_description", "网上申请营业执照三次都被退回，也没说原因"),
        ("ticket_name", "我姓王"), ("ticket_phone", "+86 138-1234-5678")])
    assert slots == {"ticket_category": "repeated", "ticket_description": "网上申请营业执照三次都被退回，也没说原因",
                     "ticket_name": "王", "ticket_phone": "138****5678"}
    events, messages = run(ActionAskTicketConfirm(), turn("+86 138-1234-5678", slots=slots, sender="citizen-2"))
    text = said(messages)
    assert events == [] and names(messages) == ["utter_ticket_confirm"]
    assert "· 称呼：王\n" in text and "我姓王" not in text
    assert "· 电话：138****5678" in text and PHONE not in json.dumps(messages)
    assert "· 类别：多次办理仍未办成" in text and "· 经过：网上申请营业执照三次都被退回，也没说原因" in text
    assert "事项" not in text
    buttons = responses()["utter_ticket_confirm"][0]["buttons"]
    assert [(b["title"], b["payload"]) for b in buttons] == [("确认提交", "/affirm"), ("取消", "/deny")]


def test_the_read_back_names_the_item_under_discussion(monkeypatch):
    service = SimpleNamespace(guide=lambda guide_id: SimpleNamespace(title="居民身份证换领"))
    monkeypatch.setattr(glue, "get_service", lambda: service)
    slots = {"ticket_category": "failed", "ticket_description": "材料不全被退回", "ticket_name": "李女士",
             "ticket_phone": "139****0000", "guide_id": "sample-id-card-renew"}
    _, messages = run(ActionAskTicketConfirm(), turn("13900000000", slots=slots))
    assert names(messages) == ["utter_ticket_confirm_item"]
    assert "· 类别：申请办理没办成（线上或线下）\n· 事项：居民身份证换领\n· 经过：材料不全被退回" in said(messages)


CONFIRM_SLOTS = {"ticket_category": "failed", "ticket_description": "网上申请营业执照三次都被退回",
                 "ticket_name": "王", "ticket_phone": "138****5678"}
CONFIRM_BUTTONS = responses()["utter_ticket_confirm"][0]["buttons"]


@pytest.mark.parametrize("typed", ["确认提交", "对，提交吧", "确认", "好的提交", "取消"])
def test_the_channel_turns_typed_words_into_the_confirmation_s_own_payloads(typed):
    """What the channel sends for words typed at the read-back is a payload the form takes."""
    button = match_button(typed, CONFIRM_BUTTONS)
    assert button is not None, typed
    events, messages = run(ValidateTicketForm(), turn(button["payload"], requested="ticket_confirm",
                                                      intent=button["payload"][1:], slots=CONFIRM_SLOTS))
    assert events == [SlotSet("ticket_confirm", typed != "取消")] and messages == []


@pytest.mark.parametrize(("text", "intent"), [
    ("/affirm", "affirm"), ("对，提交吧", "complain"), ("确认", "inform"), ("好的提交", "ask_item"),
    ("对，提交吧", "deny"), ("没问题，提交", "request_human"),
])
def test_the_confirmation_takes_yes_words_whatever_the_intent_and_never_restarts_the_form(text, intent):
    events, messages = run(ValidateTicketForm(), turn(text, requested="ticket_confirm", intent=intent,
                                                      slots=CONFIRM_SLOTS))
    assert events == [SlotSet("ticket_confirm", True)] and messages == []  # no slot emptied, nothing re-asked


@pytest.mark.parametrize(("text", "intent"), [("/deny", "deny"), ("取消", "inform"), ("先不提交", "affirm"),
                                              ("不对", "chitchat")])
def test_the_confirmation_takes_no_words(text, intent):
    events, _ = run(ValidateTicketForm(), turn(text, requested="ticket_confirm", intent=intent, slots=CONFIRM_SLOTS))
    assert events == [SlotSet("ticket_confirm", False)]


def test_a_misread_yes_written_out_as_json():
    events, messages = run(ValidateTicketForm(), json.loads(CONFIRM_MISREAD))
    assert events == [SlotSet("ticket_confirm", True)] and messages == []


def test_something_else_at_the_confirmation_is_left_to_rasa():
    events, _ = run(ValidateTicketForm(), turn("营业执照还要带什么材料", requested="ticket_confirm",
                                               intent="ask_item", slots=CONFIRM_SLOTS))
    assert events == []  # nothing extracted: Rasa's form rejects and the question is answered


def test_yes_words_fill_only_the_confirmation():
    events, _ = run(ValidateTicketForm(), turn("确认", requested="ticket_description"))
    assert "ticket_confirm" not in slots_of(events)


# --- filing -------------------------------------------------------------------------------------------


def test_filed_on_friday_evening_due_when_monday_closes_with_the_number_kept_in_the_store(store):
    run(ValidateTicketForm(), turn("138 1234 5678", requested="ticket_phone", sender="citizen-3"))
    state = json.loads(CONFIRM_MISREAD)  # a yes that the NLU misread, written out above
    state["sender_id"] = "citizen-3"
    state["slots"]["ticket_confirm"] = True
    events, messages = run(ActionCreateTicket(), state)
    text = said(messages)
    assert names(messages) == ["utter_ticket_filed"]
    assert "11月30日 17:30 前（一个工作日内）" in text and "工单编号：BC20261127-0001" in text
    assert SlotSet("ticket_failed", False) in events and SlotSet("ticket_name", None) in events
    assert stored_phones(store) == [PHONE] and PHONE not in json.dumps([events, messages])
    assert not store.has_draft("citizen-3")
    _, again = run(ActionCreateTicket(), state)  # Rasa retries the same turn: the same ticket
    assert said(again) == text and len(stored_phones(store)) == 1


def test_a_no_at_the_confirmation_files_nothing_and_forgets_the_number(store):
    store.save_draft_phone("citizen-4", PHONE)
    state = turn("/deny", intent="deny", slots={**CONFIRM_SLOTS, "ticket_confirm": False}, sender="citizen-4")
    events, messages = run(ActionCreateTicket(), state)
    assert names(messages) == ["utter_ticket_cancelled"] and SlotSet("ticket_failed", False) in events
    assert stored_phones(store) == [] and not store.has_draft("citizen-4")


def test_a_dead_database_while_filing_keeps_the_answers_for_a_retry():
    previous = get_store()
    install_store(TicketStore("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    try:
        events, messages = run(ActionCreateTicket(), turn("/affirm", intent="affirm",
                                                          slots={**CONFIRM_SLOTS, "ticket_confirm": True}))
    finally:
        install_store(previous)
    assert events == [SlotSet("ticket_failed", True)] and names(messages) == ["utter_ticket_store_unavailable"]


# --- ticket status ------------------------------------------------------------------------------------


def test_status_form_and_answers(store):
    store.save_draft_phone("owner", PHONE)
    run(ActionCreateTicket(), turn("确认", slots={**CONFIRM_SLOTS, "ticket_confirm": True}, sender="owner"))
    ticket = store.list()[0]
    events, _ = run(ValidateTicketStatusForm(), turn(ticket.number.lower(), requested="ticket_number",
                                                     form="ticket_status_form"))
    assert events == [SlotSet("ticket_number", ticket.number)]
    events, messages = run(ValidateTicketStatusForm(), turn("12", requested="ticket_code", form="ticket_status_form"))
    assert events == [SlotSet("ticket_code", None)] and names(messages) == ["utter_ticket_code_invalid"]

    asked = {"ticket_number": ticket.number, "ticket_code": ticket.access_code}
    events, messages = run(ActionTicketStatus(), turn(ticket.access_code, slots=asked, sender="asker"))
    assert said(messages) == f"工单 {ticket.number}：待处理。应答复时间：11月30日 17:30。"
    assert events == [SlotSet("ticket_number", None), SlotSet("ticket_code", None)]
    store.resolve(ticket.number, "内部记录：已协调", "window-1")
    _, messages = run(ActionTicketStatus(), turn(ticket.access_code, slots=asked, sender="asker"))
    assert names(messages) == ["utter_ticket_status_resolved"] and "已办结" in said(messages)
    assert "内部记录" not in said(messages)
    _, messages = run(ActionTicketStatus(), turn("000000", slots={**asked, "ticket_code": "000000"}, sender="asker"))
    assert names(messages) == ["utter_ticket_not_found"]


# --- ratings and the callback -------------------------------------------------------------------------


def test_a_good_rating_is_thanked_and_recorded(store):
    state = turn('/rate{"rating": "5"}', intent="rate")
    state["latest_message"]["entities"] = [{"entity": "rating", "value": "5"}]
    events, messages = run(ActionRecordRating(), state)
    assert names(messages) == ["utter_rating_thanks"] and SlotSet("rating_bad", False) in events
    day = FRIDAY_EVENING.replace(hour=0, minute=0)
    assert [r.rating for r in Recorder.over(store).ratings_between(day, day + dt.timedelta(days=1))] == [5]


def test_a_bad_rating_becomes_a_callback_due_in_24_calendar_hours(store):
    state = turn('/rate{"rating": "1"}', intent="rate")
    state["latest_message"]["entities"] = [{"entity": "rating", "value": "1"}]
    events, messages = run(ActionRecordRating(), state)
    assert messages == [] and SlotSet("rating_bad", True) in events

    events, _ = run(ValidateCallbackForm(), turn("跳过", requested="rating_comment", form="callback_form"))
    assert events == [SlotSet("rating_comment", "")]
    events, _ = run(ValidateCallbackForm(), turn("+86 139 0000 1111", requested="callback_phone",
                                                 form="callback_form", sender="rater"))
    assert events == [SlotSet("callback_phone", "139****1111")]
    slots = {"rating": "1", "rating_comment": "", "callback_phone": "139****1111"}
    events, messages = run(ActionCreateCallbackTicket(), turn("+86 139 0000 1111", slots=slots, sender="rater"))
    assert names(messages) == ["utter_callback_filed"] and "24小时" in said(messages)
    ticket = store.list()[0]
    assert ticket.due_at == FRIDAY_EVENING + dt.timedelta(hours=24)  # Saturday evening: calendar hours
    assert ticket.description == "差评（1星）：未填写原因" and stored_phones(store) == ["13900001111"]
    assert SlotSet("rating_bad", False) in events


def test_a_callback_without_a_number_says_where_to_call(store):
    events, _ = run(ValidateCallbackForm(), turn("跳过", requested="callback_phone", form="callback_form"))
    assert events == [SlotSet("callback_phone", "none")]
    slots = {"rating": "2", "rating_comment": "等太久", "callback_phone": "none"}
    _, messages = run(ActionCreateCallbackTicket(), turn("跳过", slots=slots, sender="quiet"))
    assert names(messages) == ["utter_callback_noted"] and "12345" in said(messages)
    assert stored_phones(store) == [None]


# --- the glue holds no wording -----------------------------------------------------------------------


def test_every_response_the_glue_names_is_in_the_domain_and_no_wording_is_left_in_it():
    source = Path(glue.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    named = set(re.findall(r'response="(utter_\w+)"', source)) | {"utter_ticket_confirm_item"}
    assert named <= set(responses())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    chinese = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
               and id(node) not in docstrings and re.search(r"[\u4e00-\u9fff]", node.value)}
    assert chinese == {"重新提交", "先不登记", "%m月%d日 %H:%M"}  # the retry buttons' titles and the date format


def test_a_rating_slot_that_is_not_a_number_never_breaks_the_callback(store):
    """A phone typed at the callback step was once read as a rating entity ("1234-5678")."""
    slots = {"rating": "1234-5678", "rating_comment": "等太久", "callback_phone": "139****1111"}
    _, messages = run(ActionCreateCallbackTicket(), turn("138-1234-5678", slots=slots, sender="rater"))
    assert names(messages) in (["utter_callback_filed"], ["utter_callback_noted"])
    assert store.list()[0].description.startswith("差评（1星）")
