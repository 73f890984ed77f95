"""Start the whole assistant on loopback, on free ports: for end-to-end tests, benchmarks and
the load test.

The action server and the Rasa server run from their own venvs exactly as ``make run`` starts
them, each in its own process; readiness is polled (``/health``, ``/status``), never slept for.
Each process can be stopped and started again on the same port, to test failures and restarts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import ROOT

RASA_BIN = ROOT / ".venv" / "rasa" / "bin" / "rasa"
ACTION_PY = ROOT / ".venv" / "actions" / "bin" / "python"
RASA_MODEL = ROOT / "models" / "guide-assistant.tar.gz"
INDEX_MANIFEST = ROOT / "var" / "index" / "manifest.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_parts() -> list[str]:
    """What must be built first, as make targets."""
    needs = [(RASA_BIN, "make venvs"), (ACTION_PY, "make venvs"), (RASA_MODEL, "make train"),
             (INDEX_MANIFEST, "make index")]
    return [f"{path} is missing: run `{make}`" for path, make in needs if not path.exists()]


def _ok(url: str) -> bool:
    import httpx

    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _rasa_ready(url: str) -> bool:
    import httpx

    try:
        return bool(httpx.get(url, timeout=2).json().get("model_file"))
    except (httpx.HTTPError, ValueError):
        return False


@dataclass
class Process:
    """One server process that can be stopped and started again on the same port."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    ready: Callable[[], bool]
    startup_seconds: float = 300
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until ready."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {self.startup_seconds:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rss_mb(self) -> float | None:
        """Resident memory of the process (Linux), in MB."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Stack:
    """The action server and the Rasa server, started together."""

    data: Path
    env: dict[str, str]
    rasa_url: str
    action_url: str
    actions: Process
    rasa: Process
    processes: list[Process] = field(default_factory=list)

    def say(self, sender: str, text: str, timeout: float = 60) -> list[dict]:
        import httpx

        response = httpx.post(f"{self.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text},
                              timeout=timeout)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.rasa.stop()
        self.actions.stop()


def start_stack(data: Path, extra_env: dict[str, str] | None = None) -> Stack:
    """Start both servers with their state (tracker store, ticket store, logs) under ``data``."""
    problems = missing_parts()
    if problems:
        raise RuntimeError("; ".join(problems))
    data.mkdir(parents=True, exist_ok=True)
    action_port, rasa_port = free_port(), free_port()
    env = dict(os.environ, ACTION_HOST="127.0.0.1", ACTION_PORT=str(action_port),
               ACTION_ENDPOINT_URL=f"http://127.0.0.1:{action_port}/webhook",
               GUIDE_SHEET_URL=f"http://127.0.0.1:{action_port}/sheets/{{id}}",
               TICKETS_DB_URL=f"sqlite:///{data / 'tickets.db'}",
               RASA_TRACKER_DB=str(data / "tracker.db"), RASA_TELEMETRY_ENABLED="false",
               TF_CPP_MIN_LOG_LEVEL="2", SQLALCHEMY_SILENCE_UBER_WARNING="1", HF_HUB_OFFLINE="1")
    env.update(extra_env or {})
    action_url = f"http://127.0.0.1:{action_port}"
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    actions = Process("action server", [str(ACTION_PY), "-m", "bot.action_server"], env, data / "actions.log",
                      lambda: _ok(f"{action_url}/health"))
    rasa = Process(
        "Rasa server",
        [str(RASA_BIN), "run", "-i", "127.0.0.1", "-p", str(rasa_port), "--enable-api", "--cors", "*",
         "-m", str(RASA_MODEL), "--endpoints", "endpoints.yml", "--credentials", "credentials.yml"],
        env, data / "rasa.log", lambda: _rasa_ready(f"{rasa_url}/status"),
    )
    stack = Stack(data, env, rasa_url, action_url, actions, rasa, [actions, rasa])
    try:
        # Neither needs the other to start, so both load at once (Rasa's TensorFlow start-up dominates).
        actions.launch()
        rasa.launch()
        actions.wait_ready()
        rasa.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack


def texts(messages: list[dict]) -> str:
    """The text of every message the assistant sent, one per line."""
    return "\n".join(str(m.get("text", "")) for m in messages)


def new_sender(prefix: str) -> str:
    """A fresh conversation id, so tests never share a tracker."""
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:8]}"
