"""Masking personal numbers: mainland mobile numbers and resident identity numbers.

Citizens type their phone number into the chat when they file a ticket, and sometimes an
identity number anywhere. Neither may end up readable in logs, in Rasa's tracker store or
on the staff list page; only a staff member who opens a ticket sees its phone number (and
that opening is written into the ticket's history).

Pure standard library on purpose: the Rasa server's venv imports this module too (see
``bot.masking_tracker_store``).
"""

from __future__ import annotations

import logging
import re

#: A mainland mobile number: 11 digits starting 13-19, not inside a longer digit run.
MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
#: An 18-character resident identity number (last character may be X).
IDENTITY = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[0-9Xx])(?![0-9A-Za-z])")


def normalize_mobile(text: str) -> str | None:
    """'+86 138-1234-5678' -> '13812345678'; None when it is not a mainland mobile number."""
    match = MOBILE.fullmatch(text.strip())
    return "".join(match.groups()) if match else None


def mask_phone(phone: str) -> str:
    """'13812345678' -> '138****5678'."""
    digits = re.sub(r"\D", "", phone)
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 7 else "****"


def mask_text(text: str) -> str:
    """Every mobile and identity number in ``text`` masked; everything else kept."""
    text = IDENTITY.sub(lambda m: f"{m.group(1)[:3]}***********{m.group(3)[-4:]}", text)
    return MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks numbers in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Mask numbers in everything the given (default: root) logger's handlers write."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
