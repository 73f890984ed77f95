"""Cleaning what citizens type before anything searches it.

Users write Traditional characters (身份證), full-width letters and digits, emoji, and
sometimes paste whole documents. Retrieval and the index both see text through
:func:`normalize`, so "身份證過期" and "身份证过期" are the same query.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

#: Longer messages are cut: no real question needs more, and encoding cost grows with length.
MAX_QUERY_CHARS = 300

_CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\ufeff]")
# Emoji and pictographs carry no meaning for retrieval; keep CJK, letters, digits, punctuation.
_SYMBOLS = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\ufe0f\u20e3\U000e0000-\U000e007f]"
)
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _t2s() -> Any:
    # Loaded on first use: the dictionary takes a moment and most imports never need it.
    from opencc import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional to Simplified characters (a no-op on Simplified text)."""
    if not text or text.isascii():
        return text
    return str(_t2s().convert(text))


def normalize(text: Any, limit: int = MAX_QUERY_CHARS) -> str:
    """Canonical form of a user's message for retrieval.

    NFKC (full-width to half-width), control characters and emoji removed, Traditional
    converted to Simplified, white space folded, lower-cased Latin, cut to ``limit``.
    Never raises: anything that is not text becomes "".
    """
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub("", text)
    text = _SYMBOLS.sub(" ", text)
    text = _SPACE.sub(" ", text).strip().lower()
    if limit and len(text) > limit:
        text = text[:limit]
    return to_simplified(text)


def has_content(text: str) -> bool:
    """True if the normalised text still has a letter, digit or CJK character."""
    return any(ch.isalnum() for ch in text)
