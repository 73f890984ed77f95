"""The assistant's own JSON channel: ``POST /webhooks/guide/webhook``.

Rasa's built-in REST channel (not enabled) answers a malformed request with a traceback-shaped
500, has no limit on a message's length or its metadata, and, when the action server is down,
answers with an empty list — the citizen sees nothing at all. This channel is the same
request/response shape (``{"sender": ..., "message": ...}`` in, a list of messages out) with the
differences that matter to a citizen and to the office:

* bad input (not JSON, wrong types, no sender, an over-long message, too much metadata) gets a
  400 or 413 with a clear Chinese and English message, never a traceback
  (:mod:`bot.channels.guard` holds the limits every channel shares);
* only the sites in ``ALLOWED_ORIGINS`` may read an answer from a browser, never with credentials;
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
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels import answer_of
from bot.channels.assets import asset
from bot.channels.buttons import MAX_CHARS as MAX_BUTTON_CHARS
from bot.channels.buttons import buttons_of, match_button, past_the_buttons
from bot.channels.guard import (
    BadRequest,
    check_json_size,
    check_message,
    clean_metadata,
    cors_headers,
    limit_request_size,
    parse_origins,
    shared_file_of_workers,
)
from bot.settings import raw_setting

logger = logging.getLogger(__name__)
#: How long the workers' shared retry memory keeps an answer (a client retries within seconds).
REPLY_SECONDS = 600

_SENDER = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def unavailable_message(hotline: str | None = None) -> dict[str, Any]:
    hotline = hotline or raw_setting("GUIDE_HOTLINE")
    return {"text": f"抱歉，系统暂时繁忙，没能回答您的问题。请稍后再试；也可以拨打 {hotline}，"
                    "或到政务服务大厅的“办不成事反映窗口”寻求帮助。",
            "custom": {"answer": {"kind": "unavailable"}}}


def parse_request(request: Request) -> tuple[str, str, dict[str, Any] | None]:
    """(sender, message, metadata) from a JSON body, or :class:`BadRequest`.

    The body may be sent as ``application/json`` or as ``text/plain`` (what the widget sends from
    another site: a "simple" request, so the browser needs no preflight)."""
    check_json_size(request.body)
    try:
        body = json.loads(request.body or b"")
    except (ValueError, RecursionError):
        raise BadRequest("请求不是有效的 JSON (the body must be a JSON object)") from None
    if not isinstance(body, dict):
        raise BadRequest("请求必须是 JSON 对象 (the body must be a JSON object)")
    sender = body.get("sender")
    if not isinstance(sender, str) or not _SENDER.match(sender):
        raise BadRequest('缺少或无效的 sender (sender: 1-128 letters, digits or "_.:@-")')
    return sender, check_message(body.get("message")), clean_metadata(body.get("metadata"))


def unanswered(messages: list[dict[str, Any]]) -> bool:
    """Did the assistant produce no answer (the polite "unavailable" reply)? Then a retry must really
    try again, so neither retry memory keeps it."""
    return any(getattr(answer_of(message), "kind", None) == "unavailable" for message in messages)


class RecentReplies:
    """Answers to the last few thousand (sender, message id) pairs, for retried requests.

    A retry that arrives while the first attempt is still being answered waits for that answer.
    The memory is per process (:class:`SharedRecentReplies` when one server runs several workers):
    behind a balancer, a retry that lands on another Rasa server is handled again (the ticket
    store's own idempotency still keeps tickets single).
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
        if unanswered(result):
            self._replies.pop(key, None)  # nothing was answered: a retry should really try again
        return result


class SharedRecentReplies:
    """:class:`RecentReplies` for several Rasa workers on one machine, in their shared SQLite file
    (``RASA_LOCK_DB``): a retry answered by the other worker gets the same answer, not a second run.

    The first attempt claims the (sender, message id) row; a retry that finds the row without a
    reply yet waits (polling) for the first attempt's answer, up to ``wait`` seconds. Replies are
    kept :data:`REPLY_SECONDS` (a retry comes within seconds); a first attempt that failed or found
    the assistant unavailable leaves no row, so a retry really tries again."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS rest_replies (key TEXT PRIMARY KEY, at REAL NOT NULL, reply TEXT)",)
    POLL_SECONDS = 0.05

    def __init__(self, path: str, wait: float = 120.0) -> None:
        from bot.sqlite import SharedFile

        self.wait = wait
        self._file = SharedFile(path, self.SCHEMA)

    async def once(self, key: tuple[str, str] | None,
                   answer: Callable[[], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
        if key is None:
            return await answer()
        name = json.dumps(key, ensure_ascii=False)
        started = time.time()
        with self._file.transaction() as db:
            db.execute("DELETE FROM rest_replies WHERE at < ?", (started - REPLY_SECONDS,))
            claimed = db.execute("INSERT OR IGNORE INTO rest_replies (key, at, reply) VALUES (?, ?, NULL)",
                                 (name, started)).rowcount == 1
        while not claimed:
            rows = self._file.read("SELECT reply FROM rest_replies WHERE key = ?", (name,))
            if rows and rows[0][0] is not None:
                logger.info("repeated message %s from %s: answered again from memory", key[1], key[0])
                return list(json.loads(rows[0][0]))
            if not rows or time.time() - started > self.wait:
                return await answer()  # the first attempt failed (or never finished): this one answers
            await asyncio.sleep(self.POLL_SECONDS)
        try:
            result = await answer()
        except BaseException:
            with self._file.transaction() as db:
                db.execute("DELETE FROM rest_replies WHERE key = ?", (name,))
            raise
        with self._file.transaction() as db:
            if unanswered(result):
                db.execute("DELETE FROM rest_replies WHERE key = ?", (name,))
            else:
                db.execute("UPDATE rest_replies SET reply = ? WHERE key = ?",
                           (json.dumps(result, ensure_ascii=False), name))
        return result


def recent_replies() -> RecentReplies | SharedRecentReplies:
    """The retry memory: this process's when it is the only Rasa worker, else the workers' shared one."""
    shared = shared_file_of_workers()
    return SharedRecentReplies(shared) if shared else RecentReplies()


def message_key(sender: str, metadata: dict[str, Any] | None) -> tuple[str, str] | None:
    """(sender, message id) when the client sent a usable ``metadata.message_id``."""
    message_id = (metadata or {}).get("message_id")
    if isinstance(message_id, str) and 0 < len(message_id) <= 128:
        return sender, message_id
    return None


def model_ready(request: Request) -> bool:
    """Has the Rasa server loaded its model (so a message now gets a real answer)?"""
    agent = getattr(request.app.ctx, "agent", None)
    return bool(agent is not None and agent.is_ready())


def limit_requests(hook: Blueprint, channel: GuideChannel | None = None) -> None:
    """The server-wide request size limit (:func:`bot.channels.guard.limit_request_size`), set by
    every channel's blueprint so it holds whichever channels are configured; the channel learns
    which app it runs in."""

    @hook.listener("before_server_start")
    async def limit(app: Any, _: Any) -> None:
        limit_request_size(app)
        if channel is not None:
            channel.app = app


def add_common_routes(hook: Blueprint, channel: GuideChannel | None = None,
                      extra: Callable[[], dict[str, Any]] | None = None) -> None:
    """What every JSON channel's blueprint has: ``GET /`` (health: is the model loaded?) and the
    server-wide request size limit.

    ``GET /webhooks/guide/`` is the assistant's health check: Rasa's own ``/status`` belongs to
    its HTTP API, which is off (``RASA_API_TOKEN``)."""

    limit_requests(hook, channel)

    @hook.route("/", methods=["GET"])
    async def health(request: Request) -> HTTPResponse:
        ready = model_ready(request)
        return response.json({"status": "ok" if ready else "loading", "model_ready": ready, **(extra or dict)()},
                             status=200 if ready else 503)


class GuideChannel(InputChannel):
    """JSON in, a list of messages out; polite when the assistant cannot answer."""

    recent: RecentReplies | SharedRecentReplies | None = None
    _origins: frozenset[str] | None = None
    #: The Sanic app this channel runs in (set when the server starts), for the tracker store.
    app: Any = None

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
        """Run one message through Rasa and return what the assistant said (never nothing).

        A message that names a button of the assistant's last turn is sent on as that button's
        payload (:mod:`bot.channels.buttons`); what was typed stays in the metadata (``said``)."""
        collector = CollectingOutputChannel()
        try:
            shown = await self.last_buttons(sender) if len(text) <= 3 * MAX_BUTTON_CHARS else []
            beyond = past_the_buttons(text, shown)
            if beyond is not None:
                ask = f"没有第{beyond}项。请点选下面的一项，或说出它的名称："
                return self.render([{"text": ask, "buttons": shown}])
            button = match_button(text, shown)
            if button is not None and button["payload"] != text:
                metadata = {**(metadata or {}), "said": text[:MAX_BUTTON_CHARS]}
                text = button["payload"]
            await on_new_message(UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata))
        except Exception:
            logger.exception("message from %s could not be handled", sender)
            return self.render([unavailable_message()])
        if not collector.messages:
            logger.warning("no answer for %s (is the action server up?)", sender)
            return self.render([unavailable_message()])
        return self.render(collector.messages)

    async def last_buttons(self, sender: str) -> list[dict[str, str]]:
        """The buttons the assistant showed this conversation in its last turn, read from the tracker
        store (shared by every Rasa server, so right whichever server answered that turn)."""
        agent = getattr(getattr(self.app, "ctx", None), "agent", None) if self.app is not None else None
        store = getattr(agent, "tracker_store", None)
        if store is None:
            return []
        inner = store
        while getattr(inner, "_tracker_store", None) is not None:  # Rasa wraps the configured store
            inner = inner._tracker_store
        try:
            if hasattr(inner, "last_bot_turn"):  # ours: reads the newest rows, not the whole conversation
                return buttons_of(await inner.last_bot_turn(sender))
            tracker = await store.retrieve(sender)
        except Exception:  # the turn goes on as typed; the store's own error shows in the next step
            logger.warning("could not read %s's last turn for its buttons", sender)
            return []
        if tracker is None:
            return []
        turn: list[dict[str, Any]] = []
        for event in reversed(tracker.events):
            if isinstance(event, UserUttered):
                break
            if isinstance(event, BotUttered):
                turn.insert(0, event.data or {})
        return buttons_of(turn)

    async def receive_json(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> HTTPResponse:
        """``POST /webhook`` of this channel and of those that share its JSON (the kiosk).

        A page on a site listed in ``ALLOWED_ORIGINS`` may read the answer (CORS); no other site may."""
        headers = cors_headers(request, self.allowed_origins())
        try:
            sender, text, metadata = parse_request(request)
        except BadRequest as error:
            return response.json({"error": str(error)}, status=error.status, headers=headers)
        if self.recent is None:
            self.recent = recent_replies()
        reply = await self.recent.once(message_key(sender, metadata),
                                       lambda: self.handle(on_new_message, sender, text, metadata))
        return response.json(reply, headers=headers)

    def allowed_origins(self) -> frozenset[str]:
        if self._origins is None:
            self._origins = parse_origins(raw_setting("ALLOWED_ORIGINS"))
        return self._origins

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint(f"guide_channel_{type(self).__name__}", __name__)
        add_common_routes(hook, self)

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
