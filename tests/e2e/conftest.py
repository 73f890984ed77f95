"""Start the real action server and the real Rasa server on loopback, on free ports.

Both run from their own venvs exactly as ``make run`` starts them; the tests talk to the
REST channel over HTTP. Readiness is polled (``/health``, ``/status``), never slept for.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.settings import ROOT

RASA_BIN = ROOT / ".venv" / "rasa" / "bin" / "rasa"
ACTION_PY = ROOT / ".venv" / "actions" / "bin" / "python"
RASA_MODEL = ROOT / "models" / "guide-assistant.tar.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check, proc: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {seconds:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Servers:
    def __init__(self, rasa_url: str, action_url: str, data: Path | None = None) -> None:
        self.rasa_url = rasa_url
        self.action_url = action_url
        #: the folder holding the tracker store (tracker.db) and ticket store (tickets.db)
        self.data = data

    def say(self, sender: str, text: str) -> list[dict]:
        response = httpx.post(f"{self.rasa_url}/webhooks/rest/webhook",
                              json={"sender": sender, "message": text}, timeout=60)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    for path, make in ((RASA_BIN, "make venvs"), (ACTION_PY, "make venvs"), (RASA_MODEL, "make train"),
                       (ROOT / "var" / "index" / "manifest.json", "make index")):
        if not path.exists():
            pytest.fail(f"{path} is missing: run `{make}` (make test does it)")
    logs = tmp_path_factory.mktemp("logs")
    action_port, rasa_port = free_port(), free_port()
    env = dict(os.environ, ACTION_HOST="127.0.0.1", ACTION_PORT=str(action_port),
               ACTION_ENDPOINT_URL=f"http://127.0.0.1:{action_port}/webhook",
               GUIDE_SHEET_URL=f"http://127.0.0.1:{action_port}/sheets/{{id}}",
               TICKETS_DB_URL=f"sqlite:///{logs / 'tickets.db'}",
               RASA_TRACKER_DB=str(logs / "tracker.db"), RASA_TELEMETRY_ENABLED="false",
               TF_CPP_MIN_LOG_LEVEL="2", SQLALCHEMY_SILENCE_UBER_WARNING="1", HF_HUB_OFFLINE="1")
    action_log, rasa_log = logs / "actions.log", logs / "rasa.log"
    actions = subprocess.Popen([str(ACTION_PY), "-m", "bot.action_server"], cwd=ROOT, env=env,
                               stdout=action_log.open("w"), stderr=subprocess.STDOUT)
    rasa = subprocess.Popen(
        [str(RASA_BIN), "run", "-i", "127.0.0.1", "-p", str(rasa_port), "--enable-api", "-m", str(RASA_MODEL),
         "--endpoints", "endpoints.yml", "--credentials", "credentials.yml"],
        cwd=ROOT, env=env, stdout=rasa_log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        action_url = f"http://127.0.0.1:{action_port}"
        rasa_url = f"http://127.0.0.1:{rasa_port}"
        wait_until(lambda: httpx.get(f"{action_url}/health", timeout=2).status_code == 200, actions, action_log, 300)
        wait_until(lambda: bool(httpx.get(f"{rasa_url}/status", timeout=2).json().get("model_file")),
                   rasa, rasa_log, 300)
        yield Servers(rasa_url, action_url, logs)
    finally:
        stop(rasa)
        stop(actions)
