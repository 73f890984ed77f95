"""Rasa input channels (loaded by the Rasa server from ``credentials.yml``).

Only the standard library, Rasa and Sanic may be imported here: this package runs in the Rasa
server's venv, not the action server's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.contract import Answer, answer_of

__all__ = ["Answer", "answer_of", "settings_with"]


def settings_with(prefix: str, keys: tuple[str, ...], credentials: dict[str, Any] | None,
                  read: Callable[[str], str]) -> Callable[[str], str]:
    """A settings reader where ``credentials.yml``'s keys for a channel override its environment
    settings: ``{"idle_seconds": 120}`` under the kiosk stands for ``KIOSK_IDLE_SECONDS=120``.
    Keys not in ``keys`` are ignored."""
    given = {f"{prefix}_{key.upper()}": str(value)
             for key, value in (credentials or {}).items() if key in keys and value is not None}
    return lambda name: given.get(name, read(name))
