"""The kiosk's rendering of the assistant's messages (standard library only, tested on its own;
the channel itself is :mod:`bot.channels.kiosk`).

Every answer arrives as two messages: its text with buttons, then ``custom.answer`` with the same
answer for other renderings (:func:`actions.actions.send`). The kiosk needs, on each text message,
what to say aloud and what to print, so :func:`render_kiosk` copies them onto it.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from bot.channels import answer_of
from bot.voice.text import spoken_form

#: A guide id the kiosk passes on to the sheet's address (the ids in the knowledge base look like
#: ``sample-id-card-renew`` or ``gd-11440000…``).
GUIDE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def render_kiosk(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each text message with what the kiosk needs to speak and print it (rendering only).

    An answer's ``custom.answer`` message (sent right after its text) gives the text message
    before it ``speech``, ``kind`` and, for a one-time notification, ``sheet_url`` and
    ``print_url``; text without an answer is spoken as :func:`spoken_form` makes it.
    Rendering an already rendered list changes nothing.
    """
    out = [dict(m) for m in messages]
    last_text: dict[str, Any] | None = None
    for message in out:
        if message.get("text"):
            last_text = message
        answer = answer_of(message)
        if answer is None or last_text is None or "kind" in last_text:
            continue
        last_text["kind"] = answer.kind
        if answer.speech.strip():
            last_text["speech"] = answer.speech.strip()
        ids = [item.id for item in answer.items]
        if answer.sheet_url and ids and GUIDE_ID.match(ids[0]):
            last_text["sheet_url"] = answer.sheet_url
            last_text["print_url"] = f"sheet/{quote(ids[0], safe='')}"
        if answer.sections:
            last_text["title"] = answer.title
            last_text["sections"] = [asdict(section) for section in answer.sections]
    for message in out:
        if message.get("text") and not message.get("speech"):
            message["speech"] = spoken_form(str(message["text"]))
    return out
