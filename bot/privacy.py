"""Masking personal numbers: mainland mobile numbers and resident identity numbers.

Citizens type their phone number into the chat when they file a ticket, and sometimes an
identity number anywhere. Neither may end up readable in logs, in Rasa's tracker store or
on the staff list page; only a staff member who opens a ticket sees its phone number (and
that opening is written into the ticket's history).

Numbers are found however they are typed: full-width digits (１３８…, what many Chinese input
methods produce), other Unicode digits, Chinese numerals read out by a voice recogniser
(一三八…), and spaces, dashes, dots or slashes between the digits (138 1234 5678, 138.1234.5678,
138－1234－5678). Each character is folded to a canonical one first (the NFKC digit, an ASCII
space for a separator) *without changing the text's length*, so a match in the folded text
marks exactly the characters to hide in the original: everything else the citizen wrote is
kept as written.

Pure standard library on purpose: the Rasa server's venv imports this module too (see
``bot.channels.tracker_store``).
"""

from __future__ import annotations

import logging
import re
import unicodedata

#: Chinese numerals as digits (voice recognisers and some people write phone numbers this way);
#: 幺 is how 1 is read out in phone numbers.
_CHINESE_DIGITS = {"〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "三": "3", "四": "4", "五": "5",
                   "六": "6", "七": "7", "八": "8", "九": "9"}
#: Characters people put between digit groups; each folds to one ASCII space.
_SEPARATORS = set(" \t\u00a0\u3000-‐‑‒–—―−－.．。·・_/／")

#: A mainland mobile number in folded text: 11 digits starting 13-19 (optionally +86 / 0086),
#: at most two separator characters between any two digits, not inside a longer digit run.
_MOBILE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86 {0,2})?(1 {0,2}[3-9](?: {0,2}[0-9]){9})(?![0-9])")
#: An 18-character resident identity number (the last may be X), at most one separator between
#: characters.
_IDENTITY = re.compile(r"(?<![0-9A-Za-z])([1-9](?: ?[0-9]){16} ?[0-9X])(?![0-9A-Za-z])")


def _fold_char(ch: str) -> str:
    """One character's canonical form, always exactly one character."""
    if ch in _CHINESE_DIGITS:
        return _CHINESE_DIGITS[ch]
    if ch in _SEPARATORS or (ch.isspace() and len(ch) == 1):
        return " "
    if ch in "xXｘＸ":
        return "X"
    if ch == "＋":
        return "+"
    if not ch.isascii():
        value = unicodedata.decimal(ch, None)
        if value is not None:
            return str(value)
    return ch


def fold(text: str) -> str:
    """``text`` with digits, separators and X folded, character for character (same length)."""
    return "".join(_fold_char(ch) for ch in text)


def _digits(span: str) -> str:
    return "".join(ch for ch in span if ch.isdigit() or ch == "X")


def find_mobiles(text: str) -> list[str]:
    """Every mobile number in ``text`` as 11 ASCII digits, in order."""
    return [_digits(m.group(1)) for m in _MOBILE.finditer(fold(text))]


def normalize_mobile(text: str) -> str | None:
    """The mobile number a form answer gives, as 11 ASCII digits; None when it gives none.

    '+86 138-1234-5678', '１３８１２３４５６７８', '138.1234.5678' and '我的手机是13812345678'
    all give '13812345678'. An answer with two numbers, or with other digits besides the
    number, is ambiguous and gives None (the form asks again).
    """
    folded = fold(text)
    found = list(_MOBILE.finditer(folded))
    if len(found) != 1:
        return None
    match = found[0]
    rest = folded[: match.start()] + folded[match.end():]
    if any(ch.isdigit() for ch in rest):
        return None
    return _digits(match.group(1))


def mask_phone(phone: str) -> str:
    """'13812345678' -> '138****5678'."""
    digits = _digits(fold(phone))
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 7 else "****"


def _hide(chars: list[str], folded: str, start: int, end: int, keep_head: int, keep_tail: int) -> None:
    """Replace the digit characters of ``chars[start:end]`` by '*', except the first
    ``keep_head`` and the last ``keep_tail`` of them; separators stay as typed."""
    positions = [i for i in range(start, end) if folded[i].isdigit() or folded[i] == "X"]
    for i in positions[keep_head: len(positions) - keep_tail]:
        chars[i] = "*"


def mask_text(text: str) -> str:
    """Every mobile and identity number in ``text`` masked; everything else kept as typed.

    Identity numbers keep their first 3 and last 4 characters, mobile numbers their first 3
    and last 4 digits: enough for a person to recognise their own, not enough to use.
    """
    if not isinstance(text, str) or not text:
        return text
    folded = fold(text)
    if not any(ch.isdigit() for ch in folded):
        return text
    chars = list(text)
    for match in _IDENTITY.finditer(folded):
        _hide(chars, folded, match.start(1), match.end(1), 3, 4)
    refolded = fold("".join(chars))  # masked identity digits are '*' now and cannot match again
    for match in _MOBILE.finditer(refolded):
        _hide(chars, refolded, match.start(1), match.end(1), 3, 4)
    return "".join(chars)


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
