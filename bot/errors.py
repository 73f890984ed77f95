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
    └── VoiceError           the kiosk's voice (bot.voice.base: VoiceUnavailable 503,
                             BadAudio 400/413/415, BadText 400), each with its HTTP status
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
