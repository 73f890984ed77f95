"""What counts as an answer to the ticket, status and callback forms (no Rasa here).

Each ``check_*`` function takes what the citizen typed (or the payload a button sent) and returns
a :class:`Checked`: the cleaned value to keep, or the name of the ``domain.yml`` response that says
what is wrong (the form then asks again), or that the citizen wants to stop. ``actions/tickets.py``
only moves these between Rasa's tracker and the ticket store.

Cleaning keeps what matters and drops what people say around it: "我姓王" is 王, "叫我李女士就行"
is 李女士, "+86 138-1234-5678" is 13812345678. A description is kept as typed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from bot.privacy import fold, normalize_mobile
from bot.tickets.model import category_from_text
from bot.tickets.store import ACCESS_CODE_DIGITS

#: Said at any step of the ticket form: the form stops and nothing is filed.
CANCEL_WORDS = ("取消", "不办了", "不登记了", "算了", "不用登记", "退出")
#: Said for an optional answer (the bad-rating comment, the callback number).
SKIP_WORDS = ("跳过", "不用", "没有", "无", "不需要", "算了")
#: The longest answer read as a cancel word with a few words around it ("那算了吧").
CANCEL_MAX_CHARS = 8

#: The form's slots, in the order it asks them.
TICKET_SLOTS = ("ticket_category", "ticket_description", "ticket_name", "ticket_phone", "ticket_confirm")
TICKET_NUMBER = re.compile(r"BC\d{8}-\d{4,}", re.IGNORECASE)
#: Words that show a message is about a ticket the citizen filed ("查询工单", "我反映的问题有结果了吗"),
#: not a question about an item that merely says 处理 or 结果 ("有两个违章没处理，能年检吗").
TICKET_WORDS = re.compile(
    r"工单|查询码|编号|BC\d|反映的|反映过|投诉的|登记的|登记过|之前.{0,6}(?:登记|反映|投诉|提交)|上次.{0,6}(?:登记|反映|投诉|提交)"
    r"|办不成事|进度|進度|工單|查詢碼|處理到哪|处理到哪|处理得怎么样|处理得如何|有结果了|有回复|回复了吗|有人联系"
    r"|答应.{0,10}回复|还没消息|跟进|诉求|办结了吗|ticket",
    re.IGNORECASE,
)

DESCRIPTION_MIN_CHARS = 4
DESCRIPTION_MAX_CHARS = 1000
NAME_MAX_CHARS = 20
COMMENT_MAX_CHARS = 1000
#: The callback slot's value when the citizen gave no number.
NO_PHONE = "none"
#: The name a bad-rating callback ticket is filed under.
CALLBACK_NAME = "评价人"


@dataclass(frozen=True)
class Checked:
    """One answer, checked: ``value`` to keep (None: ask again, after ``problem``, the response
    that explains what is wanted), or ``cancelled`` (the citizen wants to stop)."""

    value: Any = None
    problem: str | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None and not self.cancelled


CANCELLED = Checked(cancelled=True)


def text_of(value: Any) -> str:
    return str(value or "").strip()


def is_cancel(value: Any) -> bool:
    """A short answer that says to stop ("取消", "算了", "不登记了")."""
    text = text_of(value)
    return len(text) <= CANCEL_MAX_CHARS and any(word in text for word in CANCEL_WORDS)


def is_skip(value: Any) -> bool:
    """An optional answer left out ("跳过", "没有")."""
    return text_of(value) in SKIP_WORDS


# --- the ticket form ----------------------------------------------------------------------------


def check_category(value: Any) -> Checked:
    if is_cancel(value):
        return CANCELLED
    code = category_from_text(text_of(value))
    return Checked(code) if code else Checked(problem="utter_ticket_category_invalid")


def check_description(value: Any) -> Checked:
    """The account as the citizen typed it (only surrounding spaces dropped; at most 1000 characters)."""
    if is_cancel(value):
        return CANCELLED
    text = text_of(value)
    if len(text) < DESCRIPTION_MIN_CHARS:
        return Checked(problem="utter_ticket_description_too_short")
    return Checked(text[:DESCRIPTION_MAX_CHARS])


# What people say around their name, longest first: "免贵姓刘", "叫我李女士就行", "我的名字是张三".
_NAME_PREFIXES = tuple(sorted((
    "免贵姓", "免贵", "鄙姓", "本人姓", "本人叫", "本人是", "本人", "我的名字叫", "我的名字是", "我的名字",
    "我名字叫", "我名字是", "名字叫", "名字是", "我的姓名是", "我的姓名", "姓名是", "姓名", "称呼我", "您叫我",
    "你叫我", "您就叫我", "你就叫我", "就叫我", "叫我", "我叫", "我是", "我姓", "姓", "叫",
), key=len, reverse=True))
_NAME_SUFFIXES = tuple(sorted((
    "就可以了", "就可以", "就行了", "就行", "就好了", "就好", "就是了", "即可", "好了", "吧", "呀", "啊", "哈", "呢",
    "哦", "喔", "嘛",
), key=len, reverse=True))
_GREETINGS = ("你好", "您好", "好的", "好", "嗯", "嗯嗯", "哦", "那个", "这个", "行", "可以")
_CLAUSES = re.compile(r"[，,。.；;！!？?、\n]+")
_NAME_TRIM = " \t\u3000~～…\"'“”‘’：:（）()【】[]"


def clean_name(value: Any) -> str:
    """The name or form of address in an answer: '我姓王' -> '王', '叫我李女士就行' -> '李女士',
    '我是张三' -> '张三', '免贵姓刘' -> '刘'; '王先生' stays. Of several clauses ("你好，我姓王"),
    the one that introduces the name, else the first that is not a greeting."""
    clauses = [c.strip(_NAME_TRIM) for c in _CLAUSES.split(text_of(value))]
    clauses = [c for c in clauses if c and c not in _GREETINGS]
    if not clauses:
        return ""
    stripped = [(_strip_name(c), c) for c in clauses]
    introduced = [name for name, clause in stripped if name != clause]
    return introduced[-1] if introduced else stripped[0][0]


def _strip_name(clause: str) -> str:
    name = clause
    for _ in range(3):  # "你好我是叫我小王就行" has more than one layer
        before = name
        for prefix in _NAME_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name = name[len(prefix):]
                break
        for suffix in _NAME_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        name = name.strip(_NAME_TRIM)
        if name == before:
            break
    return name


def check_name(value: Any) -> Checked:
    if is_cancel(value):
        return CANCELLED
    name = clean_name(value)
    if not 1 <= len(name) <= NAME_MAX_CHARS or any(ch.isdigit() for ch in name) or not any(
            ch.isalpha() for ch in name):
        return Checked(problem="utter_ticket_name_invalid")
    return Checked(name)


def clean_phone(value: Any) -> str | None:
    """The mobile number in an answer as 11 ASCII digits: spaces, dashes, dots, full-width digits,
    a +86 / 0086 prefix (also in brackets) are accepted; None when there is not exactly one."""
    text = re.sub(r"[()（）\[\]【】]", " ", unicodedata.normalize("NFKC", text_of(value)))
    return normalize_mobile(text)


def check_phone(value: Any) -> Checked:
    """The full number, to be kept in the store's draft (the slot gets it masked)."""
    if is_cancel(value):
        return CANCELLED
    phone = clean_phone(value)
    return Checked(phone) if phone else Checked(problem="utter_ticket_phone_invalid")


# The confirmation: its own buttons (payloads /affirm and /deny, which the channel also sends
# when the citizen types a button's title or a paraphrase of it), and plain yes and no words.
_PAYLOADS = {"affirm": True, "deny": False}
_NOISE = re.compile(r"[\s，,。.！!？?、~～…\"'“”‘’：:；;()（）【】\[\]]+")
_YES_EXACT = frozenset((
    "对", "对的", "对对", "对呀", "对啊", "是", "是的", "是啊", "好", "好的", "好啊", "好吧", "行", "行的", "可以",
    "嗯", "嗯嗯", "恩", "ok", "okay", "yes", "y", "没错", "没问题", "正确", "无误", "确认无误", "信息正确", "都对",
))
_YES_WORDS = ("确认", "提交", "确定", "没问题", "没错", "可以", "好的", "对的", "是的", "登记吧", "就这样")
_NO_EXACT = frozenset(("不", "不对", "不是", "不行", "否", "错", "错了", "不要", "no", "n", "不用", "不用了", "别"))
_NO_WORDS = ("取消", "不提交", "别提交", "不要提交", "先不", "不登记", "不确认", "不对", "有误", "算了", "不办了",
             "不要了", "不用了")
#: A longer answer at the confirmation is a correction or a question, not a yes or no.
CONFIRM_MAX_CHARS = 16


def confirmation(value: Any, intent: str | None = None) -> bool | None:
    """True (file it), False (do not), or None (not an answer to "确认提交吗？").

    A button payload decides by its intent ("/affirm", "/deny"); words decide next ("对，提交吧",
    "确认", "好的提交" yes; "取消", "先不提交", "不对" no: a no word wins over a yes word); the
    intent Rasa recognised decides last."""
    text = _NOISE.sub("", unicodedata.normalize("NFKC", text_of(value))).lower()
    if text.startswith("/"):
        name = re.match(r"/([\w-]+)", text)
        return _PAYLOADS.get(name.group(1)) if name else None
    if text and len(text) <= CONFIRM_MAX_CHARS:
        if text in _NO_EXACT or any(word in text for word in _NO_WORDS):
            return False
        if text in _YES_EXACT or any(word in text for word in _YES_WORDS):
            return True
    return _PAYLOADS.get(intent or "")


# --- ticket status --------------------------------------------------------------------------------


def check_ticket_number(value: Any) -> Checked:
    match = TICKET_NUMBER.search(unicodedata.normalize("NFKC", text_of(value)).replace(" ", ""))
    return Checked(match.group(0).upper()) if match else Checked(problem="utter_ticket_number_invalid")


def check_access_code(value: Any) -> Checked:
    digits = re.sub(r"\D", "", fold(text_of(value)))
    return Checked(digits) if len(digits) == ACCESS_CODE_DIGITS else Checked(problem="utter_ticket_code_invalid")


# --- ratings and the bad-rating callback ----------------------------------------------------------


def rating_from(value: Any) -> int | None:
    """The stars (1 to 5) in a rating entity or slot ("5", "4星"), or None. A number of more than one
    digit is no rating ("中午12点…" once filed a one-star callback from its first digit)."""
    digits = re.sub(r"\D", "", str(value or ""))
    return int(digits) if len(digits) == 1 and 1 <= int(digits) <= 5 else None


def is_bad_rating(rating: int) -> bool:
    """A rating that is called back (差评): one or two stars."""
    return rating < 3


def check_comment(value: Any) -> str:
    """Why the citizen was not satisfied; empty when they skipped it."""
    text = text_of(value)
    return "" if text in SKIP_WORDS else text[:COMMENT_MAX_CHARS]


def check_callback_phone(value: Any) -> Checked:
    """A number to call back (kept in the draft), or :data:`NO_PHONE` when skipped."""
    if is_skip(value):
        return Checked(NO_PHONE)
    phone = clean_phone(value)
    return Checked(phone) if phone else Checked(problem="utter_callback_phone_invalid")


def callback_description(rating: int, comment: str) -> str:
    """What a bad-rating callback ticket says."""
    return f"差评（{rating}星）：{comment or '未填写原因'}"


def asks_about_a_ticket(text: str) -> bool:
    """Does a message the NLU took for a ticket-status question name a ticket (its number, 工单,
    查询码, 我反映的…, 进度)? Otherwise retrieval is asked first: "有两个违章没处理，能年检吗" is about
    the item under discussion, and sending it to the status form would ask for a ticket number."""
    return bool(TICKET_WORDS.search(text or ""))
