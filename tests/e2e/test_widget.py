"""End to end: the website chat widget in a real headless Chromium.

The widget is embedded exactly as a site would embed it: a page served from another loopback
origin (a small ``http.server`` here) holding a heading and the one script tag pointing at the
Rasa server, so the script, its stylesheet and every webhook call go cross-origin to the real
Rasa + action server stack. The browser sends every non-loopback request to a closed port and
each test checks that nothing tried to leave the machine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from bot.settings import ROOT
from ops.browser import console_errors, outside_requests, requested_urls, start_chromium

pytestmark = pytest.mark.e2e

SCREENSHOTS = ROOT / "results" / "screenshots"
#: An answer from the real stack takes a few seconds; a cold first one, longer.
ANSWER_SECONDS = 120

HOST_PAGE = """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>某某市政务服务网</title><link rel="icon" href="data:,"></head>
<body>
<h1>某某市政务服务网</h1>
<script src="{src}" defer></script>
</body>
</html>
"""

#: Everything the tests read from the widget goes through its (open) shadow root.
SHADOW = "const root = document.querySelector('guide-widget').shadowRoot;\n"

TRANSCRIPT = SHADOW + """
return [...root.querySelectorAll('.gw-msg')].map(m => ({
  role: m.classList.contains('gw-msg-user') ? 'user' : m.classList.contains('gw-msg-notice') ? 'notice' : 'bot',
  tone: m.classList.contains('gw-tone-unavailable') ? 'unavailable'
        : m.classList.contains('gw-tone-error') ? 'error' : '',
  text: (m.querySelector('.gw-bubble') || {}).textContent || '',
  status: (m.querySelector('.gw-status') || {}).textContent || '',
  buttons: [...m.querySelectorAll('.gw-action')].map(b => ({title: b.textContent, disabled: b.disabled})),
  card: (m.querySelector('.gw-card') || {}).textContent || '',
  sheet: (m.querySelector('.gw-card-link') || {}).href || null,
}));
"""


@pytest.fixture(scope="module")
def host_page(servers, widget_host_port) -> Iterator[str]:
    """A page on another loopback origin embedding the widget with its one script tag."""
    page = HOST_PAGE.format(src=f"{servers.rasa_url}/webhooks/guide/widget.js").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", widget_host_port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert url.split("/")[2] != servers.rasa_url.split("/")[2]  # another origin
        yield url
    finally:
        server.shutdown()
        server.server_close()


# --- helpers -------------------------------------------------------------------------------


def js(driver: Any, body: str, *args: Any) -> Any:
    return driver.execute_script(SHADOW + body, *args)


def wait(driver: Any, condition: Callable[[Any], Any], seconds: float = 20, message: str = "") -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition, message)


def load(driver: Any, url: str) -> None:
    """Open the host page and wait until the widget is styled and shown."""
    driver.get(url)
    wait(driver, lambda d: d.execute_script(
        "const h = document.querySelector('guide-widget');"
        "return !!(h && h.shadowRoot && getComputedStyle(h).visibility === 'visible');"),
        message="the widget did not appear")


def transcript(driver: Any) -> list[dict[str, Any]]:
    return driver.execute_script(TRANSCRIPT)


def state(driver: Any) -> str:
    return js(driver, "return root.querySelector('.gw-root').dataset.state;")


def active(driver: Any) -> str:
    """The class of the focused control inside the widget ('' when the focus is elsewhere)."""
    return driver.execute_script(
        "const h = document.querySelector('guide-widget');"
        "const a = document.activeElement === h ? h.shadowRoot.activeElement : null;"
        "return a ? a.className : '';")


def panel_open(driver: Any) -> bool:
    return bool(js(driver, "return !root.querySelector('.gw-panel').hidden;"))


def settle(driver: Any) -> None:
    """Wait for the panel's opening animation to end (sizes are measured after it)."""
    wait(driver, lambda d: js(d, "return root.querySelector('.gw-panel').getAnimations().length") == 0)


def stored(driver: Any) -> dict[str, Any]:
    """The widget's saved session (sender id, transcript, queue) from the page's localStorage."""
    raw = driver.execute_script(
        "const k = Object.keys(localStorage).find(k => k.startsWith('guide-widget:') && !k.endsWith(':probe'));"
        "return k ? localStorage.getItem(k) : null;")
    assert raw, "nothing saved in localStorage"
    return json.loads(raw)


def widget_input(driver: Any) -> Any:
    return driver.find_element(By.CSS_SELECTOR, "guide-widget").shadow_root.find_element(By.CSS_SELECTOR, ".gw-input")


def ask(driver: Any, text: str) -> list[dict[str, Any]]:
    """Type a question, press Enter, wait for the answer; the entries it added."""
    before = len(transcript(driver))
    widget_input(driver).send_keys(text + Keys.ENTER)
    wait(driver, lambda d: state(d) == "idle" and len(transcript(d)) > before + 1, ANSWER_SECONDS,
         f"no answer to {text!r}")
    return transcript(driver)[before:]


def bot_text(entries: list[dict[str, Any]]) -> str:
    return "\n".join(e["text"] for e in entries if e["role"] == "bot")


def assert_stayed_local(driver: Any, allowed_errors: tuple[str, ...] = ()) -> None:
    """No request left the machine, and the console has no severe errors (but the expected)."""
    assert outside_requests(requested_urls(driver)) == []
    errors = [e for e in console_errors(driver) if not any(a in e for a in allowed_errors)]
    assert errors == []


def shoot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / name))


# --- tests ---------------------------------------------------------------------------------


def test_full_conversation_by_keyboard_with_the_notification_card(browser, host_page):
    load(browser, host_page)
    assert not panel_open(browser)
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert "gw-launcher" in active(browser)
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser, lambda d: panel_open(d) and "gw-input" in active(d), message="focus did not move into the panel")
    (greeting,) = transcript(browser)
    assert "您好" in greeting["text"] and greeting["buttons"]

    # Watch the typing indicator: it must show while the answer is awaited, and go after.
    js(browser, """
        window.__typingSeen = false;
        const t = root.querySelector('.gw-typing');
        new MutationObserver(() => { if (!t.hidden) window.__typingSeen = true; })
            .observe(t, {attributes: true, attributeFilter: ['hidden']});
    """)
    ActionChains(browser).send_keys("我身份证过期了怎么办").send_keys(Keys.ENTER).perform()
    wait(browser, lambda d: state(d) == "idle", ANSWER_SECONDS, "no answer")
    assert browser.execute_script("return window.__typingSeen") is True
    assert js(browser, "return root.querySelector('.gw-typing').hidden") is True
    assert js(browser, "return root.querySelector('.gw-typing').getAttribute('aria-label')") == "正在输入"

    entries = transcript(browser)[1:]
    assert entries[0] == {"role": "user", "tone": "", "text": "我身份证过期了怎么办", "status": "", "buttons": [],
                          "card": "", "sheet": None}
    answer = bot_text(entries)
    for expected in ("居民身份证换领", "申请材料", "原居民身份证", "20元"):
        assert expected in answer, (expected, answer)
    # The notification is a card built from the reply contract: sections, and the materials as a checklist.
    headings = js(browser, "return [...root.querySelectorAll('.gw-section-heading')].map(h => h.textContent);")
    assert headings[:2] == ["受理条件", "申请材料"] and "收费标准" in headings
    rows = js(browser, "return [...root.querySelectorAll('.gw-checklist .gw-material')].map(r => r.textContent);")
    assert rows and any("原居民身份证" in r and "原件" in r for r in rows), rows
    title = js(browser, "return root.querySelector('.gw-notice-title').textContent;")
    assert title == "【居民身份证换领（有效期满换证）】一次性告知"
    (card,) = [e for e in entries if e["sheet"]]
    assert "一次性告知单：打印或分享" in card["card"] and "完整的一次性告知" in card["card"]
    assert "居民身份证换领" in card["card"]
    link = js(browser, "const a = root.querySelector('.gw-card-link'); return [a.target, a.rel];")
    assert link == ["_blank", "noopener noreferrer"]
    sheet = httpx.get(card["sheet"], timeout=10)
    assert sheet.status_code == 200 and "一次性告知单" in sheet.text

    js(browser, "const log = root.querySelector('.gw-log'); log.scrollTop = log.scrollHeight;")
    shoot(browser, "widget.png")
    assert_stayed_local(browser)


def test_a_button_sends_its_payload_and_shows_its_title(browser, host_page):
    load(browser, host_page)
    js(browser, "root.querySelector('.gw-launcher').click();")
    reply = ask(browser, "身份证")
    (offer,) = [e for e in reply if e["buttons"]][-1:]
    assert all(not b["disabled"] for b in offer["buttons"])
    title = offer["buttons"][0]["title"]
    before = len(transcript(browser))
    buttons = browser.find_element(By.CSS_SELECTOR, "guide-widget").shadow_root.find_elements(
        By.CSS_SELECTOR, ".gw-action")
    [b for b in buttons if b.text == title and b.is_enabled()][-1].click()
    wait(browser, lambda d: state(d) == "idle" and len(transcript(d)) > before + 1, ANSWER_SECONDS, "no answer")
    after = transcript(browser)
    assert after[before]["role"] == "user" and after[before]["text"] == title  # the title, not the payload
    used = [e for e in after if e["buttons"] and e["buttons"][0]["title"] == title][-1]
    assert all(b["disabled"] for b in used["buttons"])  # the group is spent
    assert "一次性告知" in bot_text(after[before + 1:])
    assert "gw-input" in active(browser)
    assert_stayed_local(browser)


def test_a_reload_keeps_the_session_and_new_conversation_starts_afresh(browser, host_page):
    load(browser, host_page)
    js(browser, "root.querySelector('.gw-launcher').click();")
    ask(browser, "我身份证过期了怎么办")
    before, saved = transcript(browser), stored(browser)
    assert saved["sender"].startswith("web-") and saved["queue"] == []

    browser.refresh()
    load(browser, host_page)
    assert panel_open(browser)  # it was open: it is open again
    assert transcript(browser) == before
    assert stored(browser)["sender"] == saved["sender"]
    follow_up = bot_text(ask(browser, "那要多少钱"))
    assert "居民身份证换领" in follow_up and "收费标准" in follow_up and "20元" in follow_up

    # Closed before a reload: closed after it.
    js(browser, "root.querySelector('.gw-close').click();")
    browser.refresh()
    load(browser, host_page)
    assert not panel_open(browser)

    # 新对话: a new sender id, the transcript cleared, and nothing sent until the user types.
    js(browser, "root.querySelector('.gw-launcher').click();")
    requested_urls(browser)
    js(browser, "root.querySelector('.gw-new').click();")
    assert stored(browser)["sender"] != saved["sender"]
    fresh = transcript(browser)
    assert len(fresh) == 1 and "您好" in fresh[0]["text"]
    assert not [u for u in requested_urls(browser) if u.endswith("/webhook")]
    assert "20元" not in bot_text(ask(browser, "那要多少钱"))  # the new conversation has no item yet
    assert_stayed_local(browser)


HOSTILE = '<img src=x onerror="window.__pwned=1">'


def test_html_in_any_message_is_shown_as_text(browser, host_page):
    load(browser, host_page)
    js(browser, "root.querySelector('.gw-launcher').click();")
    ask(browser, HOSTILE)
    assert HOSTILE in [e["text"] for e in transcript(browser) if e["role"] == "user"]

    # The ticket form reads the description and the name back: hostile text from the bot's side.
    assert "哪一类" in bot_text(ask(browser, "转人工"))
    assert "经过" in bot_text(ask(browser, "多次办理仍未办成"))
    description = f'{HOSTILE}<script>window.__pwned=2</script> javascript:alert(1) 详见 https://example.org/a?b=1。'
    assert "称呼" in bot_text(ask(browser, description))
    assert "手机" in bot_text(ask(browser, "<b>王</b>"))
    confirm = bot_text(ask(browser, "13812345678"))
    assert HOSTILE in confirm and "<script>window.__pwned=2</script>" in confirm and "<b>王</b>" in confirm

    assert browser.execute_script("return window.__pwned") is None
    elements = js(browser, "return [...root.querySelectorAll('.gw-log img, .gw-log script, .gw-log b')].length")
    assert elements == 0
    links = js(browser, "return [...root.querySelectorAll('.gw-bubble a')].map(a => [a.href, a.target, a.rel]);")
    assert links == [["https://example.org/a?b=1", "_blank", "noopener noreferrer"]]  # javascript: stays text
    ask(browser, "取消")
    urls = requested_urls(browser)
    assert not [u for u in urls if u.rstrip("/").endswith("/x")]  # the <img> was never loaded
    assert outside_requests(urls) == []
    assert console_errors(browser) == []


def test_offline_message_is_queued_and_sent_once_when_back_online(browser, host_page):
    load(browser, host_page)
    js(browser, "root.querySelector('.gw-launcher').click();")
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    try:
        widget_input(browser).send_keys("护照怎么办理" + Keys.ENTER)
        wait(browser, lambda d: state(d) == "reconnecting", 30, "no reconnect state")
        banner = js(browser, "const b = root.querySelector('.gw-banner'); return [b.hidden, b.textContent];")
        assert banner[0] is False and "网络不稳定，正在重新连接…" in banner[1]
        mine = [e for e in transcript(browser) if e["role"] == "user"]
        assert [e["text"] for e in mine] == ["护照怎么办理"] and mine[0]["status"]
        saved = stored(browser)
        assert [q["message"] for q in saved["queue"]] == ["护照怎么办理"]
        # Another failed retry must not add the message again.
        js(browser, "root.querySelector('.gw-retry').click();")
        wait(browser, lambda d: state(d) == "reconnecting", 30)
        assert [e["text"] for e in transcript(browser) if e["role"] == "user"] == ["护照怎么办理"]
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", dict(offline, offline=False))

    wait(browser, lambda d: state(d) == "idle", ANSWER_SECONDS, "the queued message was not sent")
    entries = transcript(browser)
    assert js(browser, "return root.querySelector('.gw-banner').hidden") is True
    assert [e["text"] for e in entries if e["role"] == "user"] == ["护照怎么办理"]
    assert next(e for e in entries if e["role"] == "user")["status"] == ""
    answers = [e for e in entries if e["role"] == "bot" and "一次性告知" in e["text"]]
    assert len(answers) == 1 and "护照" in answers[0]["text"]
    assert len([e for e in entries if e["sheet"]]) == 1
    assert stored(browser)["queue"] == []
    # Offline fetches are logged by the browser as failed loads; nothing else may be.
    assert_stayed_local(browser, allowed_errors=("net::ERR_INTERNET_DISCONNECTED",))


def test_a_queued_message_survives_a_reload(browser, host_page):
    """The assistant unreachable (only its webhook blocked, so the page itself reloads): the
    message stays queued across the reload and goes out once, by itself, when it is reachable."""
    load(browser, host_page)
    js(browser, "root.querySelector('.gw-launcher').click();")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/webhooks/guide/webhook*"]})
    try:
        widget_input(browser).send_keys("结婚登记要带什么材料" + Keys.ENTER)
        wait(browser, lambda d: state(d) == "reconnecting", 30, "no reconnect state")
        browser.refresh()
        load(browser, host_page)
        assert [e["text"] for e in transcript(browser) if e["role"] == "user"] == ["结婚登记要带什么材料"]
        assert [q["message"] for q in stored(browser)["queue"]] == ["结婚登记要带什么材料"]
        wait(browser, lambda d: state(d) == "reconnecting", 30, "no reconnect state after the reload")
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    wait(browser, lambda d: state(d) == "idle", ANSWER_SECONDS, "the queued message was not sent")
    entries = transcript(browser)
    assert [e["text"] for e in entries if e["role"] == "user"] == ["结婚登记要带什么材料"]
    assert len([e for e in entries if e["role"] == "bot" and "结婚登记" in e["text"]]) == 1
    assert_stayed_local(browser, allowed_errors=("net::ERR_BLOCKED_BY_CLIENT",))


def test_a_refused_message_shows_the_servers_reason(browser, host_page):
    load(browser, host_page)
    browser.execute_script("GuideWidget.send(arguments[0]);", "办" * 2001)
    wait(browser, lambda d: state(d) == "idle", ANSWER_SECONDS)
    last = transcript(browser)[-2:]
    assert last[0]["role"] == "user" and last[0]["status"] == "未发送"
    assert last[1]["role"] == "notice" and last[1]["tone"] == "error" and "消息太长" in last[1]["text"]
    assert_stayed_local(browser, allowed_errors=("status of 400",))


def test_accessibility_basics(browser, host_page):
    load(browser, host_page)
    launcher = js(browser, "const l = root.querySelector('.gw-launcher');"
                           "return [l.tagName, l.textContent.trim(), l.getAttribute('aria-expanded')];")
    assert launcher == ["BUTTON", "在线咨询", "false"]
    ActionChains(browser).send_keys(Keys.TAB).send_keys(Keys.ENTER).perform()
    wait(browser, lambda d: "gw-input" in active(d))
    settle(browser)

    facts = js(browser, """
        const panel = root.querySelector('.gw-panel'), log = root.querySelector('.gw-log');
        const input = root.querySelector('.gw-input');
        const name = el => (el.getAttribute('aria-label') || el.textContent || '').trim();
        const size = el => parseFloat(getComputedStyle(el).fontSize);
        return {
          dialog: [panel.getAttribute('role'), root.getElementById(panel.getAttribute('aria-labelledby')).textContent],
          log: [log.getAttribute('role'), log.getAttribute('aria-live')],
          label: [...input.labels].map(l => l.textContent.trim()),
          labelShown: input.labels[0].getBoundingClientRect().height > 0,
          unnamed: [...root.querySelectorAll('button')].filter(b => !name(b)).map(b => b.outerHTML),
          small: [...root.querySelectorAll('.gw-panel button, .gw-panel textarea, .gw-bubble, .gw-label, .gw-title')]
                   .filter(el => el.getClientRects().length && size(el) < 16).map(el => el.className),
          short: [...root.querySelectorAll('.gw-panel button')]
                   .filter(b => b.getClientRects().length && b.getBoundingClientRect().height < 43.5)
                   .map(b => b.className),
          expanded: root.querySelector('.gw-launcher').getAttribute('aria-expanded'),
        };
    """)
    assert facts["dialog"] == ["dialog", "政务服务智能导办"]
    assert facts["log"] == ["log", "polite"]
    assert facts["label"] == ["输入您的问题"] and facts["labelShown"]
    assert facts["unnamed"] == []
    assert facts["small"] == []
    assert facts["short"] == []
    assert facts["expanded"] == "true"

    # Tab reaches every control, each with a visible focus ring.
    seen = []
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = js(browser, "const a = root.activeElement; if (!a) return null;"
                              "const s = getComputedStyle(a);"
                              "return [a.className, s.outlineStyle, parseFloat(s.outlineWidth)];")
        if focused is None:
            continue
        seen.append(focused[0])
        assert focused[1] != "none" and focused[2] >= 2, focused
    for control in ("gw-send", "gw-new", "gw-close", "gw-log", "gw-action", "gw-input"):
        assert any(control in c for c in seen), (control, seen)

    # Esc closes and gives the focus back to the launcher.
    widget_input(browser).click()
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    wait(browser, lambda d: not panel_open(d))
    assert "gw-launcher" in active(browser)
    assert js(browser, "return root.querySelector('.gw-launcher').getAttribute('aria-expanded')") == "false"

    # prefers-reduced-motion: no sliding panel, no bouncing dots.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    js(browser, "root.querySelector('.gw-launcher').click();")
    moving = js(browser, "return [root.querySelector('.gw-panel'), root.querySelector('.gw-dots span')]"
                         ".map(el => getComputedStyle(el).animationName);")
    assert moving == ["none", "none"]
    assert_stayed_local(browser)


def test_host_page_styles_do_not_reach_in_and_widget_does_not_reach_out(browser, host_page):
    load(browser, host_page)
    browser.execute_script("""
        const s = document.createElement('style');
        s.textContent = 'button { font-size: 8px !important; background: red !important; } '
                      + '* { font-family: serif !important; } body { font-size: 9px; color: red; }';
        document.head.appendChild(s);
    """)
    look = js(browser, "const l = root.querySelector('.gw-launcher'); const s = getComputedStyle(l);"
                       "return [parseFloat(s.fontSize), s.backgroundColor, s.position];")
    assert look == [18, "rgb(29, 78, 137)", "fixed"]
    assert browser.execute_script("return getComputedStyle(document.querySelector('h1')).fontFamily") == "serif"
    assert browser.execute_script("return Object.keys(window).filter(k => /guide/i.test(k))") == ["GuideWidget"]


def test_phone_layout_is_full_screen(host_page):
    driver = start_chromium(390, 844, mobile=True)
    try:
        load(driver, host_page)
        shoot(driver, "widget-phone-closed.png")
        js(driver, "root.querySelector('.gw-launcher').click();")
        settle(driver)
        rect = js(driver, "const r = root.querySelector('.gw-panel').getBoundingClientRect();"
                          "return [r.left, r.top, r.width, r.height, innerWidth, innerHeight];")
        assert rect[:2] == [0, 0] and rect[2] == rect[4] and rect[3] == rect[5], rect
        ask(driver, "身份证")
        shoot(driver, "widget-phone.png")
        assert_stayed_local(driver)
    finally:
        driver.quit()


def test_demo_page_and_assets_are_served(servers, browser):
    for path, kind in (("/webhooks/guide/widget.js", "javascript"), ("/webhooks/guide/widget.css", "text/css"),
                       ("/webhooks/guide/demo", "text/html")):
        response = httpx.get(servers.rasa_url + path, timeout=10)
        assert response.status_code == 200 and kind in response.headers["content-type"], path
    assert "webhooks/guide/widget.js" in httpx.get(servers.rasa_url + "/webhooks/guide/demo", timeout=10).text
    browser.get(servers.rasa_url + "/webhooks/guide/demo")
    wait(browser, lambda d: d.execute_script("return !!window.GuideWidget"))
    reply = bot_text(ask_via_api(browser, "结婚登记要带什么材料"))
    assert "结婚登记" in reply
    assert_stayed_local(browser)


def ask_via_api(driver: Any, text: str) -> list[dict[str, Any]]:
    before = len(transcript(driver))
    driver.execute_script("GuideWidget.send(arguments[0]);", text)
    wait(driver, lambda d: state(d) == "idle" and len(transcript(d)) > before + 1, ANSWER_SECONDS)
    return transcript(driver)[before:]
