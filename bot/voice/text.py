"""Text helpers for the kiosk's voice: what to read aloud, in what pieces, and how to score a
recogniser (character error rate). Standard library only (both venvs import it).

Answers come with their own spoken form (``custom.answer.speech``, :mod:`bot.answering.speech`); the few
messages without one (greetings, the escalation form's questions) are read as
:func:`spoken_form` makes them: no URLs, list symbols or asides in brackets, one line.
"""

from __future__ import annotations

import re
import unicodedata

#: A spoken message is cut (at a sentence end) to this many characters; the screen has the rest.
SPOKEN_CHARS = 200

_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")
_BRACKETED = re.compile(r"[（(\[][^）)\]]*[）)\]]")
_SYMBOLS = re.compile(r"[【】■□●◆◇▶►•·*#|<>《》“”\"]")
_LIST_NUMBER = re.compile(r"(?m)^\s*\d{1,2}[.、）)]\s*")
_SENTENCE_END = "。！？!?；;"


def spoken_form(text: str, limit: int = SPOKEN_CHARS) -> str:
    """``text`` as a synthesiser reads it well, cut at a sentence end to at most ``limit`` characters."""
    text = _LIST_NUMBER.sub("", text)
    text = _BRACKETED.sub("", text)
    text = _URL.sub("", text)
    text = _SYMBOLS.sub("", text)
    text = re.sub(r"\s*\n\s*", "，", text.strip())
    text = re.sub(r"\s{2,}", " ", text)
    text = re.sub(r"\s*([，,、；;：:。！？!?])\s*", r"\1", text)
    text = re.sub(r"([：:])[，,、；;]+", r"\1", text)
    text = re.sub(r"[，,、；;：:]*([。！？!?])", r"\1", text)
    text = re.sub(r"[，,；;、]{2,}", "，", text).strip("，；;、 ")
    if len(text) <= limit:
        return text
    cut = max(text.rfind(mark, 0, limit) for mark in _SENTENCE_END)
    if cut < limit // 3:
        cut = max(text.rfind(mark, 0, limit) for mark in "，、")
    return text[: cut + 1] if cut > 0 else text[:limit]


def sentences(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, split after sentence ends (then commas)."""
    pieces: list[str] = []
    for sentence in re.findall(r"[^。！？!?]+[。！？!?]*", text):
        sentence = sentence.strip()
        while len(sentence) > limit:
            cut = max(sentence.rfind(mark, 0, limit) for mark in "；;，,、：:")
            cut = cut + 1 if cut > 0 else limit
            pieces.append(sentence[:cut])
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


_DIGITS = "零一二三四五六七八九"


def number_in_chinese(digits: str) -> str:
    """How a number is read: ``"20"`` → 二十, ``"105"`` → 一百零五; five digits or more (phone
    numbers, codes) digit by digit, as a speech synthesiser reads them."""
    if len(digits) > 4 or (len(digits) > 1 and digits[0] == "0"):
        return "".join(_DIGITS[int(d)] for d in digits)
    value, out, zero = int(digits), "", False
    for unit, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit, value = divmod(value, unit)
        if digit:
            out += ("零" if zero else "") + _DIGITS[digit] + name
            zero = False
        elif out:
            zero = True
    if not out:
        return "零"
    return out[1:] if out.startswith("一十") else out


def normalize(text: str) -> str:
    """Text compared for the character error rate: numbers as read aloud, no punctuation, spaces or
    symbols, lower case."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\d+", lambda m: number_in_chinese(m.group()), text)
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (characters)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference``, after :func:`normalize`."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)
