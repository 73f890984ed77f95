"""The assistant's own JSON channel: ``POST /webhooks/guide/webhook``.

Rasa's built-in REST channel answers a malformed request with a traceback-shaped 500 and, when
the action server is down, with an empty list — the citizen sees nothing at all. This channel
is the same request/response shape (``{"sender": ..., "message": ...}`` in, a list of messages
out) with two differences that matter to a citizen:

* bad input (not JSON, wrong types, no sender, an over-long message) gets a 400 with a clear
  Chinese and English message, never a traceback;
* if the assistant produced no answer at all (an action server that is down or failed), the
  reply says so politely and gives the hotline and the window, and the next message tries again;
* a client that retries (the widget does, when a reply is lost on a bad network) may send
  ``metadata.message_id``: the same id from the same sender is answered once, and the retry gets
  that answer again instead of the assistant handling the message twice.

Other channels (WeChat, mini-program, kiosk) build on :class:`GuideChannel`. It also serves the
website widget (``/widget.js``, ``/widget.css``) and a demo host page (``/demo``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels import answer_of
from bot.channels.assets import asset
from bot.settings import raw_setting

logger = logging.getLogger(__name__)

#: Longer messages are refused with a clear error instead of being cut silently.
MAX_MESSAGE = 2000
_SENDER = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def unavailable_message(hotline: str | None = None) -> dict[str, Any]:
    hotline = hotline or raw_setting("GUIDE_HOTLINE")
    return {"text": f"抱歉，系统暂时繁忙，没能回答您的问题。请稍后再试；也可以拨打 {hotline}，"
                    "或到政务服务大厅的“办不成事反映窗口”寻求帮助。",
            "custom": {"answer": {"kind": "unavailable"}}}


class BadRequest(ValueError):
    """The request cannot be used; the message is shown to the client."""


def parse_request(request: Request) -> tuple[str, str, dict[str, Any] | None]:
    """(sender, message, metadata) from a JSON body, or :class:`BadRequest`."""
    try:
        body = request.json
    except Exception:
        raise BadRequest("请求不是有效的 JSON (the body must be a JSON object)") from None
    if not isinstance(body, dict):
        raise BadRequest("请求必须是 JSON 对象 (the body must be a JSON object)")
    sender, message, metadata = body.get("sender"), body.get("message"), body.get("metadata")
    if not isinstance(sender, str) or not _SENDER.match(sender):
        raise BadRequest('缺少或无效的 sender (sender: 1-128 letters, digits or "_.:@-")')
    if not isinstance(message, str):
        raise BadRequest("缺少 message，或 message 不是文本 (message must be a string)")
    if len(message) > MAX_MESSAGE:
        raise BadRequest(f"消息太长，请控制在 {MAX_MESSAGE} 字以内 (message longer than {MAX_MESSAGE} characters)")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequest("metadata 必须是 JSON 对象 (metadata must be an object)")
    return sender, message, metadata


class RecentReplies:
    """Answers to the last few thousand (sender, message id) pairs, for retried requests.

    A retry that arrives while the first attempt is still being answered waits for that answer.
    The memory is per process: behind a balancer, a retry that lands on another Rasa server is
    handled again (the ticket store's own idempotency still keeps tickets single).
    """

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self._replies: OrderedDict[tuple[str, str], asyncio.Future[list[dict[str, Any]]]] = OrderedDict()

    async def once(self, key: tuple[str, str] | None,
                   answer: Callable[[], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
        if key is None:
            return await answer()
        known = self._replies.get(key)
        if known is not None:
            logger.info("repeated message %s from %s: answered again from memory", key[1], key[0])
            return await asyncio.shield(known)
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._replies[key] = future
        while len(self._replies) > self.size:
            self._replies.popitem(last=False)
        try:
            result = await answer()
        except BaseException as error:
            self._replies.pop(key, None)
            future.set_exception(error)
            future.exception()  # retrieved here, so an unwaited future does not warn
            raise
        future.set_result(result)
        if any((answer_of(message) or {}).get("kind") == "unavailable" for message in result):
            self._replies.pop(key, None)  # nothing was answered: a retry should really try again
        return result


def message_key(sender: str, metadata: dict[str, Any] | None) -> tuple[str, str] | None:
    """(sender, message id) when the client sent a usable ``metadata.message_id``."""
    message_id = (metadata or {}).get("message_id")
    if isinstance(message_id, str) and 0 < len(message_id) <= 128:
        return sender, message_id
    return None


class GuideChannel(InputChannel):
    """JSON in, a list of messages out; polite when the assistant cannot answer."""

    recent: RecentReplies | None = None

    @classmethod
    def name(cls) -> str:
        return "guide"

    def render(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Channel-specific rendering of the bot's messages (subclasses override)."""
        return messages

    async def handle(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]], sender: str, text: str,
        metadata: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Run one message through Rasa and return what the assistant said (never nothing)."""
        collector = CollectingOutputChannel()
        try:
            await on_new_message(UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata))
        except Exception:
            logger.exception("message from %s could not be handled", sender)
            return self.render([unavailable_message()])
        if not collector.messages:
            logger.warning("no answer for %s (is the action server up?)", sender)
            return self.render([unavailable_message()])
        return self.render(collector.messages)

    async def receive_json(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> HTTPResponse:
        """``POST /webhook`` of this channel and of those that share its JSON (the kiosk)."""
        try:
            sender, text, metadata = parse_request(request)
        except BadRequest as error:
            return response.json({"error": str(error)}, status=400)
        if self.recent is None:
            self.recent = RecentReplies()
        reply = await self.recent.once(message_key(sender, metadata),
                                       lambda: self.handle(on_new_message, sender, text, metadata))
        return response.json(reply)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint(f"guide_channel_{type(self).__name__}", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.receive_json(request, on_new_message)

        # The website widget (bot/static/widget/): one <script src=".../webhooks/guide/widget.js">
        # embeds it in any site; it loads its stylesheet from the same address and talks to
        # /webhook above. /demo is a sample host page with the tag and how to embed it.
        @hook.route("/widget.js", methods=["GET"])
        async def widget_script(_: Request) -> HTTPResponse:
            return asset("widget", "guide-widget.js")

        @hook.route("/widget.css", methods=["GET"])
        async def widget_style(_: Request) -> HTTPResponse:
            return asset("widget", "guide-widget.css")

        @hook.route("/demo", methods=["GET"])
        async def widget_demo(_: Request) -> HTTPResponse:
            return asset("widget", "demo.html")

        return hook
