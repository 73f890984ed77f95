"""End to end: Chinese messages over real HTTP to the guide channel, answers from the real
action server (real model, real FAISS index over the whole bundled knowledge base)."""


import httpx
import pytest

from ops.stack import new_sender, texts

pytestmark = pytest.mark.e2e



def sender() -> str:
    return new_sender("e2e")


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


@pytest.mark.parametrize("message", ["", "🙏🙏🙏", "办" * 2000, "<script>alert(1)</script>"])
def test_bad_input_gets_an_answer_not_an_error(servers, message):
    response = httpx.post(f"{servers.rasa_url}/webhooks/guide/webhook",
                          json={"sender": sender(), "message": message}, timeout=60)
    assert response.status_code == 200
    assert isinstance(response.json(), list) and texts(response.json())


def test_a_message_too_long_or_malformed_json_is_a_clear_client_error(servers):
    response = httpx.post(f"{servers.rasa_url}/webhooks/guide/webhook",
                          json={"sender": sender(), "message": "办" * 10_000}, timeout=30)
    assert response.status_code == 400 and "2000" in response.json()["error"]
    response = httpx.post(f"{servers.rasa_url}/webhooks/guide/webhook", content=b"{not json",
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400 and "JSON" in response.json()["error"]


def answers(messages: list[dict]) -> list[dict]:
    return [m["custom"]["answer"] for m in messages if "answer" in m.get("custom", {})]


def test_life_event_gets_one_combined_notification(servers):
    messages = servers.say(sender(), "生了孩子要办哪些手续")
    answer = texts(messages)
    assert "【出生一件事】" in answer and "相同材料只需准备一份" in answer
    assert answer.index("出生医学证明签发") < answer.index("出生登记")
    assert len([b for m in messages for b in m.get("buttons", [])]) >= 3


def test_off_topic_price_question_after_an_item(servers):
    user = sender()
    servers.say(user, "我身份证过期了怎么办")
    answer = texts(servers.say(user, "这件衣服多少钱"))
    assert "20元" not in answer and "12345" in answer


def test_new_item_replaces_the_one_under_discussion(servers):
    user = sender()
    servers.say(user, "我身份证过期了怎么办")
    servers.say(user, "护照怎么办理")
    answer = texts(servers.say(user, "要多少钱"))
    assert "身份证" not in answer.split("\n")[0] and "护照" in answer


def test_an_unclear_new_question_leaves_no_stale_item(servers):
    user = sender()
    servers.say(user, "我身份证过期了怎么办")
    servers.say(user, "飞船驾驶证怎么办理")
    answer = texts(servers.say(user, "要多少钱"))
    assert "20元" not in answer


def test_second_failure_offers_escalation_and_it_names_the_window(servers):
    user = sender()
    servers.say(user, "飞船驾驶证怎么办理")
    messages = servers.say(user, "火星签证怎么办理")
    payloads = [b["payload"] for m in messages for b in m.get("buttons", [])]
    assert "/request_human" in payloads, messages
    answer = texts(servers.say(user, "/request_human"))
    assert "办不成事反映窗口" in answer and "12345" in answer


def test_answer_carries_speech_and_a_printable_sheet(servers):
    messages = servers.say(sender(), "我身份证过期了怎么办")
    (answer,) = answers(messages)
    assert answer["kind"] == "notification" and "【" not in answer["speech"]
    page = httpx.get(answer["sheet_url"], timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "居民身份证换领" in page.text and "一次性告知单" in page.text
    assert httpx.get(answer["sheet_url"].rsplit("/", 1)[0] + "/no-such-id", timeout=10).status_code == 404


def test_a_position_past_the_buttons_shows_them_again(servers):
    user = new_sender("e2e")
    messages = servers.say(user, "身份证")
    buttons = [b for m in messages for b in m.get("buttons", [])]
    assert buttons, messages
    again = servers.say(user, f"第{len(buttons) + 1}个")
    assert f"没有第{len(buttons) + 1}项" in texts(again)
    assert [b["title"] for m in again for b in m.get("buttons", [])] == [b["title"] for b in buttons]
    chosen = texts(servers.say(user, "1"))  # and the buttons are still the ones typed words act on
    assert "一次性告知" in chosen
