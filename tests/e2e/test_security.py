"""Attacks on the running assistant (both servers as ``make run`` starts them): each finding of the
security review tried again, and each must fail.

Who may reach what (README, "Security"): citizens reach the channels under ``/webhooks/`` only;
Rasa's HTTP API is off; the action server answers the Rasa server only; a ticket's status needs
its random access code, and guessing it locks the ticket; bodies, messages and metadata are
limited; personal numbers are masked in the tracker store however they are typed.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from bot.privacy import find_mobiles
from ops.stack import new_sender, texts

pytestmark = pytest.mark.e2e

EVIL = "https://evil.example"
ALLOWED = "https://www.example.gov.cn"  # in ALLOWED_ORIGINS (tests/e2e/conftest.py)


def _no_cross_origin_read(response: httpx.Response) -> None:
    assert "access-control-allow-origin" not in response.headers, dict(response.headers)
    assert "access-control-allow-credentials" not in response.headers, dict(response.headers)


# --- Rasa's HTTP API is not there ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/status"), ("GET", "/version"), ("GET", "/domain"),
    ("GET", "/conversations/victim/tracker"),
    ("POST", "/conversations/victim/tracker/events"),
    ("PUT", "/conversations/victim/tracker/events"),
    ("POST", "/conversations/victim/execute"),
    ("POST", "/conversations/victim/trigger_intent"),
    ("POST", "/conversations/victim/predict"),
    ("POST", "/model/test/intents?callback_url=http://127.0.0.1:9/steal"),
    ("POST", "/model/train"), ("PUT", "/model"), ("DELETE", "/model"), ("POST", "/model/parse"),
    ("POST", "/webhooks/rest/webhook"),  # Rasa's plain REST channel (no length limits) is not enabled
])
def test_the_control_api_and_the_plain_rest_channel_are_not_reachable(servers, method, path):
    for content_type in ("application/json", "text/plain"):  # text/plain: what a cross-site form can send
        response = httpx.request(method, servers.rasa_url + path, content=b'[{"event": "slot", "name": "x"}]',
                                 headers={"Origin": EVIL, "Content-Type": content_type}, timeout=30)
        assert response.status_code in (404, 405), (path, response.status_code, response.text[:200])
        _no_cross_origin_read(response)


def test_a_conversation_read_from_another_site_gets_nothing(servers):
    user = new_sender("victim")
    servers.say(user, "我叫王小明，我的事情没办成")
    response = httpx.get(f"{servers.rasa_url}/conversations/{user}/tracker", headers={"Origin": EVIL}, timeout=30)
    assert response.status_code == 404 and "王小明" not in response.text
    _no_cross_origin_read(response)


# --- cross-origin reads of the channel ------------------------------------------------------------------------


def test_only_listed_sites_may_read_answers_and_never_with_credentials(servers):
    body = {"sender": new_sender("cors"), "message": "护照怎么办理"}
    allowed = httpx.post(f"{servers.rasa_url}/webhooks/guide/webhook", json=body,
                         headers={"Origin": ALLOWED, "Content-Type": "text/plain"}, timeout=60)
    assert allowed.status_code == 200 and "护照" in texts(allowed.json())
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "access-control-allow-credentials" not in allowed.headers
    for origin in (EVIL, "null", ALLOWED + ".evil.example", "http://www.example.gov.cn"):
        other = httpx.post(f"{servers.rasa_url}/webhooks/guide/webhook", json=body,
                           headers={"Origin": origin}, timeout=60)
        _no_cross_origin_read(other)
        preflight = httpx.request("OPTIONS", f"{servers.rasa_url}/webhooks/guide/webhook",
                                  headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                           "Access-Control-Request-Headers": "content-type"}, timeout=30)
        _no_cross_origin_read(preflight)


# --- the action server answers the Rasa server only -------------------------------------------------------------


def _forged_call(user: str) -> dict:
    """An action call with a tracker the form would never have produced (a name with digits)."""
    slots = {"ticket_category": "failed", "ticket_description": "forged", "ticket_name": "1234567",
             "ticket_phone": "139****0000", "ticket_confirm": True}
    tracker = {"sender_id": user, "slots": slots, "latest_message": {"text": "/affirm", "message_id": "forged",
               "intent": {"name": "affirm", "confidence": 1.0}, "entities": []}, "events": [],
               "paused": False, "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen"}
    return {"next_action": "action_create_ticket", "sender_id": user, "tracker": tracker, "domain": {},
            "version": "3.6.2"}


@pytest.mark.parametrize("secret", [None, "", "wrong-secret-of-some-length", "ACTION_SECRET-but-truncated"])
def test_a_forged_action_call_is_refused_and_files_nothing(servers, secret):
    user = new_sender("forger")
    headers = {"Origin": EVIL}
    if secret is not None:
        headers["X-Action-Secret"] = servers.env["ACTION_SECRET"][:10] if "truncated" in secret else secret
    response = httpx.post(f"{servers.action_url}/webhook", json=_forged_call(user), headers=headers, timeout=30)
    assert response.status_code == 401 and "responses" not in response.text
    _no_cross_origin_read(response)
    assert httpx.get(f"{servers.action_url}/actions", headers=headers, timeout=30).status_code == 401
    with sqlite3.connect(servers.data / "tickets.db") as db:
        assert db.execute("select count(*) from tickets where conversation_id = ?", (user,)).fetchone() == (0,)


def test_the_action_server_answers_no_cors_preflight_and_its_sheets_stay_public(servers):
    preflight = httpx.request("OPTIONS", f"{servers.action_url}/webhook",
                              headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}, timeout=30)
    _no_cross_origin_read(preflight)
    sheet = httpx.get(f"{servers.action_url}/sheets/sample-passport", timeout=30)
    assert sheet.status_code == 200 and "护照" in sheet.text


# --- ticket status cannot be guessed ----------------------------------------------------------------------------


def _file(servers, user: str) -> tuple[str, str]:
    for text in ("转人工", "申请办理没办成", "网上申请营业执照三次都被退回", "张先生", "13812345678"):
        servers.say(user, text)
    done = texts(servers.say(user, "/affirm"))
    match = re.search(r"(BC\d{8}-\d{4,})，查询码：(\d{6})", done)
    assert match, done
    return match.group(1), match.group(2)


def _ask_status(servers, user: str, number: str, code: str) -> str:
    servers.say(user, "查询工单")
    servers.say(user, number)
    return texts(servers.say(user, code))


def test_guessing_a_ticket_code_is_locked_out(servers):
    number, code = _file(servers, new_sender("owner"))
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c != code][:5]
    for n, guess in enumerate(wrong):  # a new conversation for each guess: the per-ticket count still holds
        assert "没有找到" in _ask_status(servers, new_sender(f"guesser{n}"), number, guess)
    locked = _ask_status(servers, new_sender("owner-later"), number, code)
    assert "失败次数过多" in locked and "待处理" not in locked


def test_a_status_reply_names_no_staff_and_no_resolution_text(servers):
    user = new_sender("asker")
    number, code = _file(servers, user)
    with sqlite3.connect(servers.data / "tickets.db") as db:
        db.execute("update tickets set status = 'resolved', assignee = '李科长', "
                   "resolution = '内部协调记录：已电话联系' where number = ?", (number,))
    reply = _ask_status(servers, user, number, code)
    assert "已办结" in reply and "李科长" not in reply and "内部协调记录" not in reply


# --- limits ----------------------------------------------------------------------------------------------------


def test_oversized_bodies_and_metadata_are_refused(servers):
    url = f"{servers.rasa_url}/webhooks/guide/webhook"
    big_metadata = {"sender": new_sender("big"), "message": "你好", "metadata": {"message_id": "m", "x": "办" * 300}}
    assert httpx.post(url, json=big_metadata, timeout=30).status_code == 413
    huge = {"sender": new_sender("huge"), "message": "你好", "metadata": {"blob": "x" * 1_000_000}}
    assert httpx.post(url, json=huge, timeout=30).status_code == 413
    long_message = {"sender": new_sender("long"), "message": "办" * 135_000}
    assert httpx.post(url, json=long_message, timeout=30).status_code == 413  # over the body limit already


def test_unknown_metadata_is_not_stored(servers):
    user = new_sender("meta")
    body = {"sender": user, "message": "你好", "metadata": {"message_id": "m-1", "tracking": "cookie=abc"}}
    assert httpx.post(f"{servers.rasa_url}/webhooks/guide/webhook", json=body, timeout=60).status_code == 200
    stored = str(servers.tracker_events(user))
    assert "m-1" in stored and "cookie=abc" not in stored and "tracking" not in stored


def _raw_request(port: int, head: str) -> str:
    """Send only a request's head (no body) and return the status line the server answers with."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(head.encode())
        connection.settimeout(20)
        return connection.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_a_30_mb_upload_is_refused_before_it_is_read(servers):
    port = int(servers.rasa_url.rsplit(":", 1)[1])
    started = time.monotonic()
    status = _raw_request(port, "POST /webhooks/kiosk/listen HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                                "Content-Length: 31457280\r\n\r\n")
    assert " 413 " in status, status
    assert time.monotonic() - started < 15  # answered without waiting for 30 MB that never comes


def test_the_kiosk_voice_has_a_per_client_limit(servers):
    url = f"{servers.rasa_url}/webhooks/kiosk/listen"
    statuses = [httpx.post(url, content=b"", headers={"X-Real-IP": "10.9.8.7"}, timeout=30).status_code
                for _ in range(13)]
    assert statuses[:12] == [400] * 12 and statuses[12] == 429
    other = httpx.post(url, content=b"", headers={"X-Real-IP": "10.9.8.6"}, timeout=30)  # another kiosk
    assert other.status_code == 400


# --- privacy at rest --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["我的电话是１３８１２３４５６７８", "号码 138.1234.5678", "打 138-1234-5678 找我",
                                   "电话一三八一二三四五六七八", "身份证４４０１０６１９９００１０１１２３４"])
def test_personal_numbers_are_masked_in_the_tracker_store_however_typed(servers, typed):
    user = new_sender("pii")
    servers.say(user, typed)
    stored = "\n".join(str(e) for e in servers.tracker_events(user))
    assert stored, "the message was not stored at all"
    assert find_mobiles(stored) == [] and "440106199001011234" not in stored.translate(
        str.maketrans("０１２３４５６７８９", "0123456789"))
    assert "****" in stored


def test_state_files_are_readable_by_their_owner_only(servers):
    servers.say(new_sender("perm"), "你好")
    for name in ("tickets.db", "tracker.db"):
        path: Path = servers.data / name
        assert path.exists() and path.stat().st_mode & 0o077 == 0, (name, oct(path.stat().st_mode))


def _environment(pid: int) -> set[str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return {item.split(b"=", 1)[0].decode() for item in raw.split(b"\0") if item}


def test_each_process_holds_only_its_own_secrets(servers):
    actions, rasa = _environment(servers.actions.proc.pid), _environment(servers.rasa.proc.pid)
    assert "ACTION_SECRET" in actions and "ACTION_SECRET" in rasa
    assert not {"WECHAT_TOKEN", "SENDER_ID_SECRET", "MINIPROGRAM_SECRET", "STAFF_TOKENS"} & actions
    assert not {"TICKETS_DB_URL", "STAFF_TOKENS"} & rasa
