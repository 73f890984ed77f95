"""End to end: filing a ticket, asking its status, rating, over real HTTP, with the data checked
in the real stores (tickets in SQLite; Rasa's tracker store masked)."""

import re
import sqlite3

import httpx
import pytest

from ops.stack import new_sender, texts

pytestmark = pytest.mark.e2e

PHONE = "13812345678"



def sender() -> str:
    return new_sender("e2e-t")


def file_ticket(servers, user: str) -> tuple[str, str]:
    """File a ticket by conversation; (its number, its access code)."""
    assert "哪一类" in texts(servers.say(user, "转人工"))
    assert "经过" in texts(servers.say(user, "多次办理仍未办成"))
    assert "称呼" in texts(servers.say(user, "在网上申请了三次营业执照都被退回，也没说原因"))
    assert "手机" in texts(servers.say(user, "张先生"))
    assert "11位" in texts(servers.say(user, "12345"))  # not a mobile number: asked again
    confirm = texts(servers.say(user, PHONE))
    assert "138****5678" in confirm and PHONE not in confirm and "多次办理仍未办成" in confirm
    done = texts(servers.say(user, "/affirm"))
    match = re.search(r"(BC\d{8}-\d{4,})，查询码：(\d{6})", done)
    assert match, done
    assert "一个工作日内" in done
    return match.group(1), match.group(2)


def test_file_a_ticket_then_ask_its_status(servers):
    user = sender()
    number, code = file_ticket(servers, user)
    with sqlite3.connect(servers.data / "tickets.db") as db:
        row = db.execute("select phone, category, name, status, access_code from tickets where number = ?",
                         (number,)).fetchone()
    assert row == (PHONE, "repeated", "张先生", "open", code)
    assert "编号" in texts(servers.say(user, "查询工单"))
    assert "查询码" in texts(servers.say(user, number))
    status = texts(servers.say(user, code))
    assert number in status and "待处理" in status and "应答复时间" in status
    servers.say(user, "查询工单")
    servers.say(user, number)
    wrong = "000000" if code != "000000" else "111111"
    assert "没有找到" in texts(servers.say(user, wrong))


def test_phone_numbers_never_reach_the_tracker_store(servers):
    user = sender()
    file_ticket(servers, user)
    servers.say(user, f"我的身份证号是440106199001011234，电话{PHONE}")
    with sqlite3.connect(servers.data / "tracker.db") as db:
        stored = "\n".join(row[0] for row in db.execute("select data from events where sender_id = ?", (user,)))
    assert stored and PHONE not in stored and "440106199001011234" not in stored
    assert "138****5678" in stored


def test_cancel_in_the_middle_files_nothing(servers):
    user = sender()
    servers.say(user, "我要找人工")
    assert "已取消" in texts(servers.say(user, "取消"))
    with sqlite3.connect(servers.data / "tickets.db") as db:
        assert db.execute("select count(*) from tickets where conversation_id = ?", (user,)).fetchone() == (0,)


def test_bad_rating_becomes_a_callback_ticket_due_in_24_hours(servers):
    user = sender()
    servers.say(user, "我身份证过期了怎么办")
    goodbye = servers.say(user, "再见")
    assert any(b["payload"].startswith("/rate") for m in goodbye for b in m.get("buttons", []))
    assert "哪里不满意" in texts(servers.say(user, '/rate{"rating": "1"}'))
    assert "24小时" in texts(servers.say(user, "等了太久，说明也看不懂"))
    done = texts(servers.say(user, "13900001111"))
    assert "已登记回访" in done
    with sqlite3.connect(servers.data / "tickets.db") as db:
        row = db.execute("select source, rating, phone, item, (julianday(due_at) - julianday(created_at)) * 24 "
                         "from tickets where conversation_id = ?", (user,)).fetchone()
    assert row[:3] == ("bad_rating", 1, "13900001111")
    assert row[3] and "身份证" in row[3]
    assert round(row[4]) == 24


def test_good_rating_is_thanked(servers):
    user = sender()
    servers.say(user, "再见")
    assert "感谢您的评价" in texts(servers.say(user, '/rate{"rating": "5"}'))


def test_a_retried_action_call_files_one_ticket(servers):
    """Rasa may call the action server again for the same turn: still one ticket."""
    user = sender()
    slots = {"ticket_category": "failed", "ticket_description": "网上提交失败", "ticket_name": "李女士",
             "ticket_phone": "139****0000", "ticket_confirm": True}
    tracker = {"sender_id": user, "slots": slots, "latest_message": {"text": "/affirm", "message_id": "m-42",
               "intent": {"name": "affirm", "confidence": 1.0}, "entities": []}, "events": [],
               "paused": False, "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen"}
    body = {"next_action": "action_create_ticket", "sender_id": user, "tracker": tracker,
            "domain": {}, "version": "3.6.2"}
    headers = {"X-Action-Secret": servers.env["ACTION_SECRET"]}  # as the Rasa server calls it
    first = httpx.post(f"{servers.action_url}/webhook", json=body, headers=headers, timeout=30).json()
    second = httpx.post(f"{servers.action_url}/webhook", json=body, headers=headers, timeout=30).json()
    filed = [(r["responses"][0]["number"], r["responses"][0]["code"]) for r in (first, second)]
    assert filed[0] == filed[1] and re.fullmatch(r"BC\d{8}-\d{4,}", filed[0][0])
    with sqlite3.connect(servers.data / "tickets.db") as db:
        assert db.execute("select count(*) from tickets where conversation_id = ?", (user,)).fetchone() == (1,)
