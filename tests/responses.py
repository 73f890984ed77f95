"""What a citizen would read from the messages an action sent: texts as they are, responses
(``utter_message(response=..., **values)``) rendered from ``domain.yml`` the way Rasa fills them."""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

from bot.settings import ROOT

_SLOT = re.compile(r"\{(\w+)\}")


@functools.cache
def responses() -> dict[str, list[dict[str, Any]]]:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"]


def rendered(message: dict[str, Any]) -> str:
    """One message's text; a response's first variant with its ``{values}`` filled in (a value the
    action did not pass stays as ``{name}``, as Rasa leaves it, so tests can see it)."""
    name = message.get("response")
    if not name:
        return str(message.get("text") or "")
    template = str(responses()[name][0].get("text") or "")
    return _SLOT.sub(lambda m: str(message[m.group(1)]) if m.group(1) in message else m.group(0), template)


def said(messages: list[dict[str, Any]]) -> str:
    return "\n".join(rendered(m) for m in messages)
