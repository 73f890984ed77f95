"""The scaled deployment Rasa supports, started on loopback by one command (``make scaled``).

::

    citizens' channels ─► nginx ─► Rasa server A ─┐             ┌─► action server 1
                         (one        Rasa server B ─┴─► nginx ───┴─► action server 2
                          address)      │    │                             │
                   PostgreSQL "tracker" ┘    └ Redis (lock store)          └ PostgreSQL "tickets"

* **PostgreSQL** (Debian's package): database ``tracker`` holds every conversation, shared by
  both Rasa servers (``endpoints-scaled.yml``: our masking SQL tracker store); database
  ``tickets`` is the action servers' ticket store (``TICKETS_DB_URL``), shared by both.
* **Redis**: Rasa's lock store, so two Rasa servers never process one conversation at once.
* **nginx**: one balancer in front of the two Rasa servers (the one address) and one in front
  of the two action servers (the Rasa servers' ``ACTION_ENDPOINT_URL``). A server that is down
  is skipped: the request goes to the other one.

Every server binds 127.0.0.1 on a free port; state and logs live under one data folder
(``var/scaled`` for ``python -m ops.scaled``; the PostgreSQL cluster there is kept between
runs, Redis keeps nothing since locks only matter while a message is processed). Readiness is
polled, never slept for. The servers run exactly as :mod:`ops.stack` starts them for the
end-to-end tests, with the :class:`~ops.stack.Process` objects that can stop and start each.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.settings import env_for, threads_for
from ops.postgres import Postgres
from ops.proxy import COMMON, locations
from ops.stack import ACTION_PY, ROOT, Process, _ok, _rasa_ready, free_port, missing_parts, rasa_command

ENDPOINTS = ROOT / "endpoints-scaled.yml"
DEFAULT_DATA = ROOT / "var" / "scaled"
DATABASES = ("tracker", "tickets")
STARTUP_SECONDS = 300.0


def _binary(name: str, *fallbacks: str) -> str:
    """The path of a server binary (``/usr/sbin`` is not on every user's PATH)."""
    found = shutil.which(name) or next((path for path in fallbacks if os.access(path, os.X_OK)), None)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make scaled-packages` (Debian's redis-server and nginx-light)")
    return found


def redis_command(port: int, *args: str, timeout: float = 5) -> str:
    """Send one command to Redis on loopback and return its reply as text (RESP, minimal)."""
    request = f"*{len(args)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(arg.encode()), arg.encode()) for arg in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        reply = b""
        while b"\r\n" not in reply:
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
        head, _, rest = reply.partition(b"\r\n")
        if head.startswith(b"$") and int(head[1:]) >= 0:  # bulk string: read all of it
            size = int(head[1:])
            while len(rest) < size + 2:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                rest += chunk
            return rest[:size].decode(errors="replace")
        return head.decode(errors="replace")


def _redis_ready(port: int) -> bool:
    try:
        return redis_command(port, "PING", timeout=2) == "+PONG"
    except OSError:
        return False


def nginx_config(data: Path, *, rasa_port: int, hall_port: int, rasa_upstreams: list[int], action_port: int,
                 action_upstreams: list[int]) -> str:
    """The balancers: everything under ``data``, nothing in /var, only loopback.

    ``rasa_port`` is the public address and ``hall_port`` the service hall's, each forwarding only
    the routes of :mod:`ops.proxy` (the same table as the single-machine example); ``action_port``
    is the action servers' balancer, which only the Rasa servers call."""
    nginx_dir, logs = data / "nginx", data / "logs"
    user = ""
    if os.geteuid() == 0:  # workers drop root; they never write to disk (no temp files below)
        import grp

        group = "nogroup" if any(g.gr_name == "nogroup" for g in grp.getgrall()) else "nobody"
        user = f"user nobody {group};\n"

    def upstream(name: str, ports: list[int]) -> str:
        servers = "".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;\n" for port in ports)
        return f"    upstream {name} {{\n{servers}    }}\n"

    def server(port: int, body: str) -> str:
        return (f"    server {{\n"
                f"        listen 127.0.0.1:{port};\n"
                f"        location = /lb-health {{ access_log off; return 200 \"ok\\n\"; }}\n"
                f"{COMMON}{body}"
                f"    }}\n")

    internal = "        client_max_body_size 4m;\n        location / { proxy_pass http://actions; }\n"
    temp = "".join(f'    {kind}_temp_path "{nginx_dir / kind}";\n'
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        "# Generated by ops/scaled.py: the balancers of the scaled deployment (loopback only).\n"
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        f'pid "{nginx_dir / "nginx.pid"}";\n'
        f'error_log "{logs / "nginx-error.log"}" warn;\n'
        f"{user}"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    server_tokens off;\n"
        "    # The servers tried for each request come last (\"a:1, b:2\" when the first was down).\n"
        "    log_format upstreams '$time_iso8601 $server_port $request_method $uri $status $request_time '\n"
        "                         '$upstream_addr';\n"
        f'    access_log "{logs / "nginx-access.log"}" upstreams;\n'
        f"{temp}"
        "    # Bodies and answers stay in memory: nothing is written to the temp folders.\n"
        "    client_body_buffer_size 1m;\n"
        "    proxy_max_temp_file_size 0;\n"
        "    # A server that refuses the connection is skipped; a slow answer is waited for.\n"
        "    proxy_next_upstream error timeout http_502 http_503;\n"
        "    proxy_next_upstream_tries 2;\n"
        f"{upstream('rasa', rasa_upstreams)}"
        f"{upstream('actions', action_upstreams)}"
        f"{server(rasa_port, locations('public', rasa='rasa', actions='actions'))}"
        f"{server(hall_port, locations('hall', rasa='rasa', actions='actions'))}"
        "    # The action servers' balancer: called by the Rasa servers only (each call carries ACTION_SECRET).\n"
        f"{server(action_port, internal)}"
        "}\n"
    )


@dataclass
class ScaledStack:
    """Two Rasa servers and two action servers behind one address each, with their stores."""

    data: Path
    env: dict[str, str]
    rasa_url: str  # the one public address (the proxy: citizens' channels and sheets only)
    hall_url: str  # the service hall's address (the public routes plus the kiosk)
    action_url: str  # the action balancer (called by the Rasa servers only)
    rasa_urls: list[str]  # each Rasa server's own address
    action_urls: list[str]  # each action server's own address
    tickets_db_url: str
    tracker_db_url: str
    postgres: Postgres
    redis_port: int
    redis: Process
    balancer: Process
    rasa: list[Process]
    actions: list[Process]
    access_log: Path
    startup_seconds: float = 0.0
    stopped: bool = field(default=False, repr=False)

    @property
    def processes(self) -> list[Process]:
        return [*self.rasa, self.balancer, *self.actions, self.redis]

    def say(self, sender: str, text: str, timeout: float = 120, url: str | None = None) -> list[dict]:
        """Send a message to the guide channel, through the one address unless ``url`` names another."""
        import httpx

        response = httpx.post(f"{url or self.rasa_url}/webhooks/guide/webhook",
                              json={"sender": sender, "message": text}, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def redis_command(self, *args: str) -> str:
        """One command to the lock store's Redis (e.g. ``INFO commandstats``)."""
        return redis_command(self.redis_port, *args)

    def stop(self) -> None:
        """Stop everything (the Rasa servers first, so no message is cut off by a dead store)."""
        if self.stopped:
            return
        self.stopped = True
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.stop()
        self.postgres.remove()


def start_scaled(data: Path, extra_env: dict[str, str] | None = None, *, port: int | None = None,
                 startup_seconds: float = STARTUP_SECONDS) -> ScaledStack:
    """Start the whole scaled deployment with its state and logs under ``data``; ``port`` is the
    one address's port (a free one by default)."""
    problems = missing_parts()
    if problems:
        raise RuntimeError("; ".join(problems))
    redis_bin = _binary("redis-server", "/usr/bin/redis-server")
    nginx_bin = _binary("nginx", "/usr/sbin/nginx")
    started = time.monotonic()
    data = data.resolve()
    logs = data / "logs"
    for folder in (logs, data / "nginx", data / "redis"):
        folder.mkdir(parents=True, exist_ok=True)

    postgres = Postgres(data / "postgres")
    postgres.start(startup_seconds)
    try:
        postgres.create_databases(*DATABASES)
    except BaseException:
        postgres.remove()
        raise

    rasa_lb, hall_lb, action_lb, redis_port = port or free_port(), free_port(), free_port(), free_port()
    rasa_ports, action_ports = [free_port(), free_port()], [free_port(), free_port()]
    rasa_url, action_url = f"http://127.0.0.1:{rasa_lb}", f"http://127.0.0.1:{action_lb}"
    tickets_db_url = postgres.database_url("tickets")
    env = dict(
        os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="2", SQLALCHEMY_SILENCE_UBER_WARNING="1",
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
        SANIC_FALLBACK_ERROR_FORMAT="json",
        # the action servers
        ACTION_HOST="127.0.0.1", TICKETS_DB_URL=tickets_db_url, GUIDE_SHEET_URL=f"{action_url}/sheets/{{id}}",
        # the Rasa servers (endpoints-scaled.yml)
        ACTION_ENDPOINT_URL=f"{action_url}/webhook",
        TRACKER_DB_HOST="127.0.0.1", TRACKER_DB_PORT=str(postgres.port), TRACKER_DB_NAME="tracker",
        TRACKER_DB_USER="postgres", TRACKER_DB_PASSWORD="",  # trust on loopback; must be set all the same
        REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_port),
        # WeChat's replay and paging memory, shared by both Rasa servers (another Redis database)
        WECHAT_REPLAY_REDIS=f"redis://127.0.0.1:{redis_port}/1",
        ACTION_SECRET=secrets.token_urlsafe(32), SENDER_ID_SECRET=secrets.token_urlsafe(32),
    )
    env.update(extra_env or {})

    config = data / "nginx" / "nginx.conf"
    config.write_text(nginx_config(data, rasa_port=rasa_lb, hall_port=hall_lb, rasa_upstreams=rasa_ports,
                                   action_port=action_lb, action_upstreams=action_ports), encoding="utf-8")
    balancer = Process(
        "nginx balancers", [nginx_bin, "-p", str(data / "nginx"), "-e", str(logs / "nginx-error.log"),
                            "-c", str(config)],
        env, logs / "nginx.log", lambda: _ok(f"{rasa_url}/lb-health") and _ok(f"{action_url}/lb-health"),
        startup_seconds)
    redis = Process(
        "Redis", [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--daemonize", "no", "--dir", str(data / "redis")],
        env, logs / "redis.log", lambda: _redis_ready(redis_port), startup_seconds)
    actions = [
        Process(f"action server {n}", [str(ACTION_PY), "-m", "bot.servers.action_server"],
                {**env_for("actions", dict(env, ACTION_PORT=str(p))), **threads_for("actions", env)},
                logs / f"actions-{n}.log", functools.partial(_ok, f"http://127.0.0.1:{p}/health"), startup_seconds)
        for n, p in enumerate(action_ports, 1)
    ]
    rasa = [
        Process(f"Rasa server {n}", rasa_command(p, ENDPOINTS),
                {**env_for("rasa", env), **threads_for("rasa", {"RASA_WORKERS": "1", **env})},
                logs / f"rasa-{n}.log",
                functools.partial(_rasa_ready, f"http://127.0.0.1:{p}"), startup_seconds)
        for n, p in enumerate(rasa_ports, 1)
    ]
    stack = ScaledStack(
        data=data, env=env, rasa_url=rasa_url, hall_url=f"http://127.0.0.1:{hall_lb}", action_url=action_url,
        rasa_urls=[f"http://127.0.0.1:{p}" for p in rasa_ports],
        action_urls=[f"http://127.0.0.1:{p}" for p in action_ports],
        tickets_db_url=tickets_db_url, tracker_db_url=postgres.database_url("tracker"), postgres=postgres,
        redis_port=redis_port, redis=redis, balancer=balancer, rasa=rasa, actions=actions,
        access_log=logs / "nginx-access.log",
    )
    try:
        # Nothing waits for anything else to load: the Rasa servers' TensorFlow start-up dominates.
        for process in (redis, balancer, *actions, *rasa):
            process.launch()
        for process in (redis, balancer, *actions, *rasa):
            process.wait_ready()
        if not _rasa_ready(rasa_url):
            raise RuntimeError(f"the Rasa balancer at {rasa_url} does not answer:\n"
                               f"{(logs / 'nginx-error.log').read_text(errors='replace')[-3000:]}")
    except BaseException:
        stack.stop()
        raise
    stack.startup_seconds = time.monotonic() - started
    return stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.scaled", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"state and logs (default: {DEFAULT_DATA.relative_to(ROOT)})")
    parser.add_argument("--port", type=int, default=0, help="port of the one address (default: a free one)")
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    logs = args.data.resolve() / "logs"
    print(f"starting PostgreSQL, Redis, two action servers, two Rasa servers and nginx (logs: {logs}) ...",
          flush=True)
    try:
        stack = start_scaled(args.data, port=args.port or None)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        print(f"the scaled deployment did not start: {error}", file=sys.stderr)
        return 1
    print(f"""The scaled deployment is ready ({stack.startup_seconds:.0f} s). The one address:
  {stack.rasa_url}
Try:
  curl -s {stack.rasa_url}/webhooks/guide/webhook -d '{{"sender": "me", "message": "我身份证过期了怎么办"}}'
Rasa servers:   {", ".join(stack.rasa_urls)} (lock store: Redis on 127.0.0.1:{stack.redis_port})
Action servers: {", ".join(stack.action_urls)} behind {stack.action_url}
PostgreSQL:     {stack.tracker_db_url} (conversations), {stack.tickets_db_url} (tickets)
Ctrl-C stops everything.""", flush=True)
    reported: set[str] = set()
    try:
        while True:
            for process in stack.processes:
                if process.name not in reported and process.proc is not None and process.proc.poll() is not None:
                    reported.add(process.name)
                    print(f"{process.name} stopped (exit {process.proc.returncode}); see {process.log}",
                          file=sys.stderr, flush=True)
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping ...", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
