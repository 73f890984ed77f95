"""Start the real action server and the real Rasa server on loopback, on free ports
(:mod:`ops.stack`), once per test session; the tests talk to the REST channel over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.stack import Stack, free_port, missing_parts, start_stack
from tests.test_miniprogram import FakeWeChat

#: The token the WeChat channel is started with in these tests.
WECHAT_TOKEN = "e2e-wechat-token"


@pytest.fixture(scope="session")
def fake_wechat() -> Iterator[FakeWeChat]:
    """api.weixin.qq.com's code2session on loopback; the mini-program channel logs in against it."""
    fake = FakeWeChat(appid="wx-e2e-appid", secret="e2e-app-secret").start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def widget_host_port() -> int:
    """The port of the page that embeds the widget from another origin (test_widget.py); its
    origin is the one site the assistant lets read its answers (ALLOWED_ORIGINS)."""
    return free_port()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory, fake_wechat: FakeWeChat, widget_host_port: int
            ) -> Iterator[Stack]:
    problems = missing_parts()
    if problems:
        pytest.fail("; ".join(problems) + " (make test does it)")
    stack = start_stack(tmp_path_factory.mktemp("stack"), {
        "WECHAT_TOKEN": WECHAT_TOKEN, **fake_wechat.env(),
        "ALLOWED_ORIGINS": f"http://127.0.0.1:{widget_host_port}, https://www.example.gov.cn"})
    try:
        yield stack
    finally:
        stack.stop()
