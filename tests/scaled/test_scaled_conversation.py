"""End to end against the scaled deployment: conversations through the one address (nginx in
front of two Rasa servers), served turn by turn by either Rasa server (tracker in PostgreSQL,
lock in Redis), tickets in PostgreSQL, 20 conversations at once, and a Rasa server and an
action server going down and coming back."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from ops.scaled import ScaledStack
from ops.stack import new_sender, texts

pytestmark = pytest.mark.e2e

PHONE = "13812345678"



def sender() -> str:
    return new_sender("scaled")


def query(url: str, sql: str, **params: object) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def lock_writes(scaled: ScaledStack) -> int:
    """How many times a lock was saved in Redis (Rasa's RedisLockStore: SET per lock change)."""
    match = re.search(r"^cmdstat_set:calls=(\d+)", scaled.redis_command("INFO", "commandstats"), re.M)
    return int(match.group(1)) if match else 0


def upstreams_since(scaled: ScaledStack, offset: int) -> list[str]:
    """The Rasa servers (host:port) the one address sent each message to, since ``offset``."""
    port = scaled.rasa_url.rsplit(":", 1)[1]
    with scaled.access_log.open(encoding="utf-8") as log:
        log.seek(offset)
        lines = [line.split() for line in log]
    # time, port, method, path, status, seconds, then every server tried: the last one answered
    return [fields[-1] for fields in lines
            if len(fields) >= 7 and fields[1] == port and fields[3] == "/webhooks/guide/webhook"]


def ask_and_follow_up(scaled: ScaledStack, user: str, url: str | None = None) -> None:
    first = texts(scaled.say(user, "我身份证过期了怎么办", url=url))
    assert "居民身份证换领" in first, first
    follow_up = texts(scaled.say(user, "那要多少钱？", url=url))
    assert "居民身份证换领" in follow_up and "20元" in follow_up, follow_up


def test_turns_alternate_between_the_two_rasa_servers(scaled):
    """Turn 1 on Rasa server A, turn 2 on B, and so on: each reads what the other stored."""
    user = sender()
    a, b = scaled.rasa_urls
    locks_before = lock_writes(scaled)
    assert "居民身份证换领" in texts(scaled.say(user, "我身份证过期了怎么办", url=a))
    follow_up = texts(scaled.say(user, "那要多少钱？", url=b))
    assert "居民身份证换领" in follow_up and "收费标准" in follow_up and "20元" in follow_up
    scaled.say(user, "护照怎么办理", url=a)
    answer = texts(scaled.say(user, "要多少钱", url=b))
    assert "护照" in answer and "身份证" not in answer.split("\n")[0]
    assert lock_writes(scaled) >= locks_before + 4  # every turn took its lock in Redis
    (uttered,) = query(scaled.tracker_db_url, "select count(*) from events where sender_id = :user "
                       "and type_name = 'user'", user=user)
    assert uttered == (4,)


def test_one_conversation_through_the_one_address_reaches_both_servers(scaled):
    offset = scaled.access_log.stat().st_size
    user = sender()
    for _ in range(3):
        ask_and_follow_up(scaled, user)
    served_by = upstreams_since(scaled, offset)
    assert len(served_by) == 6
    assert set(served_by) == {url.removeprefix("http://") for url in scaled.rasa_urls}


def test_a_ticket_lands_in_postgresql_and_the_phone_never_reaches_the_tracker(scaled):
    user = sender()
    assert "哪一类" in texts(scaled.say(user, "转人工"))
    assert "经过" in texts(scaled.say(user, "多次办理仍未办成"))
    assert "称呼" in texts(scaled.say(user, "在网上申请了三次营业执照都被退回，也没说原因"))
    assert "手机" in texts(scaled.say(user, "张先生"))
    confirm = texts(scaled.say(user, PHONE))
    assert "138****5678" in confirm and PHONE not in confirm and "多次办理仍未办成" in confirm
    done = texts(scaled.say(user, "/affirm"))
    match = re.search(r"(BC\d{8}-\d{4,})，查询码：(\d{6})", done)
    assert match, done
    rows = query(scaled.tickets_db_url, "select phone, category, name, status, conversation_id, access_code "
                 "from tickets where number = :number", number=match.group(1))
    assert rows == [(PHONE, "repeated", "张先生", "open", user, match.group(2))]
    stored = "\n".join(row[0] for row in query(scaled.tracker_db_url,
                                               "select data from events where sender_id = :user", user=user))
    assert stored and PHONE not in stored and "138****5678" in stored


def test_twenty_conversations_at_once_are_all_answered(scaled):
    offset = scaled.access_log.stat().st_size
    users = [sender() for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda user: ask_and_follow_up(scaled, user), users))  # re-raises any failure
    served_by = upstreams_since(scaled, offset)
    assert len(served_by) == 40
    assert set(served_by) == {url.removeprefix("http://") for url in scaled.rasa_urls}
    (count,) = query(scaled.tracker_db_url, "select count(distinct sender_id) from events "
                     "where sender_id = any(:users)", users=users)
    assert count == (20,)


def test_one_rasa_server_and_one_action_server_down_conversations_go_on(scaled):
    user = sender()
    assert "居民身份证换领" in texts(scaled.say(user, "我身份证过期了怎么办", url=scaled.rasa_urls[0]))
    rasa, actions = scaled.rasa[0], scaled.actions[0]
    rasa.stop()
    actions.stop()
    try:
        # the conversation begun on the stopped Rasa server goes on on the other one
        follow_up = texts(scaled.say(user, "那要多少钱？"))
        assert "居民身份证换领" in follow_up and "20元" in follow_up
        for _ in range(4):  # round robin would send half of these to the stopped servers
            ask_and_follow_up(scaled, sender())
    finally:
        rasa.launch()
        actions.launch()
        rasa.wait_ready()
        actions.wait_ready()
    # both are back, and the one address uses the restarted Rasa server again
    offset = scaled.access_log.stat().st_size
    for _ in range(2):
        ask_and_follow_up(scaled, sender())
    assert scaled.rasa_urls[0].removeprefix("http://") in upstreams_since(scaled, offset)
    assert httpx.get(f"{scaled.action_urls[0]}/health", timeout=10).status_code == 200


# --- what the proxy publishes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/status"), ("GET", "/"), ("GET", "/version"), ("GET", "/conversations/x/tracker"),
    ("POST", "/conversations/x/tracker/events"), ("POST", "/model/train"), ("PUT", "/model"),
    ("POST", "/webhooks/rest/webhook"), ("POST", "/webhook"), ("GET", "/actions"), ("GET", "/health"),
    ("GET", "/webhooks/kiosk/"), ("POST", "/webhooks/kiosk/listen"), ("GET", "/api/tickets"),
    ("GET", "/webhooks/guide/nothing"),
])
def test_the_public_address_forwards_nothing_but_channels_and_sheets(scaled, method, path):
    response = httpx.request(method, scaled.rasa_url + path, timeout=30)
    assert response.status_code == 404, (method, path, response.status_code)


def test_the_public_address_serves_the_channels_sheets_and_limits_bodies(scaled):
    assert httpx.get(f"{scaled.rasa_url}/webhooks/guide/", timeout=30).json()["model_ready"] is True
    assert "护照" in texts(scaled.say(sender(), "护照怎么办理"))
    assert httpx.get(f"{scaled.rasa_url}/webhooks/guide/widget.js", timeout=30).status_code == 200
    sheet = httpx.get(f"{scaled.rasa_url}/sheets/sample-passport", timeout=30)
    assert sheet.status_code == 200 and "护照" in sheet.text
    assert httpx.get(f"{scaled.rasa_url}/webhooks/guide/webhook", timeout=30).status_code == 403  # POST only
    big = httpx.post(f"{scaled.rasa_url}/webhooks/guide/webhook", content=b"x" * 40_000, timeout=30)
    assert big.status_code == 413  # refused by the proxy before any server reads it


def test_the_hall_address_adds_the_kiosk(scaled):
    page = httpx.get(f"{scaled.hall_url}/webhooks/kiosk/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(f"{scaled.hall_url}/status", timeout=30).status_code == 404
    too_big = httpx.post(f"{scaled.hall_url}/webhooks/kiosk/listen", content=b"\0" * (7 * 1024 * 1024), timeout=60)
    assert too_big.status_code == 413


def test_a_wechat_replay_to_the_other_server_is_refused(scaled):
    """The replay memory is in Redis (WECHAT_REPLAY_REDIS), shared by both Rasa servers."""
    from tests.e2e.test_wechat_channel import body, signed

    params, message = signed(token=scaled.env["WECHAT_TOKEN"]), body("护照怎么办理", "oReplayVictim")
    first = httpx.post(f"{scaled.rasa_urls[0]}/webhooks/wechat/webhook", params=params, content=message, timeout=60)
    assert first.status_code == 200 and "护照" in first.text
    replay = httpx.post(f"{scaled.rasa_urls[1]}/webhooks/wechat/webhook", params=params, content=message, timeout=60)
    assert replay.status_code == 403
