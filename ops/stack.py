"""Start the whole assistant on loopback, on free ports: for end-to-end tests, benchmarks and
the load test.

The action server and the Rasa server run from their own venvs exactly as ``make run`` starts
them, each in its own process with only its own secrets (:func:`bot.settings.env_for`), Rasa's
HTTP API off; readiness is polled (the action server's ``/health``, the guide channel's health
``/webhooks/guide/``), never slept for. Each process can be stopped and started again on the
same port, to test failures and restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import ROOT, env_for, threads_for

RASA_BIN = ROOT / ".venv" / "rasa" / "bin" / "rasa"
ACTION_PY = ROOT / ".venv" / "actions" / "bin" / "python"
RASA_MODEL = ROOT / "models" / "guide-assistant.tar.gz"
INDEX_MANIFEST = ROOT / "var" / "index" / "manifest.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc): the Rasa server's Sanic workers are its children."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        todo.extend(parents.get(one, []))
    return found


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
    """The Rasa server at ``url`` has loaded its model (its guide channel's health says so)."""
    import httpx

    try:
        return bool(httpx.get(f"{url}/webhooks/guide/", timeout=2).json().get("model_ready"))
    except (httpx.HTTPError, ValueError):
        return False


def rasa_command(port: int, endpoints: Path, api_token: str = "") -> list[str]:
    """``rasa run`` as ``make run`` starts it: loopback, no HTTP API unless given a token, no CORS
    (the guide channel answers the sites in ``ALLOWED_ORIGINS`` itself)."""
    api = ["--enable-api", "--auth-token", api_token] if api_token else []
    return [str(RASA_BIN), "run", "-i", "127.0.0.1", "-p", str(port), *api, "-m", str(RASA_MODEL),
            "--endpoints", str(endpoints), "--credentials", str(ROOT / "credentials.yml")]


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
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         umask=0o077)

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
        """Resident memory of the process and its children (the Rasa server's workers), in MB (Linux)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        total = 0
        for pid in process_tree(self.proc.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024 if total else None

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
        """One message through the guide channel (``/webhooks/guide/webhook``); the assistant's messages."""
        import httpx

        response = httpx.post(f"{self.rasa_url}/webhooks/guide/webhook", json={"sender": sender, "message": text},
                              timeout=timeout)
        response.raise_for_status()
        return response.json()

    def tracker_events(self, sender: str) -> list[dict]:
        """A conversation's events as the tracker store holds them (Rasa's HTTP API is off)."""
        with sqlite3.connect(self.data / "tracker.db") as db:
            rows = db.execute("select data from events where sender_id = ? order by id", (sender,)).fetchall()
        return [json.loads(row[0]) for row in rows]

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
               RASA_TRACKER_DB=str(data / "tracker.db"), RASA_LOCK_DB=str(data / "locks.db"),
               RASA_TELEMETRY_ENABLED="false",
               TF_CPP_MIN_LOG_LEVEL="2", SQLALCHEMY_SILENCE_UBER_WARNING="1", HF_HUB_OFFLINE="1",
               SANIC_FALLBACK_ERROR_FORMAT="json",
               ACTION_SECRET=secrets.token_urlsafe(32), SENDER_ID_SECRET=secrets.token_urlsafe(32))
    env.update(extra_env or {})
    action_url = f"http://127.0.0.1:{action_port}"
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    actions = Process("action server", [str(ACTION_PY), "-m", "bot.servers.action_server"],
                      {**env_for("actions", env), **threads_for("actions", env)},
                      data / "actions.log", lambda: _ok(f"{action_url}/health"))
    rasa = Process("Rasa server", rasa_command(rasa_port, ROOT / "endpoints.yml", env.get("RASA_API_TOKEN", "")),
                   {**env_for("rasa", env), **threads_for("rasa", env)}, data / "rasa.log",
                   lambda: _rasa_ready(rasa_url))
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
