"""The WeChat mini-program's backend: ``/webhooks/miniprogram/``.

* ``POST /login`` with ``{"code": "<what wx.login returned>"}``: the code is exchanged with
  WeChat for the citizen's openid and answered with ``{"token": ..., "expires_in": seconds}``.
* ``POST /webhook`` with ``Authorization: Bearer <token>`` and ``{"message": "...",
  "metadata": {...}}``: answered with ``{"messages": [...]}``, shaped for a page (text with
  buttons and links, a card per answer; :func:`bot.channels.miniprogram_core.render_messages`).

The page never names its own sender: the conversation is the one of the openid in the signed
token (as ``mp-`` and a hash, never the raw openid). A missing, forged or expired token gets a
401 telling the page to log in again; a bad body a 400 with the guide channel's rules; when the
assistant cannot answer, the same polite message as the guide channel. Without
``MINIPROGRAM_APPID``/``MINIPROGRAM_SECRET`` the login answers 503 "not configured".

The protocol itself lives in :mod:`bot.channels.miniprogram_core` (standard library only, tested on its own);
a minimal mini-program calling this API is in ``bot/static/miniprogram/``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels import settings_with
from bot.channels.guard import MAX_MESSAGE, BadRequest, clean_metadata, sender_key
from bot.channels.miniprogram_core import (
    Config,
    MiniProgramError,
    NotConfigured,
    bearer,
    code2session,
    issue_token,
    parse_chat,
    parse_login,
    render_messages,
    sender_id,
    verify_token,
)
from bot.channels.rest import GuideChannel, add_common_routes
from bot.settings import raw_setting

logger = logging.getLogger(__name__)

#: How long the login waits for WeChat, in seconds.
WECHAT_TIMEOUT = 5.0
#: Keys ``credentials.yml`` may set (each overrides MINIPROGRAM_<KEY>).
_CREDENTIALS = ("appid", "secret", "session_secret", "api_base", "session_hours")


class MiniProgramChannel(GuideChannel):
    """The JSON API a mini-program page calls with ``wx.request``."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config.from_values(raw_setting)

    @classmethod
    def name(cls) -> str:
        return "miniprogram"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        """Settings from the environment; ``credentials.yml`` may override any of them."""
        return cls(Config.from_values(settings_with("MINIPROGRAM", _CREDENTIALS, credentials, raw_setting)))

    def sender_key(self) -> bytes:
        """The key that turns an openid into a conversation id: ``SENDER_ID_SECRET``, else (so
        conversation ids stay stable and keyed without it) the session-token key."""
        return sender_key(raw_setting("SENDER_ID_SECRET"), lambda: self.config.key())

    def render(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return render_messages(messages)

    @staticmethod
    def _error(error: MiniProgramError) -> HTTPResponse:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if error.status == 401 else None
        return response.json({"error": str(error)}, status=error.status, headers=headers)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint(f"miniprogram_channel_{type(self).__name__}", __name__)
        add_common_routes(hook, self, lambda: {"login": self.config.can_login})

        @hook.route("/login", methods=["POST"])
        async def login(request: Request) -> HTTPResponse:
            config = self.config
            try:
                if not config.can_login:
                    raise NotConfigured("小程序登录未配置，请联系管理员 "
                                        "(MINIPROGRAM_APPID and MINIPROGRAM_SECRET are not set on the server)")
                code = parse_login(request.body)
                session = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: code2session(code, config.appid, config.secret, config.api_base, WECHAT_TIMEOUT))
                token = issue_token(session.openid, config.key(), config.ttl_seconds)
            except MiniProgramError as error:
                log = logger.error if error.status in (500, 502, 503) else logger.warning
                log("mini-program login refused (%s): %s %s", error.status, error, error.detail)
                return self._error(error)
            logger.info("mini-program login for %s", sender_id(session.openid, self.sender_key()))
            return response.json({"token": token, "expires_in": config.ttl_seconds})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                claims = verify_token(bearer(request.headers.get("authorization")), self.config.key())
                text, metadata = parse_chat(request.body, MAX_MESSAGE)
                metadata = clean_metadata(metadata)
            except MiniProgramError as error:
                if error.status != 400:
                    logger.warning("mini-program message refused (%s): %s", error.status, error)
                return self._error(error)
            except BadRequest as error:
                return response.json({"error": str(error)}, status=error.status)
            messages = await self.handle(on_new_message, claims.sender(self.sender_key()), text, metadata)
            return response.json({"messages": messages})

        return hook
