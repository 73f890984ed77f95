"""A dead ticket database while a citizen files: told plainly, nothing half-written, a retry
succeeds. Real PostgreSQL, stopped and started again under the actions."""

import asyncio

import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.tickets import ActionCreateTicket
from bot.tickets import get_store, install_store
from bot.tickets.store import TicketStore
from tests.responses import said


def confirm_turn(sender: str, message_id: str) -> Tracker:
    slots = {"ticket_category": "failed", "ticket_description": "网上提交三次都失败", "ticket_name": "王女士",
             "ticket_phone": "137****2222", "ticket_confirm": True}
    message = {"text": "/affirm", "message_id": message_id, "intent": {"name": "affirm", "confidence": 1.0},
               "entities": []}
    return Tracker(sender, slots, message, [], False, None, {}, "action_listen")


def run(tracker: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionCreateTicket().run(dispatcher, tracker, {}))
    return said(dispatcher.messages), dispatcher.messages, events


def test_database_down_while_filing_then_a_retry_succeeds(pg_cluster):
    previous = get_store()
    store = TicketStore(pg_cluster.url)
    store.migrate()
    install_store(store)
    try:
        store.save_draft_phone("citizen-1", "13700002222")
        pg_cluster.stop()
        text, messages, events = run(confirm_turn("citizen-1", "m1"))
        assert "没有任何信息被保存" in text and "12345" in text
        assert any(b["payload"] == "/affirm" for b in messages[0]["buttons"])  # "重新提交"
        assert SlotSet("ticket_failed", True) in events
        assert not any(e.get("name") == "ticket_category" for e in events)  # the answers are kept

        pg_cluster.start()
        with sa.create_engine(pg_cluster.url).connect() as conn:
            assert conn.execute(sa.text("select count(*) from tickets")).scalar() == 0  # nothing half-written
        text, _, events = run(confirm_turn("citizen-1", "m2"))  # the citizen taps 重新提交
        assert "工单编号" in text and "查询码" in text and SlotSet("ticket_failed", False) in events
        with sa.create_engine(pg_cluster.url).connect() as conn:
            rows = conn.execute(sa.text("select phone, status from tickets")).all()
        assert [tuple(r) for r in rows] == [("13700002222", "open")]
    finally:
        install_store(previous)
        store.engine.dispose()
