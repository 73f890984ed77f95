"""Typed or spoken words do what the buttons on screen do (standard library only).

A kiosk voice user and a WeChat user have no buttons to tap; a widget user may simply type what a
button says. So every channel passes a message through :func:`match_button` against the buttons
of the assistant's last turn: a message that names one of them — its exact title, a close
paraphrase ("对，提交吧" for 确认提交, "一般" for 基本满意), its position ("第二个", "2") — is sent on
as that button's payload, exactly as if it had been tapped. One mechanism for every form, rating,
candidate list and confirmation; nothing per form.

A message that names no button goes on as typed: a new question is never swallowed by an old
button list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

#: Words that mean a button by what it does, when its title is one of the keys' synonyms.
#: (title words -> what a citizen says instead). Checked only against buttons actually on screen.
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "确认提交": ("确认", "提交", "对提交吧", "提交吧", "就这样提交", "确定", "没问题提交", "可以提交", "对的提交",
               "是的提交", "确认无误", "没错", "对的", "是的", "对", "好的提交"),
    "重新提交": ("再试一次", "再提交一次", "重试", "再交一次", "重新登记"),
    "取消": ("不提交了", "先不提交", "不要了", "算了", "取消吧", "不用了", "不登记了"),
    "先不登记": ("算了", "不登记了", "先不了", "不用了", "以后再说"),
    "非常满意": (
        "很满意", "特别满意", "太好了", "非常好", "五星", "5星", "满分", "十分满意", "超级满意", "太棒了",
        "非常棒", "很棒", "超赞", "特别好", "好极了", "完美", "五颗星", "非常满意好评",
    ),
    "满意": (
        "挺好", "还不错", "不错", "四星", "4星", "蛮好", "可以的", "挺满意", "比较满意", "挺不错", "好评",
        "点赞", "赞", "棒", "挺好的",
    ),
    "基本满意": (
        "一般", "还行", "凑合", "马马虎虎", "三星", "3星", "一般般", "还可以", "还好", "过得去", "还凑合",
        "中规中矩", "普通", "就那样", "说得过去",
    ),
    "不满意": (
        "不太满意", "不好", "不行", "两星", "2星", "不怎么样", "差", "不咋地", "不咋样", "不太好",
        "不太行", "不满", "没帮上忙", "没啥用", "不怎么好", "比较差", "较差", "有点差",
    ),
    "非常不满意": (
        "很不满意", "太差了", "特别差", "非常差", "很差", "一星", "1星", "差评", "垃圾", "糟糕透了",
        "极差", "太烂了", "很烂", "烂透了", "太糟糕了", "非常失望", "很失望", "特别不满意", "一点用都没有",
        "完全没用",
    ),
    "查看完整的一次性告知": ("完整的", "全部告诉我", "完整告知", "看完整的", "都告诉我", "全部的", "一次性告知"),
    "转人工 / 办不成事反映": ("转人工", "人工", "找人工", "办不成事反映"),
}
_ORDINALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_ORDINAL = re.compile(r"^(?:第|选|选第|要第|点第|就|是)?([1-9]|10|[一二两三四五六七八九十])"
                      r"(?:个|项|条|号)?(?:吧|吗|的)?$")
_NOISE = re.compile(r"[\s，,。.！!？?、~～…\"'“”‘’：:；;()（）【】\[\]]+")
#: Particles at the end of a short reply ("一般般吧", "确认啊") that do not change which button it names.
_PARTICLES = re.compile(r"(?:吧|啊|呀|呢|哦|嘛|了|哈)+$")
#: Longest message that may be read as a button (a longer one is a question or an answer).
MAX_CHARS = 16


def _clean(text: str) -> str:
    return _NOISE.sub("", unicodedata.normalize("NFKC", text)).lower()


def _ordinal(text: str) -> int | None:
    match = _ORDINAL.match(text)
    if not match:
        return None
    token = match.group(1)
    return int(token) if token.isdigit() else _ORDINALS.get(token)


_RATING = re.compile(r'"rating"\s*:\s*"?([1-5])"?')
_STARS = re.compile(r"^(?:打|给|给你打|评)?([1-5]|[一二两三四五])(?:星|分|颗星)?(?:吧|啊)?$")


def _rating(said: str, buttons: Sequence[dict[str, str]]) -> dict[str, str] | None:
    """On rating buttons a bare number is a number of stars ("5", "五星", "4分"), not a position."""
    rated = {m.group(1): b for b in buttons if (m := _RATING.search(b["payload"]))}
    match = _STARS.match(said)
    if not rated or not match:
        return None
    token = match.group(1)
    stars = token if token.isdigit() else str(_ORDINALS[token])
    return rated.get(stars)


def buttons_of(messages: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The buttons the assistant's last turn showed (every message of the turn, in order)."""
    out: list[dict[str, str]] = []
    for message in messages:
        for button in message.get("buttons") or []:
            title, payload = button.get("title"), button.get("payload")
            if isinstance(title, str) and isinstance(payload, str) and title.strip():
                out.append({"title": title, "payload": payload})
    return out


def past_the_buttons(text: str, buttons: Sequence[dict[str, str]]) -> int | None:
    """The position ``text`` names when it is only a position and the last turn showed fewer buttons
    ("第三个" under two): the citizen is told so and shown them again, instead of the words going to
    the NLU (which took a bare "2" for goodbye)."""
    if not buttons or not isinstance(text, str):
        return None
    said = _clean(text)
    position = _ordinal(said) if said and len(said) <= MAX_CHARS else None
    return position if position is not None and position > len(buttons) and _rating(said, buttons) is None else None


def match_button(text: str, buttons: Sequence[dict[str, str]]) -> dict[str, str] | None:
    """The button ``text`` names, or None.

    In order: the exact title (ignoring spaces and punctuation); its position ("第二个", "2") when
    the text is nothing else; a paraphrase listed for the title; the text being the title with a
    few words around it ("我选护照那个"), when exactly one title is inside it.
    """
    if not buttons or not isinstance(text, str):
        return None
    said = _clean(text)
    if not said or len(said) > MAX_CHARS or said.startswith("/"):
        return None
    titles = [_clean(b["title"]) for b in buttons]
    for button, title in zip(buttons, titles, strict=True):
        if said == title:
            return button
    rated = _rating(said, buttons)
    if rated is not None:
        return rated
    position = _ordinal(said)
    if position is not None:
        return buttons[position - 1] if position <= len(buttons) else None
    bare = _PARTICLES.sub("", said) or said
    for button, title in zip(buttons, titles, strict=True):
        for key, words in PARAPHRASES.items():
            if title == _clean(key) and {said, bare} & {_clean(w) for w in words}:
                return button
    # A paraphrase with a few words around it ("全部的都给我看一下"), when it points at one button.
    around = {id(b): b for b, title in zip(buttons, titles, strict=True) for key, words in PARAPHRASES.items()
              if title == _clean(key) for w in words if len(_clean(w)) >= 3 and _clean(w) in said
              and len(said) - len(_clean(w)) <= 6}
    if len(around) == 1:
        return next(iter(around.values()))
    inside = [b for b, title in zip(buttons, titles, strict=True) if len(title) >= 2 and title in said]
    if len(inside) == 1 and len(said) - len(_clean(inside[0]["title"])) <= 6:
        return inside[0]
    return None
