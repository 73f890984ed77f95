"""WeChat's server-side protocol, in the standard library only (the Rasa channel imports it).

WeChat calls the backend of an official account or mini-program customer-service with:

* ``GET ?signature&timestamp&nonce&echostr`` once, to verify the URL: answer ``echostr`` if
  ``signature == sha1(''.join(sorted([token, timestamp, nonce])))``;
* ``POST`` with the same query and an XML body per message.

A request whose signature does not match, whose timestamp is too far from now (stale), or whose
``(timestamp, nonce)`` pair was already seen (a replay) is refused. Text sent back in one
customer-service message is limited in length, so long answers are split at line breaks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Protocol

from bot.errors import RequestRefused
from bot.sqlite import SharedFile

#: How far a request's timestamp may be from our clock, in seconds.
MAX_AGE = 300
#: WeChat's limit for one customer-service text message, in bytes of UTF-8.
TEXT_LIMIT_BYTES = 2048


class WeChatError(RequestRefused):
    """A request that must be refused; the message says why (for logs, not for the caller)."""


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's URL signature: sha1 of the three values sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode("utf-8")).hexdigest()


class Guard(Protocol):
    """Remembers (timestamp, nonce) pairs: :class:`ReplayGuard` in one process, or a shared store."""

    def first_time(self, timestamp: str, nonce: str, now: float) -> bool: ...


class ReplayGuard:
    """Remembers recent (timestamp, nonce) pairs; a pair seen twice within MAX_AGE is a replay."""

    def __init__(self, max_age: int = MAX_AGE) -> None:
        self.max_age = max_age
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_time(self, timestamp: str, nonce: str, now: float) -> bool:
        with self._lock:
            for key, at in list(self._seen.items()):
                if now - at > 2 * self.max_age:
                    del self._seen[key]
            if (timestamp, nonce) in self._seen:
                return False
            self._seen[(timestamp, nonce)] = now
            return True


_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


def verify(token: str, timestamp: str | None, nonce: str | None, given: str | None, *,
           now: float | None = None, guard: Guard | None = None, max_age: int = MAX_AGE) -> None:
    """Raise :class:`WeChatError` unless the request is signed by ``token``, fresh, and new."""
    if not token:
        raise WeChatError("no WeChat token configured")
    if not timestamp or not nonce or not given:
        raise WeChatError("signature, timestamp and nonce are required")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(nonce) > 64 or not _HEX40.fullmatch(given):
        raise WeChatError("malformed signature parameters")
    if not hmac.compare_digest(signature(token, timestamp, nonce), given.lower()):
        raise WeChatError("bad signature")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > max_age:
        raise WeChatError("stale timestamp")
    if guard is not None and not guard.first_time(timestamp, nonce, now):
        raise WeChatError("replayed request")


@dataclass(frozen=True)
class Incoming:
    """One message pushed by WeChat."""

    from_user: str
    to_user: str
    msg_type: str
    content: str
    msg_id: str | None


def parse_message(body: bytes, *, limit: int = 64 * 1024) -> Incoming:
    """The message in WeChat's XML body. DOCTYPEs (entity tricks) and oversized bodies are refused."""
    if len(body) > limit:
        raise WeChatError("body too large")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise WeChatError("DOCTYPE/ENTITY not allowed")
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError) as exc:
        # LookupError/ValueError: an unknown or multi-byte encoding declared (WeChat sends UTF-8).
        raise WeChatError(f"not XML ({exc})") from None
    if root.tag != "xml":
        raise WeChatError("not a WeChat message")

    def field(name: str) -> str:
        node = root.find(name)
        return (node.text or "").strip() if node is not None else ""

    sender, receiver, kind = field("FromUserName"), field("ToUserName"), field("MsgType")
    if not sender or not receiver or not kind:
        raise WeChatError("FromUserName, ToUserName and MsgType are required")
    return Incoming(sender, receiver, kind, field("Content"), field("MsgId") or None)


def split_text(text: str, limit_bytes: int = TEXT_LIMIT_BYTES) -> list[str]:
    """Pieces of ``text`` each at most ``limit_bytes`` of UTF-8, cut at line breaks where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode("utf-8")) <= limit_bytes:
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = ""
        while len(line.encode("utf-8")) > limit_bytes:  # one line longer than the limit: cut by characters
            cut, size = 0, 0
            while cut < len(line) and size + len(line[cut].encode("utf-8")) <= limit_bytes:
                size += len(line[cut].encode("utf-8"))
                cut += 1
            cut = max(cut, 1)  # a limit under one character's bytes still moves on
            pieces.append(line[:cut])
            line = line[cut:]
        current = line
    if current or not pieces:
        pieces.append(current)
    return pieces


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def reply_xml(incoming: Incoming, text: str, *, now: float | None = None) -> str:
    """A passive text reply to ``incoming`` (sender and receiver swapped)."""
    created = int(time.time() if now is None else now)
    return ("<xml>"
            f"<ToUserName>{_cdata(incoming.from_user)}</ToUserName>"
            f"<FromUserName>{_cdata(incoming.to_user)}</FromUserName>"
            f"<CreateTime>{created}</CreateTime>"
            f"<MsgType>{_cdata('text')}</MsgType>"
            f"<Content>{_cdata(text)}</Content>"
            "</xml>")


#: How long unsent parts of a long answer are kept for "继续".
PARTS_SECONDS = 3600


class SQLiteMemory:
    """The channel's memory in a SQLite file, shared by the Rasa workers of one machine."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS wechat_seen (key TEXT PRIMARY KEY, at REAL NOT NULL)",
              "CREATE TABLE IF NOT EXISTS wechat_parts (user TEXT PRIMARY KEY, at REAL NOT NULL, parts TEXT NOT NULL)")

    def __init__(self, path: str, max_age: int = MAX_AGE) -> None:
        self.path = path
        self.max_age = max_age
        self._file = SharedFile(path, self.SCHEMA)

    def first_time(self, timestamp: str, nonce: str, now: float) -> bool:
        with self._file.transaction() as db:
            db.execute("DELETE FROM wechat_seen WHERE at < ?", (now - 2 * self.max_age,))
            added = db.execute("INSERT OR IGNORE INTO wechat_seen (key, at) VALUES (?, ?)",
                               (f"{timestamp}:{nonce}", now)).rowcount
        return added == 1

    def keep_parts(self, user: str, parts: list[str]) -> None:
        now = time.time()
        with self._file.transaction() as db:
            db.execute("DELETE FROM wechat_parts WHERE at < ? OR user = ?", (now - PARTS_SECONDS, user))
            if parts:
                db.execute("INSERT INTO wechat_parts (user, at, parts) VALUES (?, ?, ?)",
                           (user, now, json.dumps(parts, ensure_ascii=False)))

    def next_part(self, user: str) -> tuple[str | None, bool]:
        with self._file.transaction() as db:
            row = db.execute("SELECT parts FROM wechat_parts WHERE user = ? AND at >= ?",
                             (user, time.time() - PARTS_SECONDS)).fetchone()
            parts = json.loads(row[0]) if row else []
            rest = parts[1:]
            if rest:
                db.execute("UPDATE wechat_parts SET parts = ? WHERE user = ?",
                           (json.dumps(rest, ensure_ascii=False), user))
            else:
                db.execute("DELETE FROM wechat_parts WHERE user = ?", (user,))
        if not parts:
            return None, False
        return str(parts[0]), bool(rest)
