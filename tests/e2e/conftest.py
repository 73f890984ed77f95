"""Start the real action server and the real Rasa server on loopback, on free ports
(:mod:`bot.stack`), once per test session; the tests talk to the REST channel over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.stack import Stack, missing_parts, start_stack

#: The token the WeChat channel is started with in these tests.
WECHAT_TOKEN = "e2e-wechat-token"


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    problems = missing_parts()
    if problems:
        pytest.fail("; ".join(problems) + " (make test does it)")
    stack = start_stack(tmp_path_factory.mktemp("stack"), {"WECHAT_TOKEN": WECHAT_TOKEN})
    try:
        yield stack
    finally:
        stack.stop()
