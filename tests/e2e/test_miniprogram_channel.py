"""End to end: the mini-program's JSON API over real HTTP. The Rasa server logs citizens in
against a fake api.weixin.qq.com on loopback (tests/e2e/conftest.py starts it and points
MINIPROGRAM_API_BASE at it); answers come from the real action server.

The channel alone (no appid/secret, an assistant that fails, raw messages) is also started in
the Rasa venv with a stand-in for Rasa's message handling, to check what a full stack cannot show.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from bot.channels.guard import sender_key
from bot.channels.miniprogram_core import issue_token, sender_id, signing_key
from bot.settings import ROOT
from ops.stack import free_port
from tests.test_miniprogram import SESSION_KEY, FakeWeChat

pytestmark = pytest.mark.e2e

RASA_PY = ROOT / ".venv" / "rasa" / "bin" / "python"


def url(base: str, path: str) -> str:
    return f"{base}/webhooks/miniprogram/{path}"


def login(servers, code: str) -> httpx.Response:
    return httpx.post(url(servers.rasa_url, "login"), json={"code": code}, timeout=30)


def citizen() -> str:
    """A fresh citizen: the part of a fake code before ``~`` names them."""
    return f"c{uuid.uuid4().hex[:12]}"


def token_for(servers, who: str, attempt: int = 1) -> str:
    response = login(servers, f"{who}~{attempt}")
    assert response.status_code == 200, response.text
    return response.json()["token"]


def ask(servers, token: str | None, message: str, **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(url(servers.rasa_url, "webhook"), json={"message": message, **body}, headers=headers,
                      timeout=60)


def messages(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def text_of(batch: list[dict]) -> str:
    return "\n".join(m["text"] for m in batch if m["type"] == "text")


def test_login_gives_a_session_token(servers, fake_wechat):
    who = citizen()
    response = login(servers, f"{who}~1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "expires_in"} and body["expires_in"] == 24 * 3600
    assert SESSION_KEY not in response.text and "session_key" not in response.text
    assert fake_wechat.queries[-1] == {"appid": ["wx-e2e-appid"], "secret": ["e2e-app-secret"],
                                       "js_code": [f"{who}~1"], "grant_type": ["authorization_code"]}


def test_a_conversation_with_cards_and_buttons(servers):
    who = citizen()
    token = token_for(servers, who)
    first = messages(ask(servers, token, "身份证过期了怎么办"))
    assert "居民身份证换领" in text_of(first) and "申请材料" in text_of(first)
    card = next(m for m in first if m["type"] == "card")
    assert card["kind"] == "notification" and "居民身份证换领" in card["title"]
    assert card["sheet_url"].startswith(servers.action_url + "/sheets/") and card["guide_ids"]
    sheet = httpx.get(card["sheet_url"], timeout=30)
    assert sheet.status_code == 200 and "居民身份证换领" in sheet.text

    buttons = [b for m in first if m["type"] == "text" for b in m.get("buttons", [])]
    assert buttons and all(set(b) == {"title", "payload"} for b in buttons), first
    chosen = messages(ask(servers, token, buttons[0]["payload"]))
    assert buttons[0]["title"] in text_of(chosen) and "一次性告知" in text_of(chosen)
    assert any(m["type"] == "card" and m["title"] == buttons[0]["title"] for m in chosen), chosen


def test_the_conversation_belongs_to_the_citizen_not_to_the_token(servers):
    who = citizen()
    messages(ask(servers, token_for(servers, who, 1), "身份证过期了怎么办"))
    again = messages(ask(servers, token_for(servers, who, 2), "那要多少钱？"))  # logged in again: same openid
    assert "居民身份证换领" in text_of(again) and "20元" in text_of(again)
    stranger = messages(ask(servers, token_for(servers, citizen()), "那要多少钱？"))
    assert "居民身份证换领" not in text_of(stranger)

    openid = FakeWeChat.openid(who)
    conversation = sender_id(openid, sender_key(servers.env["SENDER_ID_SECRET"], bytes))
    events = servers.tracker_events(conversation)
    said = [e.get("text") for e in events if e.get("event") == "user"]
    assert said == ["身份证过期了怎么办", "那要多少钱？"]
    assert openid not in str(events)  # the raw openid never reaches the tracker store
    bare_hash = "mp-" + hashlib.sha256(openid.encode()).hexdigest()[:32]
    assert not servers.tracker_events(bare_hash)  # a keyed hash, not a bare one anyone could compute
    log = (servers.data / "rasa.log").read_text(errors="replace")
    assert openid not in log and SESSION_KEY not in log


def test_the_page_cannot_choose_its_sender(servers):
    token = token_for(servers, citizen())
    reply = messages(ask(servers, token, "你好", sender="someone-else", metadata={"page": "chat"}))
    assert text_of(reply)
    assert not [e for e in servers.tracker_events("someone-else") if e.get("event") == "user"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwdw==", "Bearer not-a-token",
                                           "Bearer a.b"])
def test_no_token_or_a_bad_one_is_a_401_that_says_log_in_again(servers, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.post(url(servers.rasa_url, "webhook"), json={"message": "你好"}, headers=headers, timeout=30)
    assert response.status_code == 401 and "重新登录" in response.json()["error"]
    assert response.headers.get("www-authenticate", "").startswith("Bearer")


def test_forged_tampered_and_expired_tokens_are_401(servers, fake_wechat):
    who = citizen()
    good = token_for(servers, who)
    forged = issue_token(FakeWeChat.openid(who), signing_key("not-the-servers-secret"), 3600)
    payload, signature = good.split(".")
    someone = issue_token("oSomeoneElse", signing_key(fake_wechat.secret + "x"), 3600).split(".")[0]
    expired = issue_token(FakeWeChat.openid(who), signing_key(fake_wechat.secret), 60, now=time.time() - 3600)
    for token, says in ((forged, "无效"), (f"{someone}.{signature}", "无效"), (f"{payload}.{signature[:-2]}xy", "无效"),
                        (expired, "过期")):
        response = ask(servers, token, "你好")
        assert response.status_code == 401 and says in response.json()["error"], (token, response.text)
    assert ask(servers, good, "你好").status_code == 200


@pytest.mark.parametrize(("code", "status", "says"), [("bad-code", 400, "code 无效"), ("used-code", 400, "已被使用"),
                                                      ("busy-now", 503, "繁忙"), ("a b", 400, "code"),
                                                      ("", 400, "code")])
def test_login_errors_are_clear(servers, code, status, says):
    response = login(servers, code)
    assert response.status_code == status and says in response.json()["error"], response.text


@pytest.mark.parametrize("body", [b"{oops", b"[]", b'{"code": 5}', b""])
def test_malformed_login_bodies_are_400(servers, body):
    response = httpx.post(url(servers.rasa_url, "login"), content=body, timeout=30)
    assert response.status_code == 400 and response.json()["error"]


@pytest.mark.parametrize(("body", "says"), [(b"{oops", "JSON"), (b'"hi"', "对象"), (b'{"message": 5}', "message"),
                                            ('{"message": "%s"}' % ("办" * 2001), "太长"),
                                            (b'{"message": "hi", "metadata": [1]}', "metadata")])
def test_malformed_messages_are_400(servers, body, says):
    token = token_for(servers, citizen())
    response = httpx.post(url(servers.rasa_url, "webhook"), content=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 400 and says in response.json()["error"], response.text


@pytest.mark.parametrize("message", ["", "🙏🙏🙏", "<script>alert(1)</script>"])
def test_odd_messages_get_an_answer(servers, message):
    assert messages(ask(servers, token_for(servers, citizen()), message))


# --------------------------------------------------------------------------------------------- the channel alone

CHANNEL_ALONE = textwrap.dedent("""
    import sys
    from sanic import Sanic
    from bot.channels.miniprogram import MiniProgramChannel

    async def on_new_message(message):
        if message.text == "boom":
            raise RuntimeError("the assistant failed")
        if message.text == "silent":
            return
        out = message.output_channel
        await out.send_response(message.sender_id, {"text": "【测试事项】详见 https://example.gov.cn/a。",
                                                   "buttons": [{"title": "下一步", "payload": "/next"}]})
        await out.send_custom_json(message.sender_id, {"answer": {"kind": "notification", "sheet_url": "http://s/1"}})
        await out.send_text_message(message.sender_id, "sender=" + message.sender_id)

    channel = MiniProgramChannel.from_credentials(None)
    app = Sanic("miniprogram_alone")
    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/miniprogram")
    app.run(host="127.0.0.1", port=int(sys.argv[1]), access_log=False, motd=False)
""")
SESSION_SECRET = "e2e-session-secret-0123456789"


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The channel in the Rasa venv without appid/secret (only a session secret), on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIPROGRAM_")}
    env.update(MINIPROGRAM_SESSION_SECRET=SESSION_SECRET, GUIDE_HOTLINE="12345")
    log = tmp_path_factory.mktemp("alone") / "channel.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(RASA_PY), "-c", CHANNEL_ALONE, str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(url(base, ""), timeout=2).status_code in (200, 503):  # 503: no Rasa model here
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _token(openid: str = "oAlone") -> str:
    return issue_token(openid, SESSION_SECRET.encode(), 600)


def _post(base: str, text: str, token: str) -> httpx.Response:
    return httpx.post(url(base, "webhook"), json={"message": text}, headers={"Authorization": f"Bearer {token}"},
                      timeout=30)


def test_without_appid_and_secret_the_login_is_503_not_configured(alone):
    health = httpx.get(url(alone, ""), timeout=10)
    assert health.json() == {"status": "loading", "model_ready": False, "login": False}  # no Rasa agent here
    response = httpx.post(url(alone, "login"), json={"code": "abc"}, timeout=10)
    assert response.status_code == 503 and "未配置" in response.json()["error"]


def test_the_channel_renders_for_the_page_and_hashes_the_sender(alone):
    reply = messages(_post(alone, "你好", _token()))
    assert reply == [
        {"type": "text", "text": "【测试事项】详见 https://example.gov.cn/a。",
         "buttons": [{"title": "下一步", "payload": "/next"}], "links": ["https://example.gov.cn/a"]},
        {"type": "card", "title": "测试事项", "kind": "notification", "sheet_url": "http://s/1"},
        {"type": "text", "text": "sender=" + sender_id("oAlone", sender_key("", SESSION_SECRET.encode))},
    ]


@pytest.mark.parametrize("text", ["boom", "silent"])
def test_when_the_assistant_cannot_answer_the_page_gets_the_polite_message(alone, text):
    reply = messages(_post(alone, text, _token()))
    assert reply[0]["type"] == "text" and "12345" in reply[0]["text"] and "办不成事反映窗口" in reply[0]["text"]
    assert reply[1] == {"type": "card", "title": "暂时无法回答", "kind": "unavailable"}


# --------------------------------------------------------------------------------------------- the page itself

MINIPROGRAM = ROOT / "bot" / "static" / "miniprogram"
#: Runs app.js and pages/chat/chat.js under Node with a stand-in for the mini-program runtime
#: (App/Page/getApp and the wx calls the page uses); wx.request is real HTTP to the servers.
PAGE_HARNESS = r"""
const fs = require("fs");
const [root, backend, citizen] = process.argv.slice(2);
const storage = {};
let logins = 0, clipboard = null, loadingSeen = false, appObj = null, pageDef = null;
globalThis.wx = {
  login({ success }) { logins += 1; success({ code: citizen + "~" + logins }); },
  request({ url, method, data, header, success, fail }) {
    fetch(url, { method, headers: header, body: JSON.stringify(data) }).then(async (r) => {
      const text = await r.text();
      let body; try { body = JSON.parse(text); } catch (e) { body = text; }
      success({ statusCode: r.status, data: body });
    }, () => fail({ errMsg: "request:fail" }));
  },
  setStorageSync(k, v) { storage[k] = v; }, getStorageSync(k) { return storage[k] || ""; },
  removeStorageSync(k) { delete storage[k]; },
  setClipboardData({ data, success }) { clipboard = data; if (success) success(); },
  showToast() {},
};
globalThis.App = (o) => { appObj = o; };
globalThis.getApp = () => appObj;
globalThis.Page = (o) => { pageDef = o; };
const source = fs.readFileSync(root + "/app.js", "utf8").replace(/const BACKEND = "[^"]*";/, () =>
  "const BACKEND = " + JSON.stringify(backend) + ";");
if (!source.includes(backend)) throw new Error("BACKEND constant not found in app.js");
eval(source);
eval(fs.readFileSync(root + "/pages/chat/chat.js", "utf8"));
const page = Object.assign({}, pageDef, { data: JSON.parse(JSON.stringify(pageDef.data)) });
page.setData = function (patch) { Object.assign(this.data, patch); if (this.data.loading) loadingSeen = true; };
const bot = () => page.data.items.filter((i) => i.role === "bot");
(async () => {
  page.onLoad();
  const steps = {};
  page.onInput({ detail: { value: "  身份证过期了怎么办 " } });
  await page.onSend();
  steps.first = page.data.items.slice();
  const withButtons = bot().filter((i) => i.buttons && i.buttons.length).pop();
  const choice = withButtons.buttons[0];
  await page.onButton({ currentTarget: { dataset: choice } });
  steps.choice = choice;
  storage.guide_session_token = "forged.token";  // an old or forged token: the page logs in again
  page.onInput({ detail: { value: "那要多少钱？" } });
  await page.onSend();
  const card = page.data.items.filter((i) => i.kind === "card")[0];
  page.onCopy({ currentTarget: { dataset: { url: card.sheetUrl } } });
  console.log(JSON.stringify({ items: page.data.items, steps, logins, clipboard, loadingSeen,
                               loading: page.data.loading, token: storage.guide_session_token }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is needed to run the mini-program's JavaScript")
def test_the_mini_program_page_against_the_real_servers(servers, tmp_path):
    harness = tmp_path / "harness.js"
    harness.write_text(PAGE_HARNESS, encoding="utf-8")
    who = citizen()
    run = subprocess.run(["node", str(harness), str(MINIPROGRAM), url(servers.rasa_url, "").rstrip("/"), who],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    items = result["items"]
    users = [i["text"] for i in items if i["role"] == "user"]
    assert users == ["身份证过期了怎么办", result["steps"]["choice"]["title"], "那要多少钱？"]  # titles, not payloads
    bot_text = "\n".join(i.get("text", "") for i in items if i["role"] == "bot")
    assert "居民身份证换领" in bot_text and "收费标准" in bot_text
    # The notification is drawn as a card with sections and the materials as a checklist (reply contract).
    (notice,) = [i for i in items if i["kind"] == "notice"][:1]
    headings = [section["heading"] for section in notice["sections"]]
    assert "申请材料" in headings and "收费标准" in headings
    materials = [m for section in notice["sections"] for m in section["materials"]]
    assert any(m["name"].startswith("原居民身份证") and "原件" in m["facts"] for m in materials), materials
    cards = [i for i in items if i["kind"] == "card"]
    assert cards and "居民身份证换领" in cards[0]["title"] and result["clipboard"] == cards[0]["sheetUrl"]
    assert not [i for i in items if i["kind"] == "error"], items
    assert result["logins"] == 2 and result["token"] != "forged.token"  # the 401 made it log in again
    assert result["loadingSeen"] and result["loading"] is False
