"""The shipped configuration keeps the doors shut (what tests/e2e/test_security.py attacks live)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from bot.channels.guard import (
    MAX_METADATA_BYTES,
    BadRequest,
    RateLimit,
    clean_metadata,
    cors_headers,
    parse_origins,
    sender_key,
)
from bot.settings import ROOT, SECRETS, env_for
from ops import proxy


def test_rasa_s_plain_rest_channel_is_not_enabled():
    channels = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    assert "rest" not in channels and "bot.channels.rest.GuideChannel" in channels


@pytest.mark.parametrize("name", ["endpoints.yml", "endpoints-scaled.yml"])
def test_rasa_sends_the_action_secret(name):
    endpoint = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))["action_endpoint"]
    assert endpoint["headers"] == {"X-Action-Secret": "${ACTION_SECRET}"}


@pytest.mark.parametrize("path", ["scripts/run.sh", "ops/stack.py", "ops/scaled.py"])
def test_rasa_is_never_started_with_open_cors_or_an_api_without_a_token(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    assert "--cors" not in text
    for line in text.splitlines():
        if "--enable-api" in line:
            assert "--auth-token" in line, line


def test_the_proxy_publishes_channels_and_sheets_only():
    for route in proxy.ROUTES:
        assert route.path.startswith(("/webhooks/guide/", "/webhooks/miniprogram/", "/webhooks/wechat/",
                                      "/webhooks/kiosk/", "/sheets/")), route
        assert route.audience == "hall" or not route.path.startswith("/webhooks/kiosk/")  # voice stays in the hall
        assert re.fullmatch(r"\d+[km]", route.max_body)
    public = proxy.locations("public", rasa="r", actions="a")
    for path in ("/status", "/conversations", "/model", "/webhook ", "/webhooks/rest", "/webhooks/kiosk", "/api"):
        assert f"location = {path}" not in public and f"location {path}" not in public
    assert "location / { return 404; }" in public


def test_the_single_machine_example_is_generated_from_the_table():
    assert proxy.EXAMPLE.read_text(encoding="utf-8") == proxy.example(), "run: python -m ops.proxy"


def test_each_process_gets_only_its_own_secrets():
    env = {name: "s" for name in SECRETS} | {"PATH": "/bin", "GUIDE_HOTLINE": "12345"}
    assert set(env_for("staff", env)) == {"PATH", "GUIDE_HOTLINE", "STAFF_TOKENS", "TICKETS_DB_URL"}
    assert set(env_for("actions", env)) == {"PATH", "GUIDE_HOTLINE", "ACTION_SECRET", "TICKETS_DB_URL"}
    assert "STAFF_TOKENS" not in env_for("rasa", env) and "TICKETS_DB_URL" not in env_for("rasa", env)
    script = subprocess.run([str(ROOT / ".venv/actions/bin/python"), "-m", "bot.settings", "unset-for", "actions"],
                            capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert set(script) == set(SECRETS) - {"ACTION_SECRET", "TICKETS_DB_URL"}


def test_skops_in_the_rasa_venv_is_the_fixed_release_and_still_saves_and_loads():
    code = ("import skops, skops.io as sio, numpy as np; from sklearn.linear_model import LogisticRegression; "
            "m = LogisticRegression().fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1]); sio.dump(m, '/tmp/m.skops'); "
            "t = sio.get_untrusted_types(file='/tmp/m.skops'); sio.load('/tmp/m.skops', trusted=t); "
            "print(skops.__version__)")
    out = subprocess.run([str(ROOT / ".venv/rasa/bin/python"), "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert tuple(int(x) for x in out.split(".")[:2]) >= (0, 12), out


# --- the channels' own checks ------------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, origin: str | None = None, ip: str = "203.0.113.5", real_ip: str | None = None) -> None:
        self.headers = {k: v for k, v in (("origin", origin), ("x-real-ip", real_ip)) if v is not None}
        self.ip = ip


def test_cors_only_for_listed_origins_and_never_credentials():
    allowed = parse_origins("https://www.example.gov.cn/, https://B.example.gov.cn")
    assert allowed == {"https://www.example.gov.cn", "https://b.example.gov.cn"}
    assert cors_headers(FakeRequest("https://www.example.gov.cn"), allowed) == {
        "Access-Control-Allow-Origin": "https://www.example.gov.cn", "Vary": "Origin"}
    for origin in ("https://evil.example", "null", "https://www.example.gov.cn.evil.example", "http://www.example.gov.cn"):
        assert "Access-Control-Allow-Origin" not in cors_headers(FakeRequest(origin), allowed)
    assert cors_headers(FakeRequest(None), allowed) == {}
    assert not any("Credentials" in h for o in allowed for h in cors_headers(FakeRequest(o), allowed))


def test_metadata_keeps_known_short_keys_only():
    assert clean_metadata({"message_id": "m-1", "client": "guide-widget", "cookie": "x"}) == {
        "message_id": "m-1", "client": "guide-widget"}
    assert clean_metadata({"unknown": 1}) is None and clean_metadata(None) is None
    with pytest.raises(BadRequest) as big:
        clean_metadata({"message_id": "m", "x": "y" * MAX_METADATA_BYTES})
    assert big.value.status == 413
    for bad in ({"message_id": 5}, {"message_id": "m" * 129}, ["message_id"]):
        with pytest.raises(BadRequest):
            clean_metadata(bad)


def test_rate_limit_is_per_key_and_recovers():
    limit = RateLimit(3, 60, max_keys=2)
    assert [limit.allow("a", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limit.retry_after("a", now=3) == 57
    assert limit.allow("b", now=3) and limit.allow("a", now=61)
    limit.allow("c", now=62)
    assert len(limit._events) <= 2  # a flood of new keys does not grow memory


def test_a_shared_rate_limit_counts_every_worker_together(tmp_path):
    from bot.channels.guard import SharedRateLimit

    path = str(tmp_path / "shared.db")
    worker_a = SharedRateLimit(path, "listen", 3, 60)
    worker_b = SharedRateLimit(path, "listen", 3, 60)
    other_route = SharedRateLimit(path, "speak", 3, 60)
    assert [w.allow("a", now=t) for w, t in ((worker_a, 0), (worker_b, 1), (worker_a, 2), (worker_b, 3))] == [
        True, True, True, False]
    assert worker_a.retry_after("a", now=3) == 57 == worker_b.retry_after("a", now=3)
    assert worker_b.allow("b", now=3) and other_route.allow("a", now=3)
    assert worker_b.allow("a", now=60.5) and worker_b.retry_after("z", now=61) == 0


def test_each_process_keeps_its_limits_unless_several_workers_serve(monkeypatch, tmp_path):
    from bot.channels.guard import SharedRateLimit, rate_limit

    monkeypatch.delenv("SANIC_WORKERS", raising=False)
    assert isinstance(rate_limit("x", 3, 60), RateLimit)
    monkeypatch.setenv("SANIC_WORKERS", "2")
    monkeypatch.setenv("RASA_LOCK_DB", str(tmp_path / "locks.db"))
    shared = rate_limit("x", 3, 60)
    assert isinstance(shared, SharedRateLimit) and shared.allow("k")
    assert (tmp_path / "locks.db").is_file()


def test_the_real_client_address_is_believed_only_from_a_local_proxy():
    from bot.channels.guard import client_key

    assert client_key(FakeRequest(ip="127.0.0.1", real_ip="198.51.100.7")) == "198.51.100.7"
    assert client_key(FakeRequest(ip="203.0.113.5", real_ip="198.51.100.7")) == "203.0.113.5"  # spoofed


def test_conversation_ids_come_from_a_keyed_hash():
    assert sender_key("configured-secret", bytes) != sender_key("another-secret", bytes)
    assert sender_key("", lambda: b"channel-key") == sender_key("", lambda: b"channel-key")
    assert sender_key("", lambda: b"channel-key") != sender_key("", lambda: b"other-key")
