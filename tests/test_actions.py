"""The custom actions, run as rasa-sdk runs them, over the real service."""

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import ActionAnswerAspect, ActionAnswerGuide
from bot.errors import IndexMissing
from bot.service import install_service


def tracker(text: str, intent: str, entities=(), slots=None) -> Tracker:
    message = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": list(entities)}
    return Tracker("u1", slots or {}, message, [], False, None, {}, "action_listen")


def run(action, tr):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tr, {}))
    return dispatcher.messages, events


@pytest.fixture(autouse=True)
def installed(service):
    install_service(service)
    yield
    install_service(None)


def test_answer_guide_sets_the_item_under_discussion():
    messages, events = run(ActionAnswerGuide(), tracker("我身份证过期了怎么办", "ask_item"))
    assert "居民身份证换领" in messages[0]["text"]
    assert SlotSet("guide_id", "sample-id-card-renew") in events


def test_button_choice_answers_that_guide():
    entities = [{"entity": "guide_id", "value": "sample-marriage"}]
    messages, events = run(ActionAnswerGuide(), tracker('/choose_guide{"guide_id": "sample-marriage"}',
                                                        "choose_guide", entities))
    assert "结婚登记" in messages[0]["text"]
    assert SlotSet("guide_id", "sample-marriage") in events


def test_aspect_uses_the_slot():
    entities = [{"entity": "aspect", "value": "place"}]
    messages, _ = run(ActionAnswerAspect(), tracker("在哪里办", "ask_aspect", entities,
                                                    {"guide_id": "sample-id-card-renew"}))
    assert "办理地点" in messages[0]["text"] and "派出所" in messages[0]["text"]
    assert messages[0]["buttons"][0]["title"] == "查看完整的一次性告知"


def test_service_failure_is_a_polite_message_not_a_traceback(monkeypatch):
    def broken():
        raise IndexMissing("no index")

    monkeypatch.setattr("actions.actions.service", broken)
    messages, events = run(ActionAnswerGuide(), tracker("身份证", "ask_item"))
    assert messages[0]["response"] == "utter_service_unavailable"
    assert events == []


def test_raw_and_stray_aspect_spans_are_understood():
    entities = [{"entity": "aspect", "value": "要"}, {"entity": "aspect", "value": "带什么材料"}]
    messages, _ = run(ActionAnswerAspect(), tracker("要带什么材料", "ask_aspect", entities,
                                                    {"guide_id": "sample-id-card-renew"}))
    assert "申请材料" in messages[0]["text"]
