"""The staff server over real HTTP: the API, the ledger entries it writes, and the page's files.

``sanic-testing`` is not installed, so the app built by :func:`bot.servers.staff.create_app` runs with
``app.run`` in a child process on a free loopback port and httpx talks to it (readiness is
polled on ``/health``). Tickets are made directly in the same SQLite file; a clock in the past
makes the overdue ones.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.settings import Settings, load_settings
from bot.tickets.model import NewTicket
from bot.tickets.recorder import Recorder
from bot.tickets.store import TicketStore

TOKEN = "t" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATIC = Path(__file__).resolve().parents[1] / "bot" / "static"


def serve(settings: Settings, url: str, port: int) -> None:
    """The child process: the staff app on its own store, as ``python -m bot.servers.staff`` runs it."""
    from bot.servers.staff import create_app

    store = TicketStore(url)
    store.migrate()
    app = create_app(settings, store, {"guide-1": "居民身份证换领"})
    app.run("127.0.0.1", port, workers=1, access_log=False)


class Clock:
    """The hall's clock, or a fixed time when ``at`` is set."""

    def __init__(self) -> None:
        self.at: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.at or dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)


@dataclass
class Server:
    url: str
    store: TicketStore
    clock: Clock
    numbers: dict[str, str]

    def get(self, path: str, **kw) -> httpx.Response:
        kw.setdefault("headers", AUTH)
        return httpx.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        kw.setdefault("headers", AUTH)
        return httpx.post(self.url + path, timeout=10, **kw)

    def ticket(self, key: str) -> dict:
        response = self.get(f"/api/tickets/{self.numbers[key]}")
        assert response.status_code == 200, response.text
        return response.json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make(store: TicketStore, key: str, **kw) -> str:
    values = dict(category="failed", description="网上提交了三次都失败", name="张三", phone="13812345678",
                  conversation_id=f"conv-{key}", item="居民身份证换领")
    values.update(kw)
    ticket, created = store.create(NewTicket(**values), f"{key}:m1")
    assert created
    return ticket.number


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path_factory.mktemp('staff') / 't.db'}"
    clock = Clock()
    store = TicketStore(url, clock=clock)
    store.migrate()
    now = clock()
    numbers: dict[str, str] = {}
    clock.at = now - dt.timedelta(days=20)  # due long ago (even across the longest holiday)
    numbers["late"] = make(store, "late", description="窗口说材料不全，但清单上的都带了")
    numbers["late_done"] = make(store, "late_done", category="other", phone=None)
    clock.at = now - dt.timedelta(hours=1)  # due the next working day
    numbers["changes"] = make(store, "changes", category="repeated", phone="13900001111")
    numbers["bad_input"] = make(store, "bad_input", category="disputed")
    numbers["fresh"] = make(store, "fresh", category="conduct", name="<b>李四</b>", phone="13712345678",
                            description='<img src=x onerror="alert(1)">', item=None,
                            source="bad_rating", rating=1)
    clock.at = None
    store.resolve(numbers["late_done"], "已电话答复", "window2")  # resolved, but after its due time
    recorder = Recorder.over(store)
    recorder.record_interaction("c1", "怎么换身份证", "notification", "guide-1")
    recorder.record_interaction("c2", "我的手机号13812345678办不了", "fallback", None)
    recorder.record_interaction("c3", "我的手机号13812345678办不了", "fallback", None)
    recorder.record_interaction("c4", "", "empty", None)
    recorder.record_rating("c1", 5, None, "guide-1")
    recorder.record_rating("c2", 2, "太慢", None)

    settings = load_settings({}).with_(staff_tokens=(("window1", TOKEN),))
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(settings, url, port), daemon=True)
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if not process.is_alive():
                pytest.fail(f"the staff server exited with {process.exitcode}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the staff server did not answer /health within 60 s")
            time.sleep(0.1)
        yield Server(base, store, clock, numbers)
    finally:
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
        store.engine.dispose()


# --- sign-in ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token-wrong-token"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer t\u00e9t\u00e9".encode("latin-1")},  # a non-ASCII token is just wrong, not a crash
], ids=["none", "wrong", "longer", "basic", "no-scheme", "empty", "non-ascii"])
def test_the_api_needs_a_staff_token(server, headers):
    for path in ("/api/meta", "/api/tickets", f"/api/tickets/{server.numbers['late']}", "/api/reports"):
        response = server.get(path, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert "token" in response.json()["error"]
    before = server.ticket("late")["history"]
    response = server.post(f"/api/tickets/{server.numbers['late']}/notes", json={"note": "x"}, headers=headers)
    assert response.status_code == 401
    assert server.ticket("late")["history"] == before


def test_meta_names_the_staff_member_from_the_token(server):
    data = server.get("/api/meta").json()
    assert data["staff"] == "window1"
    assert set(data["categories"]) == {"failed", "repeated", "disputed", "conduct", "other"}
    assert set(data["statuses"]) == {"open", "assigned", "resolved"}
    assert set(data["triage"]) == {"simple", "ordinary", "complex"}


# --- the list ---------------------------------------------------------------------


def listing(server: Server, **params) -> list[dict]:
    response = server.get("/api/tickets", params=params)
    assert response.status_code == 200, response.text
    return response.json()["tickets"]


def test_the_list_is_sorted_by_due_time_and_flags_overdue_tickets(server):
    response = server.get("/api/tickets")
    data = response.json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", data["now"])
    tickets = data["tickets"]
    assert {t["number"] for t in tickets} == set(server.numbers.values())
    assert [t["due_at"] for t in tickets] == sorted(t["due_at"] for t in tickets)
    by = {t["number"]: t for t in tickets}
    late = by[server.numbers["late"]]
    assert late["overdue"] is True and late["status"] == "open" and late["status_label"] == "待处理"
    assert by[server.numbers["fresh"]]["overdue"] is False
    done = by[server.numbers["late_done"]]  # resolved after its due time: late, but not open
    assert done["status"] == "resolved" and done["overdue"] is True
    for t in tickets:
        for key in ("number", "category_label", "item", "name", "phone", "triage_label", "status_label",
                    "assignee", "created_at", "due_at", "overdue"):
            assert key in t
        assert t["history"] == []  # the list carries no ledger


def test_only_overdue_means_late_and_still_open(server):
    late = {t["number"] for t in listing(server, overdue="true")}
    assert server.numbers["late"] in late
    assert server.numbers["late_done"] not in late and server.numbers["fresh"] not in late
    assert all(t["overdue"] and t["status"] != "resolved" for t in listing(server, overdue="true"))
    not_late = {t["number"] for t in listing(server, overdue="false")}
    assert server.numbers["late"] not in not_late and server.numbers["fresh"] in not_late
    assert {t["number"] for t in listing(server, overdue="")} == set(server.numbers.values())


def test_the_list_filters_by_status_category_and_triage(server):
    assert [t["number"] for t in listing(server, status="resolved")] == [server.numbers["late_done"]]
    assert [t["number"] for t in listing(server, category="conduct")] == [server.numbers["fresh"]]
    assert all(t["category"] == "failed" for t in listing(server, category="failed"))
    ordinary = {t["number"] for t in listing(server, triage="ordinary")}  # what conduct/disputed/repeated start as
    assert {server.numbers["fresh"], server.numbers["bad_input"]} <= ordinary
    assert server.numbers["late"] not in ordinary
    assert listing(server, status="open", category="other") == []
    for name in ("status", "category", "triage"):
        response = server.get("/api/tickets", params={name: "nonsense"})
        assert response.status_code == 400 and name in response.json()["error"]


def test_phones_are_masked_in_the_list_and_the_detail(server):
    response = server.get("/api/tickets")
    assert "13812345678" not in response.text and "13712345678" not in response.text
    by = {t["number"]: t for t in response.json()["tickets"]}
    assert by[server.numbers["late"]]["phone"] == "138****5678"
    assert by[server.numbers["late_done"]]["phone"] is None
    detail = server.get(f"/api/tickets/{server.numbers['fresh']}")
    assert detail.json()["phone"] == "137****5678" and "13712345678" not in detail.text
    assert all(h["action"] != "viewed_phone" for h in detail.json()["history"])


def test_revealing_the_phone_shows_it_once_and_goes_into_the_ledger(server):
    number = server.numbers["fresh"]
    before = server.ticket("fresh")["history"]
    revealed = server.get(f"/api/tickets/{number}", params={"reveal": "phone"}).json()
    assert revealed["phone"] == "13712345678"
    assert len(revealed["history"]) == len(before) + 1
    entry = revealed["history"][-1]
    assert entry["action"] == "viewed_phone" and entry["actor"] == "window1" and entry["detail"]
    again = server.ticket("fresh")
    assert again["phone"] == "137****5678"  # the next plain read is masked again
    assert again["history"] == revealed["history"]
    assert server.get(f"/api/tickets/{number}", params={"reveal": "yes"}).json()["phone"] == "137****5678"
    assert len(server.ticket("fresh")["history"]) == len(before) + 1  # only ?reveal=phone is recorded
    assert "13712345678" not in server.get("/api/tickets").text


def test_the_detail_returns_citizen_text_as_it_was_typed(server):
    ticket = server.ticket("fresh")
    assert ticket["name"] == "<b>李四</b>" and ticket["description"] == '<img src=x onerror="alert(1)">'
    assert ticket["source"] == "bad_rating" and ticket["rating"] == 1 and ticket["item"] is None
    assert ticket["number"] == server.numbers["fresh"]
    assert server.get(f"/api/tickets/{server.numbers['fresh'].lower()}").json()["number"] == ticket["number"]


# --- staff changes ----------------------------------------------------------------


def test_assign_triage_note_and_resolve_change_the_ticket_and_the_ledger(server):
    number = server.numbers["changes"]
    start = len(server.ticket("changes")["history"])
    path = f"/api/tickets/{number}"

    assigned = server.post(f"{path}/assign", json={"assignee": "  李四 "}).json()
    assert assigned["assignee"] == "李四" and assigned["status"] == "assigned" and assigned["status_label"] == "处理中"
    assert assigned["history"][-1] == {**assigned["history"][-1], "actor": "window1", "action": "assigned",
                                       "detail": "指派给 李四"}

    triaged = server.post(f"{path}/triage", json={"triage": "complex"}).json()
    assert triaged["triage"] == "complex" and triaged["triage_label"] == "复杂（跟踪到底）"
    assert triaged["history"][-1]["action"] == "triaged" and triaged["history"][-1]["actor"] == "window1"

    noted = server.post(f"{path}/notes", json={"note": "已联系社保科，对方电话13912345678"}).json()
    last = noted["history"][-1]
    assert last["action"] == "note" and last["actor"] == "window1"
    assert "已联系社保科" in last["detail"] and "13912345678" not in last["detail"]  # numbers masked in the ledger
    assert noted["status"] == "assigned"

    resolved = server.post(f"{path}/resolve", json={"resolution": "已补办完成，电话告知反映人"}).json()
    assert resolved["status"] == "resolved" and resolved["resolution"] == "已补办完成，电话告知反映人"
    assert resolved["resolved_at"] and resolved["overdue"] is False
    assert resolved["history"][-1]["action"] == "resolved" and resolved["history"][-1]["actor"] == "window1"
    assert [h["action"] for h in resolved["history"][start:]] == ["assigned", "triaged", "note", "resolved"]
    assert server.ticket("changes") == resolved
    assert number in {t["number"] for t in listing(server, status="resolved")}

    # A resolved ticket cannot be assigned or resolved again; notes and triage still work.
    for verb, body in (("assign", {"assignee": "王五"}), ("resolve", {"resolution": "again"})):
        response = server.post(f"{path}/{verb}", json=body)
        assert response.status_code == 400 and "already resolved" in response.json()["error"]
    assert server.post(f"{path}/notes", json={"note": "回访满意"}).status_code == 200
    assert len(server.ticket("changes")["history"]) == start + 5


@pytest.mark.parametrize(("verb", "content"), [
    ("notes", b"{not json"),
    ("notes", b'["a list"]'),
    ("notes", b'{"text": "wrong field"}'),
    ("notes", b'{"note": 42}'),
    ("notes", b""),
    ("notes", b'{"note": ""}'),
    ("notes", b'{"note": "   "}'),
    ("assign", b'{"assignee": " "}'),
    ("triage", b'{"triage": "urgent"}'),
    ("triage", '{"triage": "复杂（跟踪到底）"}'.encode()),
    ("resolve", b'{"resolution": ""}'),
], ids=["bad-json", "not-object", "missing-field", "not-text", "no-body", "empty-note", "blank-note",
        "blank-assignee", "unknown-triage", "triage-label", "empty-resolution"])
def test_bad_input_is_a_400_and_changes_nothing(server, verb, content):
    before = server.ticket("bad_input")
    response = server.post(f"/api/tickets/{server.numbers['bad_input']}/{verb}", content=content,
                           headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert server.ticket("bad_input") == before


def test_an_unknown_ticket_is_a_404(server):
    for response in (
        server.get("/api/tickets/BC20000101-9999"),
        server.get("/api/tickets/BC20000101-9999", params={"reveal": "phone"}),
        server.post("/api/tickets/BC20000101-9999/assign", json={"assignee": "李四"}),
        server.post("/api/tickets/BC20000101-9999/notes", json={"note": "x"}),
        server.post("/api/tickets/BC20000101-9999/resolve", json={"resolution": "x"}),
    ):
        assert response.status_code == 404
        assert "no ticket" in response.json()["error"]
    assert server.post(f"/api/tickets/{server.numbers['late']}/delete", json={}).status_code == 404


# --- reports ----------------------------------------------------------------------


def test_reports_have_the_documented_shape(server):
    data = server.get("/api/reports").json()
    assert set(data) >= {"from", "to", "questions", "answered", "unresolved", "per_day", "top_unresolved",
                         "ratings", "tickets"}
    assert set(data["ratings"]) >= {"count", "average", "by_level", "by_item"}
    assert set(data["tickets"]) >= {"count", "by_category", "open", "sla_due", "sla_met", "sla_compliance"}
    assert len(data["per_day"]) == 30 and data["to"] == server.clock().date().isoformat()
    assert all(set(v) == {"answered", "unresolved"} for v in data["per_day"].values())
    assert data["questions"] == 3 and data["answered"] == 1 and data["unresolved"] == 2
    assert data["top_unresolved"] == [{"question": "我的手机号138****5678办不了", "count": 2}]
    assert data["ratings"]["count"] == 2 and data["ratings"]["average"] == 3.5
    assert data["ratings"]["by_level"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert {row["title"] for row in data["ratings"]["by_item"]} == {"居民身份证换领", "（未关联事项）"}
    assert data["tickets"]["count"] == 5
    assert set(data["tickets"]["by_category"]) == {"failed", "repeated", "disputed", "conduct", "other"}


def test_report_dates_are_checked(server):
    today = server.clock().date()
    week = server.get("/api/reports", params={"from": (today - dt.timedelta(days=6)).isoformat(),
                                              "to": today.isoformat()}).json()
    assert len(week["per_day"]) == 7
    for params in ({"from": "2026-13-01"}, {"from": "yesterday"}, {"from": "2026-12-01", "to": "2026-11-01"},
                   {"from": "2024-01-01", "to": "2026-01-01"}):
        response = server.get("/api/reports", params=params)
        assert response.status_code == 400 and response.json()["error"], params


# --- the page ---------------------------------------------------------------------


def test_the_page_and_its_assets_are_served(server):
    page = httpx.get(f"{server.url}/staff", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "办不成事反映窗口" in page.text and 'lang="zh-CN"' in page.text
    assets = re.findall(r'(?:src|href)="(/staff/[^"]+)"', page.text)
    assert sorted(assets) == ["/staff/staff.css", "/staff/staff.js"]
    for asset, kind in (("/staff/staff.js", "javascript"), ("/staff/staff.css", "text/css")):
        response = httpx.get(server.url + asset, timeout=10)
        assert response.status_code == 200 and kind in response.headers["content-type"], asset
        assert response.content == (STATIC / asset.rsplit("/", 1)[1]).read_bytes()
    for missing in ("/staff/nothing.js", "/staff/staff.html", "/staff/Staff.js", "/staff/..%2Fstaff.py"):
        assert httpx.get(server.url + missing, timeout=10).status_code == 404, missing


def test_the_page_and_the_api_send_their_policy_as_real_headers(server):
    for path, headers in (("/staff", {}), ("/staff/staff.js", {}), ("/api/meta", AUTH), ("/api/meta", {})):
        response = httpx.get(server.url + path, headers=headers, timeout=10)
        policy = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy, path
        assert response.headers["x-frame-options"] == "DENY" and response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(server.url + "/api/meta", headers=AUTH, timeout=10).headers["cache-control"] == "no-store"


def test_the_page_loads_nothing_from_elsewhere_and_never_injects_markup():
    html = (STATIC / "staff.html").read_text(encoding="utf-8")
    js = (STATIC / "staff.js").read_text(encoding="utf-8")
    css = (STATIC / "staff.css").read_text(encoding="utf-8")
    for name, text in (("staff.html", html), ("staff.js", js), ("staff.css", css)):
        assert not re.search(r"https?://", text, re.IGNORECASE), name
        assert not re.search(r"""(?:src|href|action)\s*=\s*["']?//""", text, re.IGNORECASE), name
        assert "@import" not in text and "@font-face" not in text, name
    assert "url(" not in css
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "Content-Security-Policy" in html and "connect-src 'self'" in html


def test_the_page_is_labelled_and_its_script_finds_every_element():
    html = (STATIC / "staff.html").read_text(encoding="utf-8")
    js = (STATIC / "staff.js").read_text(encoding="utf-8")
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    used = set(re.findall(r'(?:\$|say)\("([a-z0-9-]+)"', js))
    for array in re.findall(r'\[\s*("[^"\]]+"(?:,\s*"[^"\]]+")*)\s*\]', js):  # ids handed to $ in loops
        used |= {name for name in re.findall(r'"([^"]+)"', array) if re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)+", name)}
    used |= {f"{prefix}-{tab}" for prefix in ("tab", "panel") for tab in ("tickets", "reports")}
    assert used - ids == set()
    controls = re.findall(r'<(?:input|select|textarea)\b[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    assert controls and set(controls) - labelled == set()
    assert re.findall(r"<th\b(?![^>]*\bscope=)", html) == []
    assert "<a " not in html.replace('<a class="skip-link" href="#main">', "")  # actions are <button>s
    assert re.search(r"font-size:\s*16px", (STATIC / "staff.css").read_text(encoding="utf-8"))


# --- the page in a real browser -----------------------------------------------------


@pytest.mark.e2e
def test_the_staff_page_in_a_real_browser(server, browser):
    """Headless Chromium: sign in, overdue tickets stand out, citizen text stays text, phones stay
    masked until opened, and the page loads nothing from outside the machine."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from ops.browser import console_errors, outside_requests, requested_urls

    wait = WebDriverWait(browser, 20)
    browser.set_window_size(1366, 900)
    browser.get(f"{server.url}/staff")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "signin-button").click()
    wait.until(ec.visibility_of_element_located((By.ID, "app")))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-number="{server.numbers["fresh"]}"]'))
    assert browser.find_element(By.ID, "staff-name").text == "window1"

    late = browser.find_element(By.CSS_SELECTOR, f'tr[data-number="{server.numbers["late"]}"]')
    assert "overdue" in late.get_attribute("class") and "已超时" in late.text
    fresh = browser.find_element(By.CSS_SELECTOR, f'tr[data-number="{server.numbers["fresh"]}"]')
    assert "overdue" not in fresh.get_attribute("class")
    assert "<b>李四</b>" in fresh.text  # shown as typed, not as markup
    assert "13712345678" not in browser.find_element(By.ID, "ticket-rows").text

    fresh.find_element(By.CSS_SELECTOR, "button").click()
    wait.until(ec.visibility_of_element_located((By.ID, "detail")))
    wait.until(lambda d: '<img src=x onerror="alert(1)">' in d.find_element(By.ID, "detail-fields").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "#detail-fields img, #ticket-rows img, #ticket-rows b")
    assert "13712345678" not in browser.find_element(By.ID, "detail-phone").text
    browser.find_element(By.ID, "reveal-phone").click()
    wait.until(lambda d: "13712345678" in d.find_element(By.ID, "detail-phone").text)
    assert any(e["action"] == "viewed_phone" and e["actor"] == "window1"
               for e in server.ticket("fresh")["history"])

    out = Path(__file__).resolve().parents[1] / "results" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(out / "staff.png"))
    assert outside_requests(requested_urls(browser)) == []
    assert console_errors(browser) == []
