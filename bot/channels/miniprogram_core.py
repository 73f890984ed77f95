"""The WeChat mini-program backend's protocol, in the standard library only (the Rasa channel
:mod:`bot.channels.miniprogram` imports it, and the tests use it without Rasa).

A mini-program page cannot be trusted to say who the citizen is, so it never chooses its own
sender id:

1. the page calls ``wx.login()`` and posts the one-time ``code`` to our ``/login``;
2. we exchange it with WeChat (:func:`code2session`, ``GET /sns/jscode2session``) for the
   citizen's ``openid``. WeChat's ``session_key`` comes back too; it is dropped at once and never
   returned, stored or logged;
3. we issue an opaque session token (:func:`issue_token`):
   ``base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))``, the payload
   carrying the openid and an expiry. The key is ``MINIPROGRAM_SESSION_SECRET``, or one derived
   from ``MINIPROGRAM_SECRET`` (:func:`signing_key`);
4. every chat request carries ``Authorization: Bearer <token>``; :func:`verify_token` refuses a
   tampered, expired or malformed one, and the page logs in again.

The Rasa sender id is ``mp-`` and a keyed hash of the openid (:func:`sender_id`), so raw
openids never reach the tracker store or the logs.

:func:`render_messages` shapes the assistant's messages for a mini-program page (text with
buttons and links, and a card for each answer). Every error a caller can cause is a
:class:`MiniProgramError` carrying the HTTP status to answer with and a Chinese and English
message that is safe to show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.channels import Answer, answer_of
from bot.errors import BadRequest as RefusedRequest
from bot.errors import RequestRefused

#: WeChat's API host; tests and private deployments point MINIPROGRAM_API_BASE elsewhere.
DEFAULT_API_BASE = "https://api.weixin.qq.com"
#: Same limit as the guide channel (:data:`bot.channels.rest.MAX_MESSAGE`; the channel passes that one).
MAX_MESSAGE = 2000
#: Request bodies larger than this are refused before parsing.
MAX_BODY = 64 * 1024
#: WeChat's answers are small; more than this is not WeChat.
MAX_ANSWER = 64 * 1024
#: Tokens longer than this are not ours.
MAX_TOKEN = 2048
#: Label of the key derived from the app secret when no MINIPROGRAM_SESSION_SECRET is set.
KEY_LABEL = b"guide-assistant/miniprogram-session-token/v1"
#: A session secret shorter than this is refused.
MIN_SESSION_SECRET = 16

_CODE = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: WeChat's codes are 32 of these
_OPENID = re.compile(r"^[\x21-\x7e]{1,128}$")
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
_LINK = re.compile(r"https?://[^\s<>\"'，。；：、！？（）【】「」『』《》“”‘’]+")

RELOGIN = "请重新登录"


class MiniProgramError(RequestRefused):
    """A mini-program request that must be refused (see :class:`bot.errors.RequestRefused`)."""


class BadRequest(MiniProgramError, RefusedRequest):
    """The page sent something unusable (400)."""


class TokenError(MiniProgramError):
    """No session token, or one that is forged, expired or malformed: the page must log in again (401)."""

    status = 401


class LoginError(MiniProgramError):
    """WeChat refused the login code (400/403), or could not be asked (502/503)."""


class NotConfigured(MiniProgramError):
    """The mini-program's appid/secret are not set (503)."""

    status = 503


# ---------------------------------------------------------------------------------------------
# Login: code2session


@dataclass(frozen=True)
class Session:
    """Who WeChat says the citizen is. WeChat's ``session_key`` is deliberately not kept."""

    openid: str
    unionid: str | None = None


#: WeChat's error codes for a code the page sent: (HTTP status, message).
_CLIENT_ERRORS = {
    40029: (400, "登录凭证 code 无效，请重新登录 (invalid login code: call wx.login again)"),
    40163: (400, "登录凭证 code 已被使用，请重新登录 (login code already used: call wx.login again)"),
    40226: (403, "该微信账号的登录被微信拦截，请到政务服务大厅或拨打热线办理 (WeChat blocked this login as high-risk)"),
}
#: WeChat is busy or rate-limiting us: try again shortly.
_BUSY_ERRORS = {
    -1: "微信服务繁忙，请稍后再试 (WeChat is busy: try again shortly)",
    45011: "登录太频繁，请稍后再试 (too many logins: WeChat rate limit, try again shortly)",
}
#: WeChat refuses our own credentials: an operator must fix the settings.
_CONFIG_ERRORS = {40013, 40125, 41002, 41004, 40002}

UNREACHABLE = "暂时无法连接微信登录服务，请稍后再试 (WeChat's login service cannot be reached: try again shortly)"
MISCONFIGURED = "小程序登录服务配置有误，请联系管理员 (WeChat refused this server's appid/secret)"


def check_code(code: object) -> str:
    """The login code if it looks like one (non-empty, at most 128 printable ASCII characters)."""
    if not isinstance(code, str) or not code:
        raise BadRequest("缺少登录凭证 code (code: the string wx.login returned is required)")
    if not _CODE.fullmatch(code):
        raise BadRequest("登录凭证 code 格式无效，请重新登录 (code must be 1-128 printable ASCII characters)")
    return code


def code2session(code: str, appid: str, secret: str, api_base: str = DEFAULT_API_BASE,
                 timeout: float = 5.0) -> Session:
    """Ask WeChat who the citizen behind ``code`` is (``GET /sns/jscode2session``).

    Raises:
        BadRequest: the code is malformed (not sent to WeChat).
        NotConfigured: no appid or secret.
        LoginError: WeChat refused the code (400; 403 for a blocked account), is busy or
            rate-limiting (503), refused our credentials, answered nonsense or could not be
            reached in ``timeout`` seconds (502).
    """
    check_code(code)
    if not appid or not secret:
        raise NotConfigured("小程序登录未配置 (MINIPROGRAM_APPID and MINIPROGRAM_SECRET are not set)")
    query = urllib.parse.urlencode({"appid": appid, "secret": secret, "js_code": code,
                                    "grant_type": "authorization_code"})
    url = f"{api_base.rstrip('/')}/sns/jscode2session?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # the address is ours (a setting)
            raw = answer.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as error:
        status = 503 if error.code in (429, 503) else 502
        raise LoginError(UNREACHABLE, status, f"WeChat answered HTTP {error.code}") from None
    except (OSError, http.client.HTTPException) as error:  # refused, DNS, TLS, timeout, broken answer
        raise LoginError(UNREACHABLE, 502, f"WeChat unreachable: {type(error).__name__}") from None
    if len(raw) > MAX_ANSWER:
        raise LoginError(UNREACHABLE, 502, "WeChat's answer is too large")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise LoginError(UNREACHABLE, 502, "WeChat's answer is not JSON") from None
    if not isinstance(data, dict):
        raise LoginError(UNREACHABLE, 502, "WeChat's answer is not a JSON object")
    errcode = _errcode(data.get("errcode"))
    errmsg = str(data.get("errmsg", ""))[:200]
    if errcode:
        detail = f"WeChat errcode {errcode}: {errmsg}"
        if errcode in _CLIENT_ERRORS:
            status, message = _CLIENT_ERRORS[errcode]
            raise LoginError(message, status, detail)
        if errcode in _BUSY_ERRORS:
            raise LoginError(_BUSY_ERRORS[errcode], 503, detail)
        if errcode in _CONFIG_ERRORS:
            raise LoginError(MISCONFIGURED, 502, detail)
        raise LoginError(f"微信登录失败（错误码 {errcode}），请稍后再试 (WeChat login failed: errcode {errcode})",
                         502, detail)
    openid = data.get("openid")
    if not isinstance(openid, str) or not _OPENID.fullmatch(openid):
        raise LoginError(UNREACHABLE, 502, "WeChat's answer has no usable openid")
    unionid = data.get("unionid")
    return Session(openid, unionid if isinstance(unionid, str) and unionid else None)


def _errcode(value: object) -> int:
    """WeChat's errcode as a number (0 when absent; an unreadable one counts as an error)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return -2
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return -2


# ---------------------------------------------------------------------------------------------
# Session tokens


def signing_key(secret: str, session_secret: str = "") -> bytes:
    """The token key: ``session_secret`` if set, else one derived from the app secret.

    Raises:
        NotConfigured: neither is set.
        ValueError: ``session_secret`` is set but shorter than 16 characters.
    """
    if session_secret:
        if len(session_secret) < MIN_SESSION_SECRET:
            raise ValueError(f"MINIPROGRAM_SESSION_SECRET must be at least {MIN_SESSION_SECRET} characters; "
                             "unset it to derive the key from MINIPROGRAM_SECRET")
        return session_secret.encode("utf-8")
    if secret:
        return hmac.new(secret.encode("utf-8"), KEY_LABEL, hashlib.sha256).digest()
    raise NotConfigured("小程序登录未配置 (set MINIPROGRAM_SESSION_SECRET or MINIPROGRAM_SECRET)")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise binascii.Error("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()


def issue_token(openid: str, key: bytes, ttl_seconds: int, *, now: float | None = None) -> str:
    """A session token for ``openid`` valid for ``ttl_seconds``."""
    if not _OPENID.fullmatch(openid):
        raise ValueError("openid must be 1-128 printable ASCII characters")
    expires = int(time.time() if now is None else now) + int(ttl_seconds)
    payload = _b64encode(json.dumps({"v": 1, "o": openid, "e": expires}, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_b64encode(_mac(key, payload))}"


@dataclass(frozen=True)
class Claims:
    """What a valid token says."""

    openid: str
    expires: int

    def sender(self, key: bytes) -> str:
        return sender_id(self.openid, key)


def verify_token(token: object, key: bytes, *, now: float | None = None) -> Claims:
    """The token's claims, or :class:`TokenError` saying why it is refused."""
    if not isinstance(token, str) or not token:
        raise TokenError(f"缺少登录凭证，{RELOGIN} (no session token: log in again)")
    malformed = TokenError(f"登录凭证格式无效，{RELOGIN} (malformed session token: log in again)")
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise malformed
    payload, signature = token.split(".")
    try:
        given = _b64decode(signature)
        body = _b64decode(payload)
    except (binascii.Error, ValueError):
        raise malformed from None
    if not hmac.compare_digest(_mac(key, payload), given):
        raise TokenError(f"登录凭证无效，{RELOGIN} (session token signature does not match: log in again)")
    try:
        claims = json.loads(body)
    except (ValueError, RecursionError):
        raise malformed from None
    if not isinstance(claims, dict):
        raise malformed
    openid, expires = claims.get("o"), claims.get("e")
    if claims.get("v") != 1 or not isinstance(openid, str) or not _OPENID.fullmatch(openid) \
            or not isinstance(expires, int) or isinstance(expires, bool):
        raise malformed
    if (time.time() if now is None else now) >= expires:
        raise TokenError(f"登录已过期，{RELOGIN} (session token expired: log in again)")
    return Claims(openid, expires)


def bearer(header: object) -> str:
    """The token in an ``Authorization: Bearer <token>`` header, or :class:`TokenError`."""
    if not isinstance(header, str) or not header.strip():
        raise TokenError(f"缺少登录凭证，{RELOGIN} (missing Authorization: Bearer <token> header: log in)")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError(f"登录凭证格式无效，{RELOGIN} (Authorization must be 'Bearer <token>': log in again)")
    return token.strip()


def sender_id(openid: str, key: bytes) -> str:
    """The Rasa sender id for a citizen: ``mp-`` and 32 hex digits of HMAC-SHA-256(key, openid).

    Keyed, so that nobody holding a list of openids (they are not secret to WeChat's other
    services) can find a citizen's conversation in the tracker store."""
    return "mp-" + hmac.new(key, openid.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# Request bodies


def _json_object(body: bytes | None) -> dict[str, Any]:
    if body is not None and len(body) > MAX_BODY:
        raise BadRequest(f"请求太大 (the body must be at most {MAX_BODY} bytes)")
    try:
        data = json.loads(body or b"")
    except (ValueError, RecursionError):
        raise BadRequest("请求不是有效的 JSON (the body must be a JSON object)") from None
    if not isinstance(data, dict):
        raise BadRequest("请求必须是 JSON 对象 (the body must be a JSON object)")
    return data


def parse_login(body: bytes | None) -> str:
    """The ``code`` of a ``/login`` body ``{"code": "..."}``, or :class:`BadRequest`."""
    return check_code(_json_object(body).get("code"))


def parse_chat(body: bytes | None, max_message: int = MAX_MESSAGE) -> tuple[str, dict[str, Any] | None]:
    """(message, metadata) of a ``/webhook`` body, with the guide channel's rules, or :class:`BadRequest`."""
    data = _json_object(body)
    message, metadata = data.get("message"), data.get("metadata")
    if not isinstance(message, str):
        raise BadRequest("缺少 message，或 message 不是文本 (message must be a string)")
    if len(message) > max_message:
        raise BadRequest(f"消息太长，请控制在 {max_message} 字以内 (message longer than {max_message} characters)")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("message 含有无效字符 (message is not valid Unicode text)") from None
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequest("metadata 必须是 JSON 对象 (metadata must be an object)")
    return message, metadata


# ---------------------------------------------------------------------------------------------
# Rendering for the page

#: Card titles when the text before an answer names no item.
CARD_TITLES = {
    "notification": "一次性告知", "aspect": "办事指南", "life_event": "一件事一次办", "candidates": "您可能要办理",
    "not_found": "没有找到对应事项", "which_item": "请先说明事项", "off_topic": "政务服务导办",
    "unavailable": "暂时无法回答",
}
_HEADING = re.compile(r"^\s*【([^】\n]{1,80})】")
_TRAILING = ".,;:!?)]}'\""


def links(text: str) -> list[str]:
    """The http(s) addresses in ``text``, in order, each once, without trailing punctuation."""
    found: list[str] = []
    for match in _LINK.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        if len(url) > len("https://") and url not in found:
            found.append(url)
    return found


def _buttons(value: object) -> list[dict[str, str]]:
    buttons = []
    for button in value if isinstance(value, list) else []:
        if isinstance(button, dict) and (button.get("title") or button.get("payload")):
            title, payload = button.get("title"), button.get("payload")
            buttons.append({"title": str(title if title is not None else payload),
                            "payload": str(payload if payload is not None else title)})
    return buttons


def _card(answer: Answer, heading: str | None) -> dict[str, Any]:
    """A card for the page from the reply contract: titled by the item it is about (else the 【item】
    the text before it names, else a label for the kind), with the notification's sections."""
    title = answer.title or heading or CARD_TITLES.get(answer.kind, "办事指南")
    data = answer.to_json()
    data["items"] = [item for item in data["items"] if item["title"]]
    keep = ("sheet_url", "guide_ids", "item_id", "aspect", "event", "speech", "items", "sections")
    return {"type": "card", "title": title, "kind": answer.kind, **{k: data[k] for k in keep if data[k]}}


def render_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assistant's messages shaped for a mini-program page. Rendering only, nothing dropped:

    * text (and buttons) → ``{"type": "text", "text", "buttons": [{"title", "payload"}], "links": [url]}``
      (``buttons`` and ``links`` only when there are some);
    * ``custom.answer`` (see ``actions.actions.send``) → ``{"type": "card", "title", "kind",
      "sheet_url", "guide_ids", "aspect", "event", "speech"}``; the title is the 【item】 the text
      before it names, else a label for the kind;
    * an image → ``{"type": "image", "url"}``; anything else → ``{"type": "custom", "custom": {...}}``.

    Messages already rendered (with a ``type``) pass through, so rendering twice changes nothing.
    """
    rendered: list[dict[str, Any]] = []
    heading: str | None = None
    for message in messages:
        if not isinstance(message, dict):
            rendered.append({"type": "custom", "custom": message})
            continue
        if "type" in message:
            rendered.append(message)
            continue
        extra: dict[str, Any] = {}
        text = message.get("text")
        buttons = _buttons(message.get("buttons"))
        if text is not None or buttons:
            text = "" if text is None else str(text)
            entry: dict[str, Any] = {"type": "text", "text": text}
            if buttons:
                entry["buttons"] = buttons
            found = links(text)
            if found:
                entry["links"] = found
            rendered.append(entry)
            match = _HEADING.match(text)
            heading = match.group(1).strip() if match else None
        if message.get("image"):
            rendered.append({"type": "image", "url": str(message["image"])})
        custom = message.get("custom")
        answer = answer_of(message)
        if isinstance(custom, dict) and answer is not None:
            rendered.append(_card(answer, heading))
            extra.update({k: v for k, v in custom.items() if k != "answer"})
        elif custom is not None:
            extra.update(custom if isinstance(custom, dict) else {"custom": custom})
        extra.update({k: v for k, v in message.items()
                      if k not in ("recipient_id", "text", "buttons", "image", "custom") and v is not None})
        if extra:
            rendered.append({"type": "custom", "custom": extra})
    return rendered


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Config:
    """The mini-program settings, as the channel reads them."""

    appid: str = ""
    secret: str = ""
    session_secret: str = ""
    api_base: str = DEFAULT_API_BASE
    session_hours: float = 24.0

    @classmethod
    def from_values(cls, get: Callable[[str], str]) -> Config:
        """From ``get(name)`` (the channel passes :func:`bot.settings.raw_setting`).

        Raises:
            ValueError: naming the variable whose value cannot be used.
        """
        hours_text = get("MINIPROGRAM_SESSION_HOURS")
        try:
            hours = float(hours_text)
        except ValueError:
            hours = -1.0
        if not 0 < hours <= 24 * 30:
            raise ValueError(f"MINIPROGRAM_SESSION_HOURS={hours_text!r} must be a number of hours "
                             "between 0 and 720; unset it to use 24")
        api_base = get("MINIPROGRAM_API_BASE").strip() or DEFAULT_API_BASE
        if not api_base.startswith(("https://", "http://")):
            raise ValueError(f"MINIPROGRAM_API_BASE={api_base!r} must be an http(s) address such as {DEFAULT_API_BASE}")
        config = cls(get("MINIPROGRAM_APPID").strip(), get("MINIPROGRAM_SECRET").strip(),
                     get("MINIPROGRAM_SESSION_SECRET").strip(), api_base, hours)
        if config.session_secret:
            signing_key("", config.session_secret)  # refuses a short one now, not at the first login
        return config

    @property
    def can_login(self) -> bool:
        return bool(self.appid and self.secret)

    @property
    def ttl_seconds(self) -> int:
        return max(1, int(self.session_hours * 3600))

    def key(self) -> bytes:
        """The token key, or :class:`NotConfigured`."""
        return signing_key(self.secret, self.session_secret)
