"""Answers for the ear: short spoken sentences for the kiosk's voice.

A one-time notification on screen can be long; read aloud it must not be. The spoken form
says the item, how many materials and the first few of them, the fee, the time limit and
where to go — each as its own short sentence — and then points at the screen and the
printable sheet for the rest. Symbols a speech synthesiser reads badly (【】■, list
numbers, URLs, parentheses) are left out; buttons become a spoken "请说出或点选".

Everything here renders the channel-neutral :class:`bot.answering.service.Reply`; nothing is
retrieved or decided here.
"""

from __future__ import annotations

import re

from bot.answering import answers
from bot.answering.service import Reply
from bot.knowledge.model import FaqEntry, Guide

#: Materials, steps or candidates read aloud before "等N项".
SPOKEN_ITEMS = 3
#: A spoken sentence longer than this is cut at a clause boundary.
SENTENCE_CHARS = 60

_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")
_BRACKETED = re.compile(r"[（(][^）)]*[）)]")
_SYMBOLS = re.compile(r"[【】■《》“”\"*#|]")


def clean(text: str) -> str:
    """Text a synthesiser reads well: no URLs, brackets' asides, list symbols or newlines."""
    text = _BRACKETED.sub("", text)
    text = _URL.sub("", text)
    text = _SYMBOLS.sub("", text)
    text = re.sub(r"\s*\n\s*", "，", text)
    text = re.sub(r"[，,；;]{2,}", "，", text).strip("，；; ")
    return text


def _short(text: str) -> str:
    """One sentence, cut at a clause boundary if it runs long."""
    text = clean(text)
    if len(text) <= SENTENCE_CHARS:
        return text
    cut = max(text.rfind(sep, 0, SENTENCE_CHARS) for sep in "，；。、")
    return text[: cut if cut > 10 else SENTENCE_CHARS]


def _listing(items: list[str]) -> str:
    spoken = "、".join(clean(x) for x in items[:SPOKEN_ITEMS])
    return spoken + (f"等{len(items)}项" if len(items) > SPOKEN_ITEMS else "")


def _days(days: int | None) -> str | None:
    if days is None:
        return None
    return "可以当场办结" if days == 0 else f"{days}个工作日内办结"


def speak_guide(guide: Guide) -> list[str]:
    """The key facts of one item as short sentences."""
    sentences = [f"{clean(guide.title)}"]
    if guide.materials:
        names = [m.name for m in guide.materials if m.required] or [m.name for m in guide.materials]
        sentences.append(f"需要带{len(names)}样材料：{_listing(names)}")
    if guide.fee:
        sentences.append(f"费用：{_short(guide.fee)}")
    when = _days(guide.promised_days) or _days(guide.statutory_days)
    if when:
        sentences.append(when)
    if guide.place:
        sentences.append(f"办理地点：{_short(guide.place)}")
    if guide.online:
        sentences.append("也可以在网上办理")
    return sentences


def speak(reply: Reply, hotline: str) -> str:
    """The whole reply as a few short spoken sentences."""
    first = reply.guides[0] if reply.guides else None
    if reply.kind == "notification" and isinstance(first, Guide):
        sentences = speak_guide(first)
        sentences.append("完整的办事清单已经显示在屏幕上，可以点打印带走")
    elif reply.kind == "aspect" and isinstance(first, Guide) and reply.aspect:
        guide = first
        body = answers.aspect_text(guide, reply.aspect, hotline)
        lines = [line.strip().split(". ", 1)[-1] for line in body.splitlines() if line.strip()]
        if len(lines) > 1:
            spoken = f"{answers.ASPECTS[reply.aspect]}有{len(lines)}项：{_listing(lines)}"
        else:
            spoken = f"{answers.ASPECTS[reply.aspect]}：{_short(body)}"
        sentences = [clean(guide.title), spoken]
    elif reply.kind == "life_event" and reply.guides:
        order = "，再办".join(clean(g.title) for g in reply.guides)
        sentences = [f"{reply.event}共有{len(reply.guides)}个事项", f"先办{order}"]
        if reply.shared_materials:
            sentences.append(f"一共要准备{len(reply.shared_materials)}样材料，相同的只要一份")
        sentences.append("详细清单已经显示在屏幕上")
    elif reply.kind == "faq" and isinstance(first, FaqEntry):
        sentences = [_short(clean(first.answer))]
    elif reply.kind == "candidates" and reply.guides:
        names = "；".join(clean(g.title) for g in reply.guides[:SPOKEN_ITEMS])
        sentences = [f"您问的可能是：{names}", "请说出或点选一项"]
    elif reply.kind in ("not_found", "off_topic"):
        sentences = ["抱歉，没有找到相符的办事指南", "您可以换个说法再问我",
                     f"也可以拨打{hotline}，或到办不成事反映窗口"]
    elif reply.kind == "which_item":
        sentences = ["请问您要办的是哪个事项"]
    else:
        sentences = [_short(reply.text)]
    return "。".join(s for s in sentences if s) + "。"
