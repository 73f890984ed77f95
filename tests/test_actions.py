"""The custom actions, run as rasa-sdk runs them, over the real service."""

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import (
    ActionAnswerAspect,
    ActionAnswerGuide,
    ActionAnswerLifeEvent,
    ActionApplyScope,
    ActionTriage,
    ActionTriageComplaint,
    ActionTriageStatus,
)
from bot.answering.service import install_service
from bot.errors import IndexMissing


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
    assert not [e for e in events if e.get("name") == "guide_id"]


def test_raw_and_stray_aspect_spans_are_understood():
    entities = [{"entity": "aspect", "value": "要"}, {"entity": "aspect", "value": "带什么材料"}]
    messages, _ = run(ActionAnswerAspect(), tracker("要带什么材料", "ask_aspect", entities,
                                                    {"guide_id": "sample-id-card-renew"}))
    assert "申请材料" in messages[0]["text"]


def test_every_answer_also_carries_speech_and_the_sheet_address():
    messages, _ = run(ActionAnswerGuide(), tracker("我身份证过期了怎么办", "ask_item"))
    answer = messages[1]["custom"]["answer"]
    assert answer["kind"] == "notification" and answer["guide_ids"] == ["sample-id-card-renew"]
    assert answer["sheet_url"].endswith("/sheets/sample-id-card-renew")
    assert "居民身份证换领" in answer["speech"] and "【" not in answer["speech"]


def test_unresolved_questions_are_counted_and_the_second_offers_escalation():
    _, events = run(ActionAnswerGuide(), tracker("给我讲个笑话", "ask_item"))
    assert SlotSet("failures", 1.0) in events
    messages, events = run(ActionAnswerGuide(), tracker("股票明天会涨吗", "ask_item", slots={"failures": 1.0}))
    assert SlotSet("failures", 2.0) in events
    assert any(b["payload"] == "/request_human" for b in messages[0]["buttons"])
    _, events = run(ActionAnswerGuide(), tracker("我身份证过期了怎么办", "ask_item", slots={"failures": 2.0}))
    assert SlotSet("failures", 0.0) in events


def test_life_event_action_answers_the_whole_event():
    entities = [{"entity": "life_event", "value": "出生一件事"}]
    messages, _ = run(ActionAnswerLifeEvent(), tracker("生了孩子要办哪些手续", "ask_life_event", entities))
    assert "【出生一件事】" in messages[0]["text"]
    assert len(messages[0]["buttons"]) >= 3


def test_a_named_region_reasks_the_last_question():
    slots = {"region": "广东", "last_question": "我身份证过期了怎么办"}
    messages, _ = run(ActionApplyScope(), tracker("我在广东", "inform", slots=slots))
    assert "居民身份证换领" in messages[0]["text"]
    messages, _ = run(ActionApplyScope(), tracker("我在广东", "inform", slots={"region": "广东"}))
    assert "已记下：广东" in messages[0]["text"]
    messages, _ = run(ActionApplyScope(), tracker("嗯", "inform"))  # nothing named: never a placeholder
    assert "请问您要办理什么事项" in messages[0]["text"] and "您说的" not in messages[0]["text"]


def test_a_new_question_without_a_single_answer_clears_the_item_under_discussion():
    slots = {"guide_id": "sample-id-card-renew"}
    _, events = run(ActionAnswerGuide(), tracker("给我讲个笑话", "ask_item", slots=slots))
    assert SlotSet("guide_id", None) in events


@pytest.mark.parametrize("action", [ActionAnswerGuide(), ActionTriage()])
def test_a_person_asked_for_in_so_many_words_opens_the_ticket_form(action):
    messages, events = run(action, tracker("我在网上预约了两次都提示失败，想找人工", "nlu_fallback",
                                           slots={"guide_id": "sample-passport"}))
    assert [m.get("response") for m in messages] == ["utter_escalation"]
    assert events[0] == FollowupAction("ticket_form")


@pytest.mark.parametrize(("text", "intent", "responses"), [
    ("好的，谢谢，再见", "ask_item", ["utter_goodbye", "utter_ask_rating"]),
    ("谢谢啦", "nlu_fallback", ["utter_you_are_welcome"]),
    ("再见", "goodbye", ["utter_goodbye", "utter_ask_rating"]),
])
def test_courtesy_gets_its_own_answer_whatever_the_nlu_said(text, intent, responses):
    action = ActionTriage() if intent == "goodbye" else ActionAnswerGuide()
    messages, events = run(action, tracker(text, intent, slots={"guide_id": "sample-passport"}))
    assert [m.get("response") for m in messages] == responses and events == []


def test_a_question_taken_for_goodbye_is_answered():
    messages, _ = run(ActionTriage(), tracker("下次再签注还要去窗口排队吗", "goodbye",
                                             slots={"guide_id": "sample-hk-macau-permit"}))
    assert messages[0].get("response") != "utter_goodbye" and "港澳" in messages[0]["text"], messages


def test_a_status_question_naming_a_ticket_opens_the_status_form():
    messages, events = run(ActionTriageStatus(), tracker("我的工单处理得怎么样了", "ticket_status"))
    assert messages == [] and events == [SlotSet("status_lookup", True)]


def test_a_status_question_about_the_item_under_discussion_is_answered():
    messages, events = run(ActionTriageStatus(), tracker("有两个违章没处理，能年检吗", "ticket_status",
                                                         slots={"guide_id": "sample-vehicle-inspection"}))
    assert "处理完" in messages[0]["text"] and SlotSet("status_lookup", False) in events


def test_a_question_taken_for_a_rating_is_answered_and_rates_nothing():
    """"中午12点…" once became a one-star rating (its first digit) and opened the callback form."""
    from actions.tickets import ActionRecordRating

    entities = [{"entity": "rating", "value": "12"}]
    messages, events = run(ActionRecordRating(), tracker("中午12点到1点半能办事吗", "rate", entities))
    assert SlotSet("rating_bad", False) in events and not any(
        isinstance(e, dict) and e.get("name") == "rating" for e in events), events
    assert "午" in messages[0]["text"], messages


@pytest.mark.parametrize("text", ["转人工", "我要跟客服说话", "让工作人员打电话给我", "叫你们主管出来"])
def test_asking_for_a_person_opens_the_form(text):
    messages, events = run(ActionTriageComplaint(), tracker(text, "request_human",
                                                            slots={"guide_id": "sample-vehicle-inspection"}))
    assert messages == [] and events == [SlotSet("escalate", True)]


def test_a_question_the_nlu_took_for_asking_for_a_person_is_answered():
    messages, events = run(ActionTriageComplaint(), tracker("能让4S店帮我代办吗", "request_human",
                                                            slots={"guide_id": "sample-vehicle-inspection"}))
    assert SlotSet("escalate", False) in events and "机动车检验" in messages[0]["text"], messages


def test_candidates_from_any_action_remember_the_question_they_answer():
    """"我在广州，社保卡怎么办" (an inform) offers the 社保卡 items: "要带什么" next is asked of the first."""
    entities = [{"entity": "region", "value": "广州"}]
    messages, events = run(ActionApplyScope(), tracker("我在广州，社保卡怎么办", "inform", entities,
                                                       {"region": "广州", "guide_id": "sample-marriage"}))
    assert SlotSet("last_question", "我在广州，社保卡怎么办") in events, events
    assert SlotSet("guide_id", None) in events
    entities = [{"entity": "aspect", "value": "materials"}]
    messages, _ = run(ActionAnswerAspect(), tracker("要带什么", "ask_aspect", entities,
                                                    {"region": "广州", "last_question": "我在广州，社保卡怎么办"}))
    assert "申请材料" in messages[0]["text"] and "社会保障卡" in messages[0]["text"], messages[0]["text"]
