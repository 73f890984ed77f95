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

The protocol itself lives in :mod:`bot.wechat` (standard library only, tested on its own).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.rest import GuideChannel
from bot.wechat import TEXT_LIMIT_BYTES, ReplayGuard, WeChatError, parse_message, reply_xml, split_text, verify

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


class WeChatChannel(GuideChannel):
    """WeChat's customer-service push, answered with passive replies."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token if token is not None else os.environ.get("WECHAT_TOKEN", "")
        self.guard = ReplayGuard()
        self._pending: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls((credentials or {}).get("token"))

    def _refused(self, request: Request, what: str) -> HTTPResponse | None:
        """A 403 unless the request is signed with the token, fresh and not a replay."""
        args = request.args
        try:
            verify(self.token, args.get("timestamp"), args.get("nonce"), args.get("signature"), guard=self.guard)
        except WeChatError as error:
            logger.warning("WeChat %s refused: %s", what, error)
            return response.text("forbidden", status=403)
        return None

    def _next_part(self, user: str) -> str | None:
        with self._lock:
            parts = self._pending.get(user)
            if not parts:
                return None
            part = parts.pop(0)
            if not parts:
                del self._pending[user]
        return part + (MORE_HINT if self._pending.get(user) else "")

    def _paged(self, user: str, text: str) -> str:
        limit = TEXT_LIMIT_BYTES - len(MORE_HINT.encode("utf-8"))
        parts = split_text(text, limit)
        with self._lock:
            if len(parts) > 1:
                self._pending[user] = parts[1:]
            else:
                self._pending.pop(user, None)
        return parts[0] + (MORE_HINT if len(parts) > 1 else "")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint(f"wechat_channel_{type(self).__name__}", __name__)

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
            user = f"wx-{incoming.from_user}"[:128]
            if incoming.msg_type != "text":
                return self._xml(reply_xml(incoming, ONLY_TEXT))
            content = incoming.content.strip()
            if content in MORE_WORDS:
                part = self._next_part(user)
                if part is not None:
                    return self._xml(reply_xml(incoming, part))
            messages = await self.handle(on_new_message, user, content[:2000], {"wechat_msg_id": incoming.msg_id})
            return self._xml(reply_xml(incoming, self._paged(user, as_plain_text(messages))))

        return hook

    @staticmethod
    def _xml(body: str) -> HTTPResponse:
        return response.text(body, content_type="application/xml; charset=utf-8")
