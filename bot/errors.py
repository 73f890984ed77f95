"""The project's one exception hierarchy.

Every error a user or operator can cause derives from :class:`BotError`, so the CLI and
the action server catch one type and turn it into a message that names the file, the
line or the setting, and the fix::

    BotError
    ├── ConfigError          a setting has a bad value (names the environment variable)
    ├── KnowledgeError       the knowledge base cannot be read
    │   ├── GuideFormatError one guide record is malformed (names the field)
    │   └── ImportFailed     a whole source file cannot be read (names file and line)
    ├── IndexMissing         the search index has not been built, or is stale
    ├── ModelMissing         the embedding model has not been prepared
    ├── RequestRefused       a channel request that must be refused, with its HTTP status
    │   ├── BadRequest       unusable size, JSON, fields or metadata (bot.channels.guard)
    │   ├── WeChatError      a WeChat callback that fails its checks (bot.channels.wechat_core)
    │   └── MiniProgramError the mini-program's login and session errors (bot.channels.miniprogram_core)
    ├── TicketError / TicketStoreUnavailable   the ticket store (bot.tickets.store)
    └── VoiceError           the kiosk's voice (bot.voice.base: VoiceUnavailable 503,
                             BadAudio 400/413/415, BadText 400), each with its HTTP status

Everything here is standard library only, so the Rasa side (channels, tracker store) imports the
same tree as the action side.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(BotError):
    """A setting (environment variable) has a value that cannot be used."""


class KnowledgeError(BotError):
    """The knowledge base cannot be read."""


class GuideFormatError(KnowledgeError):
    """One guide record is malformed; the message names the field."""


class ImportFailed(KnowledgeError):
    """A source file cannot be imported; the message names the file and line."""


class IndexMissing(BotError):
    """The search index is absent or was built for another model or knowledge base."""


class ModelMissing(BotError):
    """The embedding model folder is absent or incomplete."""


class RequestRefused(BotError, ValueError):
    """A channel request that must be refused. ``str(error)`` is safe to show to the caller; ``status``
    is the HTTP status to answer with; ``detail`` is for the log only. (Also a ValueError: callers
    that validate input catch that.)"""

    status = 400

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.detail = detail


class BadRequest(RequestRefused):
    """The request cannot be used (size, JSON, fields, metadata); the message (Chinese, then English)
    is shown to the client."""
