"""Messages that are only courtesy: "好的，谢谢，再见", "谢谢啦", "您好".

The NLU reads most of them right, but a short message made of several courtesies is where it
slips ("好的，谢谢，再见" taken for a question no guide answers), and the reverse mistake — a real
question read as goodbye — is handled by asking retrieval first (``action_triage``). This module
settles the first kind by reading the words: a message is courtesy only when, with punctuation,
emoji and particles removed, nothing but courtesy phrases is left. Then the answer is the courtesy's
own (goodbye and a request for a rating, "you're welcome", a greeting), whatever intent the NLU gave.
"""

from __future__ import annotations

import re

from bot.knowledge.text import normalize


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Courtesy phrases by what they call for; the first kind found in a message wins, in this order
#: (a goodbye with thanks is a goodbye: the rating is asked).
PHRASES: dict[str, tuple[str, ...]] = {
    "goodbye": _words("再见 拜拜 下次见 回头见 先这样 就这样吧 就这样 没有了 没事了 再会 bye byebye goodbye"),
    "thank": _words("非常感谢 感谢您 感谢你 感谢 谢谢您 谢谢你 谢谢啦 谢谢了 谢谢 多谢 谢了 谢啦 辛苦了 麻烦了 "
                    "thankyou thanks thx 3q"),
    "greet": _words("您好 你好 早上好 上午好 中午好 下午好 晚上好 哈喽 嗨 在吗 在不在 hello hi"),
}
#: Words that may surround courtesy without making it a question ("好的，谢谢啦").
FILLERS = _words("好的 好滴 好嘞 好吧 好 嗯嗯 嗯 哦哦 哦 噢 喔 行 知道了 明白了 了解了 收到 那就 那 啊 呀 "
                 "哈哈 哈 啦 了 吧 呢 您 你 大家 小助手 机器人 的 很 非常 太 ok okay")

_TOKENS = sorted({*(p for ps in PHRASES.values() for p in ps), *FILLERS}, key=len, reverse=True)
_SPLIT = re.compile("|".join(re.escape(t) for t in _TOKENS))


def courtesy(text: str) -> str | None:
    """``"goodbye"``, ``"thank"`` or ``"greet"`` when ``text`` is courtesy and nothing else, else None.

    A bare acknowledgement ("好的", "嗯") is None: after a question it is an answer, which the
    dialogue reads."""
    clean = "".join(ch for ch in normalize(text, limit=0).lower() if ch.isalnum())
    if not clean or len(clean) > 24:
        return None
    if _SPLIT.sub("", clean):
        return None  # something besides courtesy: a question, a name, a number
    for kind, phrases in PHRASES.items():
        if any(p in clean for p in phrases):
            return kind
    return None
