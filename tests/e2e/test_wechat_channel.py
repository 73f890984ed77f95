"""End to end: WeChat's customer-service push over real HTTP to the Rasa server, with signatures
computed here independently of the channel."""

import hashlib
import time
import uuid
import xml.etree.ElementTree as ET

import httpx
import pytest

pytestmark = pytest.mark.e2e

TOKEN = "e2e-wechat-token"  # tests/e2e/conftest.py starts the servers with it


def signed(timestamp: int | None = None, nonce: str | None = None, token: str = TOKEN) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or uuid.uuid4().hex[:10]
    return {"timestamp": ts, "nonce": nonce, "signature": hashlib.sha1("".join(sorted([token, ts, nonce])).encode())
            .hexdigest()}


def body(text: str, user: str, kind: str = "text") -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_hall]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{uuid.uuid4().int % 10**12}</MsgId></xml>").encode()


def send(servers, text: str, user: str, params: dict[str, str] | None = None, kind: str = "text") -> httpx.Response:
    return httpx.post(f"{servers.rasa_url}/webhooks/wechat/webhook", params=signed() if params is None else params,
                      content=body(text, user, kind), timeout=60)


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return ET.fromstring(response.text).findtext("Content") or ""


def test_url_verification(servers):
    url = f"{servers.rasa_url}/webhooks/wechat/webhook"
    good = httpx.get(url, params={**signed(), "echostr": "hello123"}, timeout=10)
    assert good.status_code == 200 and good.text == "hello123"
    bad = httpx.get(url, params={**signed(token="wrong"), "echostr": "hello123"}, timeout=10)
    assert bad.status_code == 403 and "hello123" not in bad.text


def test_a_question_gets_a_passive_reply_to_the_right_user(servers):
    user = f"oUser{uuid.uuid4().hex[:6]}"
    response = send(servers, "我身份证过期了怎么办", user)
    reply = ET.fromstring(response.text)
    assert reply.findtext("ToUserName") == user and reply.findtext("FromUserName") == "gh_hall"
    assert "居民身份证换领" in reply.findtext("Content")


def test_the_conversation_id_is_a_keyed_hash_of_the_openid(servers):
    from bot.channels.guard import sender_key
    from bot.channels.miniprogram_core import sender_id

    user = f"oUser{uuid.uuid4().hex[:6]}"
    assert "护照" in content(send(servers, "护照怎么办理", user))
    conversation = "wx-" + sender_id(user, sender_key(servers.env["SENDER_ID_SECRET"], bytes)).removeprefix("mp-")
    events = servers.tracker_events(conversation)
    assert [e["text"] for e in events if e.get("event") == "user"] == ["护照怎么办理"]
    assert user not in str(events) and not servers.tracker_events(f"wx-{user}")


def test_long_answers_come_in_parts_within_the_limit(servers):
    user = f"oUser{uuid.uuid4().hex[:6]}"
    first = content(send(servers, "生了孩子要办哪些手续", user))
    assert len(first.encode()) <= 2048 and "继续" in first
    second = content(send(servers, "继续", user))
    assert second and second != first and len(second.encode()) <= 2048


def test_bad_stale_and_replayed_signatures_are_refused(servers):
    user = f"oUser{uuid.uuid4().hex[:6]}"
    assert send(servers, "你好", user, signed(token="wrong")).status_code == 403
    assert send(servers, "你好", user, signed(timestamp=int(time.time()) - 3600)).status_code == 403
    params = signed()
    assert send(servers, "你好", user, params).status_code == 200
    assert send(servers, "你好", user, params).status_code == 403  # the same request again: a replay
    assert send(servers, "你好", user, {}).status_code == 403


def test_non_text_and_malformed_messages(servers):
    user = f"oUser{uuid.uuid4().hex[:6]}"
    assert "文字" in content(send(servers, "", user, kind="image"))
    broken = httpx.post(f"{servers.rasa_url}/webhooks/wechat/webhook", params=signed(), content=b"<xml><oops",
                        timeout=10)
    assert broken.status_code == 400
