"""Start the scaled deployment (:mod:`ops.scaled`: PostgreSQL, Redis, two action servers and two
Rasa servers behind nginx, all on loopback) once per test session, in a tmp folder.

These tests run only when asked for by path (``make test-scaled``, ``pytest tests/scaled``):
``make test``'s runs (``pytest -m e2e``, ``pytest -m "not e2e"``) leave them out, since they need
Redis and nginx (``make scaled-packages``) and start six servers on a small machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.scaled import ScaledStack, start_scaled
from ops.stack import missing_parts

HERE = Path(__file__).parent.resolve()


def _asked_for(config: pytest.Config) -> bool:
    base = config.invocation_params.dir
    for arg in config.args:
        path = (base / arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    inside = collection_path.resolve() != HERE and HERE in collection_path.resolve().parents
    if inside and collection_path.name.startswith("test_") and not _asked_for(config):
        return True
    return None


@pytest.fixture(scope="session")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledStack]:
    problems = missing_parts()
    if problems:
        pytest.fail("; ".join(problems) + " (make test-scaled does it)")
    stack = start_scaled(tmp_path_factory.mktemp("scaled"), {"WECHAT_TOKEN": "scaled-wechat-token"})
    try:
        yield stack
    finally:
        stack.stop()
