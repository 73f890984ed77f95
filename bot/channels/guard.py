"""What every public channel checks before anything reaches Rasa (standard library and Sanic only).

The channels under ``/webhooks/`` are the only part of the assistant the internet may reach
(the shipped reverse proxy publishes nothing else). So each of them, whatever proxy is or is
not in front of it, enforces the same limits itself:

* **Request size.** The Rasa server reads no body larger than :data:`MAX_REQUEST_BYTES` (what
  the kiosk's ``/listen`` accepts, plus headers' worth of slack) — Sanic's default is 100 MB;
  a bigger ``Content-Length`` is refused before the body is read. JSON routes accept at most
  :data:`MAX_JSON_BYTES`.
* **Message length** (:data:`MAX_MESSAGE`) and **metadata**: only the keys a client of ours
  sends (:data:`METADATA_KEYS`), short, at most :data:`MAX_METADATA_BYTES` in all; metadata is
  stored in the tracker with every message, so nothing else gets that far.
* **Cross-origin reads**: a page from another site may read the assistant's answers only if its
  origin is listed in ``ALLOWED_ORIGINS``, and never with credentials (cookies, auth).
* **Rate limits** per client for the expensive routes (the kiosk's voice).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from sanic.request import Request

from bot.errors import BadRequest
from bot.settings import raw_setting
from bot.sqlite import SharedFile

#: Longest message a citizen may send (characters); longer ones get a clear 400.
MAX_MESSAGE = 2000
#: Largest JSON body a channel's webhook reads.
MAX_JSON_BYTES = 32 * 1024
#: Largest request the Rasa server reads at all (the kiosk's recordings are the biggest).
MAX_REQUEST_BYTES = 6 * 1024 * 1024 + 64 * 1024
#: Metadata a client may attach to a message, and the longest value of each.
METADATA_KEYS = {"message_id": 128, "client": 32, "via": 16}
MAX_METADATA_BYTES = 512


def limit_request_size(app: Any) -> None:
    """Make the server read no request larger than :data:`MAX_REQUEST_BYTES`.

    Called from a channel's ``before_server_start`` listener: Sanic reads the limit for every
    new connection, so it holds however the Rasa server was started."""
    if app.config.REQUEST_MAX_SIZE > MAX_REQUEST_BYTES:
        app.config.REQUEST_MAX_SIZE = MAX_REQUEST_BYTES


def check_json_size(body: bytes | None) -> None:
    if body is not None and len(body) > MAX_JSON_BYTES:
        raise BadRequest(f"请求太大 (the body must be at most {MAX_JSON_BYTES} bytes)", status=413)


def clean_metadata(metadata: Any) -> dict[str, str] | None:
    """The metadata worth keeping: known keys with short text values; anything else refused."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise BadRequest("metadata 必须是 JSON 对象 (metadata must be an object)")
    if len(json.dumps(metadata, ensure_ascii=False).encode("utf-8")) > MAX_METADATA_BYTES:
        raise BadRequest(f"metadata 太大 (metadata must be at most {MAX_METADATA_BYTES} bytes)", status=413)
    kept: dict[str, str] = {}
    for key, value in metadata.items():
        limit = METADATA_KEYS.get(key)
        if limit is None:
            continue  # unknown keys are dropped, not stored
        if not isinstance(value, str) or len(value) > limit:
            raise BadRequest(f"metadata.{key} 必须是不超过 {limit} 个字符的文本 "
                             f"(metadata.{key} must be text of at most {limit} characters)")
        kept[key] = value
    return kept or None


def check_message(message: Any, max_message: int = MAX_MESSAGE) -> str:
    if not isinstance(message, str):
        raise BadRequest("缺少 message，或 message 不是文本 (message must be a string)")
    if len(message) > max_message:
        raise BadRequest(f"消息太长，请控制在 {max_message} 字以内 (message longer than {max_message} characters)")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("message 含有无效字符 (message is not valid Unicode text)") from None
    return message


def parse_origins(value: str) -> frozenset[str]:
    """``ALLOWED_ORIGINS``: 'https://a.gov.cn, https://b.gov.cn' -> the origins, without a trailing '/'."""
    return frozenset(part.strip().rstrip("/").lower() for part in value.split(",") if part.strip())


def cors_headers(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The headers that let a listed origin's page read this answer; none for any other page.

    Never ``Access-Control-Allow-Credentials``: the widget sends no cookies, and a page that could
    make the browser send them could act as the citizen.
    """
    origin = (request.headers.get("origin") or "").strip().rstrip("/").lower()
    if origin and origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"} if origin else {}


def sender_key(secret: str, fallback: Callable[[], bytes]) -> bytes:
    """The key for :func:`pseudonym`: ``SENDER_ID_SECRET`` when set, else a key derived from the
    channel's own secret (``fallback``), so a conversation id is always a keyed hash."""
    if secret.strip():
        return hashlib.sha256(b"sender-id:" + secret.strip().encode("utf-8")).digest()
    return hashlib.sha256(b"sender-id:" + fallback()).digest()


#: Peers whose X-Real-IP header is believed: a reverse proxy on this machine (ops/proxy.py sets it).
TRUSTED_PROXIES = frozenset({"127.0.0.1", "::1"})


def client_key(request: Request) -> str:
    """Who is asking, for rate limits: the address a reverse proxy on this machine saw
    (``X-Real-IP``, which our proxy configuration sets and clients cannot add to), else the peer."""
    peer = str(request.ip or "")
    if peer in TRUSTED_PROXIES:
        real = (request.headers.get("x-real-ip") or "").strip()
        if real and len(real) <= 45:
            return real
    return peer or "unknown"


class RateLimit:
    """At most ``limit`` events per ``seconds`` for each key (a sliding window), in this process.

    Keys are forgotten when their window is empty; at most ``max_keys`` are tracked, the oldest
    dropped first, so a flood of new addresses cannot grow memory without bound."""

    def __init__(self, limit: int, seconds: float, *, max_keys: int = 10_000) -> None:
        self.limit, self.seconds, self.max_keys = limit, seconds, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for ``key``; False when it is over the limit (the event is not counted)."""
        now = time.monotonic() if now is None else now
        events = self._events.pop(key, None) or deque()
        while events and now - events[0] >= self.seconds:
            events.popleft()
        allowed = len(events) < self.limit
        if allowed:
            events.append(now)
        if events:
            self._events[key] = events
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        return allowed

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Whole seconds until ``key`` may try again (0 when it may now)."""
        now = time.monotonic() if now is None else now
        events = self._events.get(key)
        if not events or len(events) < self.limit:
            return 0
        return max(1, int(self.seconds - (now - events[0]) + 0.999))


class SharedRateLimit:
    """:class:`RateLimit` kept in a SQLite file, so the Rasa workers of one machine count together:
    with two workers a per-process limit would let a client through twice as often."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS rate_events (name TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL)",
              "CREATE INDEX IF NOT EXISTS rate_events_key ON rate_events (name, key, at)",
              "CREATE INDEX IF NOT EXISTS rate_events_at ON rate_events (at)")

    def __init__(self, path: str, name: str, limit: int, seconds: float) -> None:
        self.name, self.limit, self.seconds = name, limit, seconds
        self._file = SharedFile(path, self.SCHEMA)

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for ``key``; False when it is over the limit (the event is not counted)."""
        now = time.time() if now is None else now
        with self._file.transaction() as db:
            db.execute("DELETE FROM rate_events WHERE at <= ?", (now - self.seconds,))
            (count,) = db.execute("SELECT count(*) FROM rate_events WHERE name = ? AND key = ?",
                                  (self.name, key)).fetchone()
            allowed = count < self.limit
            if allowed:
                db.execute("INSERT INTO rate_events (name, key, at) VALUES (?, ?, ?)", (self.name, key, now))
        return allowed

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Whole seconds until ``key`` may try again (0 when it may now)."""
        now = time.time() if now is None else now
        rows = self._file.read("SELECT count(*), min(at) FROM rate_events WHERE name = ? AND key = ? AND at > ?",
                               (self.name, key, now - self.seconds))
        count, first = rows[0]
        if count < self.limit or first is None:
            return 0
        return max(1, int(self.seconds - (now - first) + 0.999))


def shared_file_of_workers() -> str | None:
    """The SQLite file the Rasa workers share (``RASA_LOCK_DB``) when this server runs several
    (Sanic's ``SANIC_WORKERS``, set from ``RASA_WORKERS``); None when it is the only process."""
    try:
        several = int(os.environ.get("SANIC_WORKERS") or "1") > 1
    except ValueError:
        several = False
    path = raw_setting("RASA_LOCK_DB").strip()
    return path if several and path else None


def rate_limit(name: str, limit: int, seconds: float) -> RateLimit | SharedRateLimit:
    """A limit this process keeps when it is the only Rasa worker, else one the workers share:
    the same limit for a client whichever worker answers it."""
    shared = shared_file_of_workers()
    return SharedRateLimit(shared, name, limit, seconds) if shared else RateLimit(limit, seconds)
