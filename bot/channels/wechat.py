"""WeChat customer-service message push: ``/webhooks/wechat/webhook``.

* ``GET`` with ``signature, timestamp, nonce, echostr``: WeChat's URL verification; answers
  ``echostr`` when the signature is right.
* ``POST`` with the same query and WeChat's XML body: a citizen's message. It is answered
  with a passive text reply (WeChat waits 5 s; answers take well under one).

Every request must carry a valid signature for ``WECHAT_TOKEN`` (or ``token`` in
``credentials.yml``), a fresh timestamp and a nonce not seen before; anything else gets a 403
and nothing reaches Rasa. WeChat shows plain text only, so buttons become lines the citizen can
type back, and an answer longer than one WeChat message is sent in parts: the first now, the
next when the citizen replies "继续".

The nonces seen and the parts still to send live in this process when one Rasa process serves;
with several workers on one machine (``RASA_WORKERS``) in the SQLite file they share
(``RASA_LOCK_DB``); with ``WECHAT_REPLAY_REDIS`` set (the scaled deployment), in Redis, shared by
every Rasa server: a replay sent to another worker or server is refused too, and "继续" works on
any of them. The conversation id is ``wx-`` and a keyed hash of the openid (``SENDER_ID_SECRET``),
never the openid itself.

The protocol itself lives in :mod:`bot.channels.wechat_core` (standard library only, tested on its own).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.guard import MAX_MESSAGE, sender_key, shared_file_of_workers
from bot.channels.miniprogram_core import sender_id
from bot.channels.rest import GuideChannel, add_common_routes
from bot.channels.wechat_core import (
    MAX_AGE,
    PARTS_SECONDS,
    TEXT_LIMIT_BYTES,
    ReplayGuard,
    SQLiteMemory,
    WeChatError,
    parse_message,
    reply_xml,
    split_text,
    verify,
)
from bot.settings import raw_setting

logger = logging.getLogger(__name__)

MORE_WORDS = ("继续", "下一段", "更多")
MORE_HINT = "\n（内容较长，回复“继续”查看下一段）"
ONLY_TEXT = "目前只能处理文字消息，请用文字描述您要办理的事项，例如“身份证过期了怎么办”。"


def as_plain_text(messages: list[dict[str, Any]]) -> str:
    """The assistant's messages as one plain text: texts, then buttons as lines to type back."""
    parts: list[str] = []
    for message in messages:
        if message.get("text"):
            parts.append(str(message["text"]))
        titles = [str(b.get("title")) for b in message.get("buttons") or [] if b.get("title")]
        if titles:
            parts.append("您可以回复：\n" + "\n".join(f"· {t}" for t in titles))
    return "\n".join(parts)


class Memory(Protocol):
    """What the channel remembers between requests: nonces seen, and answer parts still to send."""

    def first_time(self, timestamp: str, nonce: str, now: float) -> bool: ...

    def keep_parts(self, user: str, parts: list[str]) -> None: ...

    def next_part(self, user: str) -> tuple[str | None, bool]:
        """(the next part or None, whether more parts follow it)."""
        ...


class LocalMemory:
    """This process's memory (one Rasa server)."""

    def __init__(self, max_age: int = MAX_AGE) -> None:
        self._seen = ReplayGuard(max_age)
        self._parts: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def first_time(self, timestamp: str, nonce: str, now: float) -> bool:
        return self._seen.first_time(timestamp, nonce, now)

    def keep_parts(self, user: str, parts: list[str]) -> None:
        with self._lock:
            now = time.monotonic()
            for key, (at, _) in list(self._parts.items()):
                if now - at > PARTS_SECONDS:
                    del self._parts[key]
            if parts:
                self._parts[user] = (now, list(parts))
            else:
                self._parts.pop(user, None)

    def next_part(self, user: str) -> tuple[str | None, bool]:
        with self._lock:
            _, parts = self._parts.get(user, (0.0, []))
            if not parts:
                return None, False
            part = parts.pop(0)
            if not parts:
                del self._parts[user]
            return part, bool(parts)


class RedisMemory:
    """The same memory in Redis, shared by every Rasa server of a scaled deployment."""

    def __init__(self, url: str, max_age: int = MAX_AGE) -> None:
        import redis  # Rasa's own dependency (its Redis lock store)

        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.max_age = max_age

    def first_time(self, timestamp: str, nonce: str, now: float) -> bool:
        key = f"guide:wechat:seen:{timestamp}:{nonce}"
        return bool(self.redis.set(key, "1", nx=True, ex=2 * self.max_age))

    def keep_parts(self, user: str, parts: list[str]) -> None:
        key = f"guide:wechat:parts:{user}"
        if parts:
            self.redis.set(key, json.dumps(parts, ensure_ascii=False), ex=PARTS_SECONDS)
        else:
            self.redis.delete(key)

    def next_part(self, user: str) -> tuple[str | None, bool]:
        key = f"guide:wechat:parts:{user}"
        raw = self.redis.getdel(key)
        parts = json.loads(raw) if raw else []
        if not parts:
            return None, False
        rest = parts[1:]
        if rest:
            self.redis.set(key, json.dumps(rest, ensure_ascii=False), ex=PARTS_SECONDS)
        return str(parts[0]), bool(rest)


def memory_from_settings(url: str, shared_file: str | None = None) -> Memory:
    """Redis when configured; else the workers' shared SQLite file when several workers serve;
    else this process's memory."""
    if url.strip():
        return RedisMemory(url)
    return SQLiteMemory(shared_file) if shared_file else LocalMemory()


class WeChatChannel(GuideChannel):
    """WeChat's customer-service push, answered with passive replies."""

    def __init__(self, token: str | None = None, memory: Memory | None = None) -> None:
        self.token = token if token is not None else raw_setting("WECHAT_TOKEN")
        self.memory = memory if memory is not None else memory_from_settings(
            raw_setting("WECHAT_REPLAY_REDIS"), shared_file_of_workers())

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls((credentials or {}).get("token"))

    def sender(self, openid: str) -> str:
        """The conversation id of a WeChat user: a keyed hash of the openid, never the openid."""
        key = sender_key(raw_setting("SENDER_ID_SECRET"), lambda: self.token.encode("utf-8"))
        return "wx-" + sender_id(openid, key).removeprefix("mp-")

    def _refused(self, request: Request, what: str) -> HTTPResponse | None:
        """A 403 unless the request is signed with the token, fresh and not a replay."""
        args = request.args
        try:
            verify(self.token, args.get("timestamp"), args.get("nonce"), args.get("signature"), guard=self.memory)
        except WeChatError as error:
            logger.warning("WeChat %s refused: %s", what, error)
            return response.text("forbidden", status=403)
        return None

    def _next_part(self, user: str) -> str | None:
        part, more = self.memory.next_part(user)
        return None if part is None else part + (MORE_HINT if more else "")

    def _paged(self, user: str, text: str) -> str:
        limit = TEXT_LIMIT_BYTES - len(MORE_HINT.encode("utf-8"))
        parts = split_text(text, limit)
        self.memory.keep_parts(user, parts[1:])
        return parts[0] + (MORE_HINT if len(parts) > 1 else "")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint(f"wechat_channel_{type(self).__name__}", __name__)
        add_common_routes(hook, self)

        @hook.route("/webhook", methods=["GET"])
        async def verify_url(request: Request) -> HTTPResponse:
            refused = self._refused(request, "URL verification")
            return refused or response.text(request.args.get("echostr", ""))

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            refused = self._refused(request, "message")
            if refused:
                return refused
            try:
                incoming = parse_message(request.body or b"")
            except WeChatError as error:
                logger.warning("WeChat message not understood: %s", error)
                return response.text("bad request", status=400)
            user = self.sender(incoming.from_user)
            if incoming.msg_type != "text":
                return self._xml(reply_xml(incoming, ONLY_TEXT))
            content = incoming.content.strip()
            if content in MORE_WORDS:
                part = self._next_part(user)
                if part is not None:
                    return self._xml(reply_xml(incoming, part))
            messages = await self.handle(on_new_message, user, content[:MAX_MESSAGE], None)
            return self._xml(reply_xml(incoming, self._paged(user, as_plain_text(messages))))

        return hook

    @staticmethod
    def _xml(body: str) -> HTTPResponse:
        return response.text(body, content_type="application/xml; charset=utf-8")
