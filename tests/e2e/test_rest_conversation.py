"""End to end: Chinese messages over real HTTP to the REST channel, answers from the real
action server (real model, real FAISS index over the whole bundled knowledge base)."""

import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


def test_identity_card_expired_gets_the_renewal_guide(servers):
    answer = texts(servers.say(sender(), "我身份证过期了怎么办"))
    for expected in ("居民身份证换领", "申请材料", "原居民身份证", "办理地点", "承诺办结", "20元"):
        assert expected in answer, (expected, answer)


def test_follow_up_aspect_refers_to_the_item_under_discussion(servers):
    user = sender()
    servers.say(user, "我身份证过期了怎么办")
    answer = texts(servers.say(user, "那要多少钱？"))
    assert "居民身份证换领" in answer and "收费标准" in answer and "20元" in answer


def test_traditional_characters(servers):
    answer = texts(servers.say(sender(), "結婚登記要帶什麼材料"))
    assert "结婚登记" in answer


def test_greeting_thanks_and_goodbye(servers):
    user = sender()
    assert texts(servers.say(user, "你好"))
    assert texts(servers.say(user, "谢谢"))
    assert texts(servers.say(user, "再见"))


def test_out_of_scope_names_the_next_step(servers):
    answer = texts(servers.say(sender(), "今天天气怎么样"))
    assert "12345" in answer


def test_unclear_match_offers_buttons_that_work(servers):
    user = sender()
    messages = servers.say(user, "身份证")
    buttons = [b for m in messages for b in m.get("buttons", [])]
    assert buttons, messages
    chosen = texts(servers.say(user, buttons[0]["payload"]))
    assert "一次性告知" in chosen


@pytest.mark.parametrize("message", ["", "🙏🙏🙏", "办" * 10_000, "<script>alert(1)</script>"])
def test_bad_input_gets_an_answer_not_an_error(servers, message):
    response = httpx.post(f"{servers.rasa_url}/webhooks/rest/webhook",
                          json={"sender": sender(), "message": message}, timeout=60)
    assert response.status_code == 200
    assert isinstance(response.json(), list)


def test_malformed_json_is_a_client_error(servers):
    response = httpx.post(f"{servers.rasa_url}/webhooks/rest/webhook", content=b"{not json",
                          headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= response.status_code < 500
