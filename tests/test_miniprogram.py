"""The mini-program backend's protocol core (bot/channels/miniprogram_core.py): session tokens, WeChat's
code2session against a real loopback server playing api.weixin.qq.com, request bodies and the
rendering for the page. The Rasa channel itself runs in the Rasa venv; tests/e2e covers it."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.miniprogram_core import (
    KEY_LABEL,
    MAX_MESSAGE,
    UNREACHABLE,
    BadRequest,
    Config,
    LoginError,
    MiniProgramError,
    NotConfigured,
    Session,
    TokenError,
    bearer,
    code2session,
    issue_token,
    links,
    parse_chat,
    parse_login,
    render_messages,
    sender_id,
    signing_key,
    verify_token,
)
from bot.contract import Answer, ItemRef, MaterialLine, Section
from bot.settings import ROOT
from ops.stack import free_port

#: The guide channel's sender rule (bot/channels/rest.py, which needs Rasa to import).
SENDER = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
SESSION_KEY = "WECHAT-SESSION-KEY-MUST-NOT-LEAK"


class FakeWeChat:
    """Plays ``api.weixin.qq.com``'s ``GET /sns/jscode2session`` on loopback, on a free port.

    The code decides the answer: ``bad…`` 40029, ``used…`` 40163, ``risky…`` 40226, ``busy…`` -1,
    ``limit…`` 45011, ``odd…`` an unknown errcode, ``slow…`` a late success, ``html…`` not JSON,
    ``http500…`` an HTTP 500, ``noopenid…`` no openid, ``union…`` an openid and a unionid; any other
    code is a success. The part of a code before ``~`` names the citizen (``alice~1`` and
    ``alice~2`` are the same openid). Wrong appid or secret: 40013 / 40125. Every query is kept.
    """

    def __init__(self, appid: str = "wx-test-appid", secret: str = "test-app-secret", delay: float = 2.0) -> None:
        self.appid, self.secret, self.delay = appid, secret, delay
        self.queries: list[dict[str, list[str]]] = []
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
                fake.paths.append(parsed.path)
                fake.queries.append(query)
                status, body = fake.answer(parsed.path, {k: v[-1] for k, v in query.items()})
                data = body.encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain" if body.startswith("{") else "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-wechat", daemon=True)

    @staticmethod
    def openid(code: str) -> str:
        return "oFake" + hashlib.sha256(code.split("~")[0].encode()).hexdigest()[:23]

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, str]:
        def error(code: int, message: str) -> tuple[int, str]:
            return 200, json.dumps({"errcode": code, "errmsg": f"{message}, rid: 6620a8f1-5e1c"})

        if path != "/sns/jscode2session":
            return 404, "<html>not found</html>"
        if query.get("appid") != self.appid:
            return error(40013, "invalid appid")
        if query.get("secret") != self.secret:
            return error(40125, "invalid appsecret")
        if query.get("grant_type") != "authorization_code":
            return error(40002, "invalid grant_type")
        code = query.get("js_code", "")
        for prefix, errcode, message in (("bad", 40029, "invalid code"), ("used", 40163, "code been used"),
                                         ("risky", 40226, "high risk user"), ("busy", -1, "system error"),
                                         ("limit", 45011, "api minute-quota reach limit"), ("odd", 61024, "odd")):
            if code.startswith(prefix):
                return error(errcode, message)
        if code.startswith("slow"):
            time.sleep(self.delay)
        if code.startswith("html"):
            return 200, "<html><body>502 Bad Gateway</body></html>"
        if code.startswith("http500"):
            return 500, "<html>internal error</html>"
        if code.startswith("noopenid"):
            return 200, json.dumps({"session_key": SESSION_KEY})
        answer = {"openid": self.openid(code), "session_key": SESSION_KEY}
        if code.startswith("union"):
            answer["unionid"] = "oUnion" + self.openid(code)[5:]
        return 200, json.dumps(answer)

    def env(self) -> dict[str, str]:
        """The settings that point the mini-program channel at this fake."""
        return {"MINIPROGRAM_APPID": self.appid, "MINIPROGRAM_SECRET": self.secret, "MINIPROGRAM_API_BASE": self.url}

    def start(self) -> FakeWeChat:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def wechat():
    fake = FakeWeChat(delay=1.5).start()
    try:
        yield fake
    finally:
        fake.stop()


def login(fake: FakeWeChat, code: str, timeout: float = 5.0) -> Session:
    return code2session(code, fake.appid, fake.secret, fake.url, timeout)


# --------------------------------------------------------------------------------------------- tokens

KEY = signing_key("test-app-secret")
NOW = 1_800_000_000


def test_a_token_round_trips_to_the_openid_and_a_hashed_sender():
    token = issue_token("oAbC-123_xyz", KEY, 3600, now=NOW)
    claims = verify_token(token, KEY, now=NOW + 10)
    assert claims.openid == "oAbC-123_xyz" and claims.expires == NOW + 3600
    sender = claims.sender(b"sender-key")
    assert sender == sender_id("oAbC-123_xyz", b"sender-key")
    assert SENDER.match(sender) and sender.startswith("mp-")
    assert "oAbC" not in sender
    # A keyed hash: whoever has a list of openids cannot find a citizen's conversation without the key.
    assert sender == "mp-" + hmac.new(b"sender-key", b"oAbC-123_xyz", hashlib.sha256).hexdigest()[:32]
    assert sender != "mp-" + hashlib.sha256(b"oAbC-123_xyz").hexdigest()[:32]
    assert claims.sender(b"another-key") != sender
    payload, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == \
        {"v": 1, "o": "oAbC-123_xyz", "e": NOW + 3600}
    expected = hmac.new(KEY, payload.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


def test_different_citizens_get_different_senders():
    assert sender_id("oA", KEY) != sender_id("oB", KEY)
    assert len(sender_id("o" * 128, KEY)) == 35


def test_the_key_comes_from_the_session_secret_or_is_derived_from_the_app_secret():
    assert signing_key("app", "a-session-secret-of-32-characters") == b"a-session-secret-of-32-characters"
    derived = signing_key("test-app-secret")
    assert derived == hmac.new(b"test-app-secret", KEY_LABEL, hashlib.sha256).digest()
    assert derived != b"test-app-secret" and derived != signing_key("another-secret")
    with pytest.raises(ValueError, match="MINIPROGRAM_SESSION_SECRET"):
        signing_key("app", "short")
    with pytest.raises(NotConfigured) as refused:
        signing_key("", "")
    assert refused.value.status == 503


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


def test_tampered_tokens_are_refused():
    token = issue_token("oCitizen", KEY, 3600, now=NOW)
    payload, signature = token.split(".")
    other = issue_token("oSomeoneElse", KEY, 3600, now=NOW)
    forged_payload = base64.urlsafe_b64encode(json.dumps({"v": 1, "o": "oSomeoneElse", "e": NOW + 3600}).encode())
    tampered = [
        _flip(token, 5),                                  # payload changed
        f"{payload}.{_flip(signature, 3)}",               # signature changed
        f"{other.split('.')[0]}.{signature}",              # someone else's payload, our signature
        f"{forged_payload.decode().rstrip('=')}.{signature}",
        issue_token("oCitizen", signing_key("another-secret"), 3600, now=NOW),  # signed with another key
        issue_token("oCitizen", KEY, 3600 * 10_000, now=NOW)[:-4] + "AAAA",
    ]
    for bad in tampered:
        with pytest.raises(TokenError) as refused:
            verify_token(bad, KEY, now=NOW)
        assert refused.value.status == 401 and "重新登录" in str(refused.value), bad


def test_expired_tokens_are_refused():
    token = issue_token("oCitizen", KEY, 60, now=NOW)
    assert verify_token(token, KEY, now=NOW + 59).openid == "oCitizen"
    with pytest.raises(TokenError, match="expired") as refused:
        verify_token(token, KEY, now=NOW + 60)
    assert "登录已过期" in str(refused.value)


def _signed(payload: bytes, key: bytes = KEY) -> str:
    part = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    mac = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return f"{part}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.mark.parametrize("token", [
    None, "", "abc", "a.b.c", "!!!.???", ".", "abc.", ".abc", "x" * 3000 + "." + "y", "eyJ2IjoxfQ.sig=\n",
    "a b.c", "é.é", 12345,
    _signed(b"not json"), _signed(b"[1, 2]"), _signed(b"\xff\xfe"), _signed(b'{"v": 1, "o": "oX"}'),
    _signed(b'{"v": 1, "o": "oX", "e": "1900000000"}'), _signed(b'{"v": 1, "o": "oX", "e": true}'),
    _signed(b'{"v": 2, "o": "oX", "e": 1900000000}'), _signed(b'{"v": 1, "o": "", "e": 1900000000}'),
    _signed(b'{"v": 1, "o": "o x", "e": 1900000000}'), _signed(b'{"v": 1, "o": 5, "e": 1900000000}'),
    _signed(b"[" * 50_000),
])
def test_malformed_tokens_are_refused(token):
    with pytest.raises(TokenError) as refused:
        verify_token(token, KEY, now=NOW)
    assert refused.value.status == 401 and "重新登录" in str(refused.value)


@pytest.mark.parametrize(("header", "token"), [("Bearer abc.def", "abc.def"), ("bearer  abc.def ", "abc.def"),
                                                ("BEARER abc.def", "abc.def")])
def test_bearer_header(header, token):
    assert bearer(header) == token


@pytest.mark.parametrize("header", [None, "", "   ", "abc.def", "Basic dXNlcjpwdw==", "Bearer", "Bearer   ", 7])
def test_missing_or_odd_authorization_is_refused(header):
    with pytest.raises(TokenError) as refused:
        bearer(header)
    assert refused.value.status == 401 and "登录" in str(refused.value)


# --------------------------------------------------------------------------------------------- code2session


def test_code2session_asks_wechat_with_the_right_query(wechat):
    before = len(wechat.queries)
    session = login(wechat, "alice~081KWM000XLdBS1fxc100wbhf84KWM0N")
    assert session == Session(FakeWeChat.openid("alice"), None)
    assert wechat.paths[-1] == "/sns/jscode2session" and len(wechat.queries) == before + 1
    assert wechat.queries[-1] == {"appid": ["wx-test-appid"], "secret": ["test-app-secret"],
                                  "js_code": ["alice~081KWM000XLdBS1fxc100wbhf84KWM0N"],
                                  "grant_type": ["authorization_code"]}


def test_code2session_keeps_the_unionid_and_never_the_session_key(wechat):
    session = login(wechat, "union-1")
    assert session.unionid and session.unionid.startswith("oUnion")
    assert SESSION_KEY not in repr(session) and not hasattr(session, "session_key")


def test_codes_are_sent_url_encoded(wechat):
    code = "a&secret=evil#x+y%20=?"
    login(wechat, code)
    assert wechat.queries[-1]["js_code"] == [code] and wechat.queries[-1]["secret"] == ["test-app-secret"]


@pytest.mark.parametrize(("code", "status", "says"), [
    ("bad-code", 400, "code 无效"),
    ("used-code", 400, "已被使用"),
    ("risky-code", 403, "拦截"),
    ("busy-code", 503, "繁忙"),
    ("limit-code", 503, "频繁"),
    ("odd-code", 502, "61024"),
    ("html-answer", 502, "无法连接"),
    ("http500-answer", 502, "无法连接"),
    ("noopenid-answer", 502, "无法连接"),
])
def test_wechat_errors_become_typed_errors_with_the_right_status(wechat, code, status, says):
    with pytest.raises(LoginError) as refused:
        login(wechat, code)
    error = refused.value
    assert error.status == status and says in str(error)
    assert re.search(r"[A-Za-z]{4}", str(error)) and re.search(r"[\u4e00-\u9fff]", str(error))  # Chinese and English
    assert SESSION_KEY not in str(error) and SESSION_KEY not in error.detail


def test_wechat_refusing_our_credentials_is_an_operator_problem(wechat):
    for appid, secret in (("wrong-appid", wechat.secret), (wechat.appid, "wrong-secret")):
        with pytest.raises(LoginError, match="配置有误") as refused:
            code2session("good-code", appid, secret, wechat.url, 5)
        assert refused.value.status == 502 and "wrong" not in str(refused.value)


@pytest.mark.parametrize("code", ["", " abc", "abc def", "验证码", "x" * 129, "abc\n", "a\x00b", None, 42, ["a"]])
def test_malformed_codes_never_reach_wechat(wechat, code):
    before = len(wechat.queries)
    with pytest.raises(BadRequest) as refused:
        login(wechat, code)
    assert refused.value.status == 400 and "code" in str(refused.value)
    assert len(wechat.queries) == before


def test_no_appid_or_secret_is_not_configured(wechat):
    for appid, secret in (("", "s"), ("a", ""), ("", "")):
        with pytest.raises(NotConfigured) as refused:
            code2session("good-code", appid, secret, wechat.url)
        assert refused.value.status == 503 and "未配置" in str(refused.value)


def test_an_unreachable_wechat_is_a_502():
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(LoginError) as refused:
        code2session("good-code", "a", "s", closed, 2)
    assert refused.value.status == 502 and str(refused.value) == UNREACHABLE
    assert time.monotonic() - started < 2


def test_a_slow_wechat_times_out(wechat):
    started = time.monotonic()
    with pytest.raises(LoginError) as refused:
        login(wechat, "slow-code", timeout=0.3)
    assert refused.value.status == 502 and "无法连接" in str(refused.value)
    assert time.monotonic() - started < 1.2
    assert login(wechat, "slow-code", timeout=5).openid  # with time enough it works


# --------------------------------------------------------------------------------------------- bodies


def test_login_body():
    assert parse_login(b'{"code": "081KWM000XLdBS1fxc100wbhf84KWM0N"}') == "081KWM000XLdBS1fxc100wbhf84KWM0N"
    for body, says in ((b"", "JSON"), (b"code=1", "JSON"), (b"[]", "对象"), (b'{"code": ""}', "code"),
                       (b'{"code": 5}', "code"), (b'{"cod": "abc"}', "code"), (b'{"code": "a b"}', "格式")):
        with pytest.raises(BadRequest, match=says):
            parse_login(body)


def test_chat_body_follows_the_guide_channels_rules():
    body = json.dumps({"message": "身份证过期了怎么办", "metadata": {"page": "chat"}}, ensure_ascii=False).encode()
    assert parse_chat(body) == ("身份证过期了怎么办", {"page": "chat"})
    assert parse_chat(b'{"message": ""}') == ("", None)
    assert parse_chat(json.dumps({"message": "办" * MAX_MESSAGE}).encode())[0] == "办" * MAX_MESSAGE
    for body, says in (
        (b"{oops", "JSON"), (b'"text"', "对象"), (b"{}", "message"), (b'{"message": 5}', "message"),
        (json.dumps({"message": "办" * (MAX_MESSAGE + 1)}).encode(), "太长"),
        (b'{"message": "hi", "metadata": []}', "metadata"), (b'{"message": "\\ud800"}', "无效"),
        (b"\xff\xfe\xfa", "JSON"), (b"[" * 60_000, "JSON"), (b" " * 70_000, "太大"),
        (b'{"message": "hi", "sender": "someone-else", "metadata": "x"}', "metadata"),
    ):
        with pytest.raises(BadRequest, match=says) as refused:
            parse_chat(body)
        assert refused.value.status == 400
    with pytest.raises(BadRequest, match="10"):
        parse_chat(b'{"message": "12345678901"}', max_message=10)


# --------------------------------------------------------------------------------------------- rendering

NOTIFICATION = "【居民身份证换领（有效期满换证）】一次性告知\n办理部门：公安机关户政管理部门"
ANSWER = {"kind": "notification", "guide_ids": ["gd-001"], "aspect": None, "event": None,
          "sheet_url": "http://127.0.0.1:5055/sheets/gd-001", "speech": "居民身份证换领……"}


def test_text_buttons_and_card():
    rendered = render_messages([
        {"recipient_id": "mp-1", "text": NOTIFICATION,
         "buttons": [{"title": "临时居民身份证申领", "payload": '/choose_guide{"guide_id": "gd-002"}'}]},
        {"recipient_id": "mp-1", "custom": {"answer": ANSWER}},
    ])
    assert rendered == [
        {"type": "text", "text": NOTIFICATION,
         "buttons": [{"title": "临时居民身份证申领", "payload": '/choose_guide{"guide_id": "gd-002"}'}]},
        {"type": "card", "title": "居民身份证换领（有效期满换证）",
         **{k: v for k, v in ANSWER.items() if v is not None}},
    ]


def test_a_contract_answer_gives_the_card_its_item_and_sections_without_reading_the_text():
    answer = Answer(kind="notification", items=(ItemRef("gd-1", "居民身份证换领", "身份证换领"),),
                    sections=(Section("materials", "申请材料", ("原居民身份证（原件）",),
                                      (MaterialLine("原居民身份证", "原件", 1, deferrable=True),)),))
    card = render_messages([{"text": "没有书名号的文字"}, {"custom": {"answer": answer.to_json()}}])[1]
    assert card["title"] == "居民身份证换领" and card["items"][0]["short_title"] == "身份证换领"
    assert card["sections"][0]["materials"][0] == {"name": "原居民身份证", "form": "原件", "copies": 1,
                                                   "required": True, "deferrable": True, "promise_ok": False,
                                                   "note": None}
    assert Answer.from_json(answer.to_json()) == answer
    assert Answer.from_json({"kind": 3}) is None and Answer.from_json("x") is None


def test_cards_take_a_title_from_the_kind_when_the_text_names_no_item():
    rendered = render_messages([{"text": "您可能想办理以下事项"}, {"custom": {"answer": {"kind": "candidates"}}},
                                {"custom": {"answer": {"kind": "something_new"}}}])
    assert [m.get("title") for m in rendered] == [None, "您可能要办理", "办事指南"]
    assert rendered[1]["kind"] == "candidates"


def test_the_title_belongs_to_the_text_just_before():
    rendered = render_messages([{"text": "【甲事项】一次性告知"}, {"custom": {"answer": {"kind": "notification"}}},
                                {"text": "其他"}, {"custom": {"answer": {"kind": "aspect"}}}])
    assert [m["title"] for m in rendered if m["type"] == "card"] == ["甲事项", "办事指南"]


def test_links_are_found_in_text():
    text = ("网上办理：https://www.gdzwfw.gov.cn/portal/guide/11440000?region=4401。"
            "详见（http://example.org/a_b-c）和 https://x.cn/p.html, 以及 https://x.cn/p.html")
    assert links(text) == ["https://www.gdzwfw.gov.cn/portal/guide/11440000?region=4401",
                           "http://example.org/a_b-c", "https://x.cn/p.html"]
    rendered = render_messages([{"text": text}])
    assert rendered[0]["links"] == links(text)
    assert "links" not in render_messages([{"text": "没有链接 http:// 也不算"}])[0]


def test_everything_else_is_kept():
    rendered = render_messages([
        {"recipient_id": "x", "image": "https://x.cn/a.png"},
        {"recipient_id": "x", "custom": {"answer": {"kind": "notification"}, "extra": 1}},
        {"recipient_id": "x", "custom": {"chart": [1, 2]}},
        {"recipient_id": "x", "attachment": "file.pdf"},
        {"recipient_id": "x", "buttons": [{"title": "只有按钮", "payload": "/a"}, {"bogus": 1}, "str"]},
    ])
    assert rendered == [
        {"type": "image", "url": "https://x.cn/a.png"},
        {"type": "card", "title": "一次性告知", "kind": "notification"},
        {"type": "custom", "custom": {"extra": 1}},
        {"type": "custom", "custom": {"chart": [1, 2]}},
        {"type": "custom", "custom": {"attachment": "file.pdf"}},
        {"type": "text", "text": "", "buttons": [{"title": "只有按钮", "payload": "/a"}]},
    ]


def test_the_unavailable_answer_renders_and_rendering_twice_changes_nothing():
    unavailable = {"text": "抱歉，系统暂时繁忙，没能回答您的问题。请稍后再试；也可以拨打 12345",
                   "custom": {"answer": {"kind": "unavailable"}}}
    once = render_messages([unavailable])
    assert once == [{"type": "text", "text": unavailable["text"]},
                    {"type": "card", "title": "暂时无法回答", "kind": "unavailable"}]
    assert render_messages(once) == once


# --------------------------------------------------------------------------------------------- configuration


def test_config_defaults_and_bad_values():
    from bot.settings import raw_setting

    config = Config.from_values(lambda name: raw_setting(name, {}))
    assert config == Config() and not config.can_login and config.ttl_seconds == 24 * 3600
    with pytest.raises(NotConfigured):
        config.key()
    env = {"MINIPROGRAM_APPID": "wx1", "MINIPROGRAM_SECRET": "s", "MINIPROGRAM_SESSION_HOURS": "0.5"}
    config = Config.from_values(lambda name: raw_setting(name, env))
    assert config.can_login and config.ttl_seconds == 1800 and config.key() == signing_key("s")
    for name, value in (("MINIPROGRAM_SESSION_HOURS", "soon"), ("MINIPROGRAM_SESSION_HOURS", "0"),
                        ("MINIPROGRAM_SESSION_HOURS", "1000"), ("MINIPROGRAM_API_BASE", "api.weixin.qq.com"),
                        ("MINIPROGRAM_SESSION_SECRET", "short")):
        with pytest.raises(ValueError, match=name):
            Config.from_values(lambda key, name=name, value=value: raw_setting(key, {name: value}))


def test_the_channel_imports_only_what_the_rasa_server_has():
    """Channels run in the Rasa venv: standard library, rasa, sanic and a few stdlib-only bot modules."""
    allowed_bot = {"bot.settings", "bot.channels", "bot.channels.rest", "bot.channels.guard",
                   "bot.channels.miniprogram_core", "bot.errors", "bot.contract", "bot.sqlite"}
    for path, third_party in ((ROOT / "bot" / "channels" / "miniprogram_core.py", set()),
                              (ROOT / "bot" / "channels" / "__init__.py", set()),
                              (ROOT / "bot" / "channels" / "guard.py", {"sanic"}),
                              (ROOT / "bot" / "channels" / "miniprogram.py", {"rasa", "sanic"})):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in third_party or name in allowed_bot, (path, name)
        if path.name == "miniprogram.py" and third_party:
            assert "from bot.settings import raw_setting" in path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=50))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=10)
bodies = st.one_of(
    st.binary(max_size=3000),
    st.dictionaries(st.sampled_from(["code", "message", "metadata", "sender", "x"]), json_values, max_size=4)
    .map(lambda d: json.dumps(d).encode()),
    st.builds(lambda m, md: json.dumps({"message": m, "metadata": md}, ensure_ascii=False)
              .encode("utf-8", "surrogatepass"), st.text(max_size=2500), json_values),
    st.sampled_from([b"<script>alert(1)</script>", "🙏🙏".encode(), b"{" * 5000,
                     b'{"message": "' + b"a" * 70_000 + b'"}']),
)


@FUZZ
@given(body=bodies)
def test_bodies_parse_or_give_a_400(body):
    for parse in (parse_login, parse_chat):
        try:
            parse(body)
        except MiniProgramError as error:
            assert isinstance(error, BadRequest) and error.status == 400 and str(error)


@FUZZ
@given(token=st.one_of(st.text(max_size=300), st.text(alphabet="ABCabc0123-_.=", max_size=300), json_values,
                       st.builds(lambda a, b: f"{a}.{b}", st.text(alphabet="ABCDEFabcdef012345-_", max_size=120),
                                 st.text(alphabet="ABCDEFabcdef012345-_", max_size=60))),
       header=st.one_of(st.none(), st.text(max_size=100), st.text(max_size=40).map(lambda t: "Bearer " + t)))
def test_token_checks_refuse_with_a_401_and_nothing_else(token, header):
    with pytest.raises(TokenError) as refused:
        verify_token(token, KEY, now=NOW)
    assert refused.value.status == 401
    try:
        assert bearer(header)
    except TokenError as error:
        assert error.status == 401


@FUZZ
@given(openid=st.text(alphabet=[chr(c) for c in range(0x21, 0x7f)], min_size=1, max_size=128),
       ttl=st.integers(1, 10**7), age=st.integers(0, 10**7))
def test_any_openid_round_trips_until_it_expires(openid, ttl, age):
    token = issue_token(openid, KEY, ttl, now=NOW)
    assert len(token) < 512
    if age < ttl:
        claims = verify_token(token, KEY, now=NOW + age)
        assert claims.openid == openid and SENDER.match(claims.sender(KEY))
    else:
        with pytest.raises(TokenError, match="expired"):
            verify_token(token, KEY, now=NOW + age)


messages = st.lists(st.dictionaries(st.sampled_from(["recipient_id", "text", "buttons", "custom", "image", "x"]),
                                    st.one_of(json_values, st.just({"answer": {"kind": "notification"}}),
                                              st.just([{"title": "按钮", "payload": "/a"}])), max_size=5),
                    max_size=6)


@FUZZ
@given(batch=messages)
def test_rendering_never_fails_and_is_plain_json(batch):
    rendered = render_messages(batch)
    json.dumps(rendered)
    assert all(m["type"] in ("text", "card", "image", "custom") for m in rendered)
    assert render_messages(rendered) == rendered
