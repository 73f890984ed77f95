"""The knowledge schema: one typed record per government service item, and per FAQ entry.

A :class:`Guide` carries every field of a one-time notification (一次性告知) listed in
``docs/domain.md``: what the item is, who may apply, what to bring, how long it takes,
what it costs, where and how to do it, and what usually follows. Importers turn every
source format into these records; retrieval and rendering read nothing else.

Fields a source does not have stay ``None`` (or empty) rather than being invented, so an
answer can say "本指南未载明" and point to the consultation phone instead of guessing.

The JSON form (one object per line in ``*.jsonl``) uses exactly the attribute names
below; :func:`guide_from_dict` is its only reader and reports problems by field name.

The second kind of knowledge is an office's FAQ (常见问题): a question, the official answer, and
where it belongs (:class:`FaqEntry`, read by :func:`faq_from_dict`). A record is an FAQ entry when
it has an ``answer`` (and no ``title``); :func:`record_kind` tells the two apart, so one file may
hold both.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from typing import Any

from bot.errors import GuideFormatError

#: Values of ``Material.form``.
MATERIAL_FORMS = ("原件", "复印件", "原件和复印件", "电子", "原件或电子")


@dataclass(frozen=True)
class Material:
    """One item of 申请材料.

    Attributes:
        name: what the applicant brings, e.g. "居民身份证".
        form: 原件 / 复印件 / 原件和复印件 / 电子 / 原件或电子, or None when the source is silent.
        copies: number of copies, None when unknown.
        issuer: who issues it (来源渠道), e.g. "公安机关" or "申请人自备".
        required: False for materials needed only in some cases.
        deferrable: 容缺受理 — may be handed in later without blocking acceptance.
        promise_ok: 告知承诺 — a signed written promise may replace it.
        note: anything else the applicant must know (format, size, who signs).
    """

    name: str
    form: str | None = None
    copies: int | None = None
    issuer: str | None = None
    required: bool = True
    deferrable: bool = False
    promise_ok: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Guide:
    """A service item's guide (办事指南), the unit of retrieval and of answers.

    Attributes:
        id: stable identifier, unique across the knowledge base ("gd-…" for the
            Guangdong export, "sample-…" for the bundled sample items).
        title: official item name (事项名称).
        aliases: other names citizens use (红本本, 扯证, 换身份证 …).
        questions: typical questions a citizen asks about this item; indexed for
            retrieval, never shown as facts.
        department: responsible department (实施主体).
        item_type: 行政许可 / 公共服务 / 行政确认 / 其他行政权力 …
        service_objects: 自然人 / 企业法人 …
        region: where the guide applies, e.g. "广东省广州市".
        level: 省级 / 市级 / 区级 …
        topics: theme categories, e.g. ["户籍", "证件办理"].
        conditions: 受理条件, one entry per condition.
        refusal_grounds: 不予受理情形.
        materials: 申请材料.
        statutory_days: 法定办结时限 in working days (0 = on the spot), None if unknown.
        promised_days: 承诺办结时限 in working days (0 = 即办), None if unknown.
        time_note: free text when time limits are not whole working days.
        results: 办理结果, the documents the item issues ("结婚证", "居民户口簿（新生儿户口页）");
            a life event orders its items by them (an item whose result another needs comes first).
        fee: 收费标准 as text ("不收费", "20元/证"); None if the source is silent.
        process: 办理流程 steps in order.
        visits: 跑动次数 (0 = 全程网办, 1 = 最多跑一次), None if unknown.
        place: 办理地点.
        window: 窗口.
        hours: 办理时间.
        online: 网办平台 name (None = no online channel known).
        online_url: address of the online channel.
        appointment: how to book (预约方式), None if the source is silent.
        courier: True if results can be delivered by post (邮寄送达).
        consult_phone: 咨询电话.
        complain_phone: 监督投诉电话.
        legal_basis: 设定依据 / 法律依据.
        related: ids of items that usually follow or go with this one.
        life_events: bundled life events this item belongs to (出生一件事 …).
        co_departments: 联办部门.
        source: where the record came from ("guangdong-2021", "sample").
        source_url: the original page, when known.
        sample: True for sample content whose facts a deploying office must confirm.
    """

    id: str
    title: str
    aliases: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    department: str | None = None
    item_type: str | None = None
    service_objects: tuple[str, ...] = ()
    region: str | None = None
    level: str | None = None
    topics: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    refusal_grounds: tuple[str, ...] = ()
    materials: tuple[Material, ...] = ()
    statutory_days: int | None = None
    promised_days: int | None = None
    time_note: str | None = None
    results: tuple[str, ...] = ()
    fee: str | None = None
    process: tuple[str, ...] = ()
    visits: int | None = None
    place: str | None = None
    window: str | None = None
    hours: str | None = None
    online: str | None = None
    online_url: str | None = None
    appointment: str | None = None
    courier: bool | None = None
    consult_phone: str | None = None
    complain_phone: str | None = None
    legal_basis: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    life_events: tuple[str, ...] = ()
    co_departments: tuple[str, ...] = ()
    source: str = "local"
    source_url: str | None = None
    sample: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: plain dicts and lists, ``None`` fields dropped."""
        raw = asdict(self)
        return {k: _listify(v) for k, v in raw.items() if v not in (None, (), [])}


def _listify(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_listify(v) for v in value]
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items() if v is not None}
    return value


LIST_FIELDS = {
    "aliases", "questions", "service_objects", "topics", "conditions", "refusal_grounds",
    "process", "legal_basis", "related", "life_events", "co_departments", "results",
}
INT_FIELDS = {"statutory_days", "promised_days", "visits"}
BOOL_FIELDS = {"courier", "sample"}
STR_FIELDS = {
    "id", "title", "department", "item_type", "region", "level", "time_note", "fee",
    "place", "window", "hours", "online", "online_url", "appointment", "consult_phone",
    "complain_phone", "source", "source_url",
}
KNOWN = LIST_FIELDS | INT_FIELDS | BOOL_FIELDS | STR_FIELDS | {"materials"}


def guide_from_dict(data: Any) -> Guide:
    """Build a :class:`Guide` from its JSON form, checking every field.

    Raises:
        GuideFormatError: naming the field and what is wrong with it. Unknown
            fields are errors too, because a misspelt field name silently
            dropped is a fact lost from every answer.
    """
    if not isinstance(data, dict):
        raise GuideFormatError(f"a guide must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - KNOWN)
    if unknown:
        raise GuideFormatError(f"unknown field(s) {', '.join(unknown)}; known fields: see bot/knowledge/model.py")
    return Guide(**_checked(data, ("id", "title"), lists=LIST_FIELDS, ints=INT_FIELDS, bools=BOOL_FIELDS,
                            texts=STR_FIELDS, special={"materials": _materials}))


def _checked(
    data: dict[str, Any], required: tuple[str, ...], *, lists: Collection[str], ints: Collection[str] = (),
    bools: Collection[str] = (), texts: Collection[str] | None = None,
    special: dict[str, Callable[[Any], Any]] | None = None,
) -> dict[str, Any]:
    """The record's fields, each checked for its type (``texts`` None: every other field is text), or
    GuideFormatError naming the field. Shared by guides and FAQ entries."""
    for name in required:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise GuideFormatError(f"field '{name}' is missing or empty")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            continue
        if name in lists:
            kwargs[name] = _str_list(name, value)
        elif name in ints:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise GuideFormatError(f"field '{name}' must be a whole number >= 0, got {value!r}")
            kwargs[name] = value
        elif name in bools:
            if not isinstance(value, bool):
                raise GuideFormatError(f"field '{name}' must be true or false, got {value!r}")
            kwargs[name] = value
        elif special and name in special:
            kwargs[name] = special[name](value)
        elif texts is None or name in texts:
            if not isinstance(value, str):
                raise GuideFormatError(f"field '{name}' must be text, got {value!r}")
            kwargs[name] = value.strip()
    return kwargs


def _str_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GuideFormatError(f"field '{name}' must be a list of texts, got {value!r}")
    return tuple(v.strip() for v in value if v.strip())


def _materials(value: Any) -> tuple[Material, ...]:
    if not isinstance(value, list):
        raise GuideFormatError(f"field 'materials' must be a list, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value, 1):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise GuideFormatError(f"materials[{i}] must be an object or a name")
        extra = sorted(set(item) - set(Material.__dataclass_fields__))
        if extra:
            raise GuideFormatError(f"materials[{i}] has unknown field(s) {', '.join(extra)}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise GuideFormatError(f"materials[{i}] has no 'name'")
        form = item.get("form")
        if form is not None and form not in MATERIAL_FORMS:
            raise GuideFormatError(f"materials[{i}].form must be one of {', '.join(MATERIAL_FORMS)}, got {form!r}")
        copies = item.get("copies")
        if copies is not None and (isinstance(copies, bool) or not isinstance(copies, int) or copies < 1):
            raise GuideFormatError(f"materials[{i}].copies must be a whole number >= 1, got {copies!r}")
        for flag in ("required", "deferrable", "promise_ok"):
            if flag in item and not isinstance(item[flag], bool):
                raise GuideFormatError(f"materials[{i}].{flag} must be true or false")
        values: dict[str, Any] = {k: (v.strip() if isinstance(v, str) else v) for k, v in item.items() if v is not None}
        out.append(Material(**values))
    return tuple(out)


# --- FAQ entries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaqEntry:
    """One question an office answers officially (常见问题), beside the item guides.

    Attributes:
        id: stable identifier, unique across the whole knowledge base ("faq-…").
        question: the canonical question, as the office's list phrases it.
        alternatives: other ways the same question is asked (indexed for retrieval).
        answer: the official answer, shown **verbatim**: never split, reflowed or shortened.
        department: who answers for it.
        region: where it applies (None: wherever the assistant is deployed).
        keywords: a few terms the entry is about (indexed for retrieval).
        related: ids of item guides the entry belongs to (their buttons follow the answer).
        source: where the entry came from (a file, a sheet, "sample").
        updated: when the office last confirmed it (text, e.g. "2026-12-02").
        sample: True for sample content whose facts a deploying office must confirm.
    """

    id: str
    question: str
    answer: str
    alternatives: tuple[str, ...] = ()
    department: str | None = None
    region: str | None = None
    keywords: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    source: str = "local"
    updated: str | None = None
    sample: bool = False

    @property
    def title(self) -> str:
        """What a button or a list shows for this entry: its question."""
        return self.question

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        return {k: _listify(v) for k, v in raw.items() if v not in (None, (), [])}


FAQ_LIST_FIELDS = {"alternatives", "keywords", "related"}
FAQ_STR_FIELDS = {"id", "question", "answer", "department", "region", "source", "updated"}
FAQ_KNOWN = FAQ_LIST_FIELDS | FAQ_STR_FIELDS | {"sample"}


def record_kind(data: Any) -> str:
    """'faq' for a record with an answer and no title, else 'guide'."""
    if isinstance(data, dict) and "answer" in data and "title" not in data:
        return "faq"
    return "guide"


def faq_from_dict(data: Any) -> FaqEntry:
    """Build a :class:`FaqEntry` from its JSON form, checking every field.

    The answer is kept exactly as written (only surrounding white space is trimmed).

    Raises:
        GuideFormatError: naming the field and what is wrong with it.
    """
    if not isinstance(data, dict):
        raise GuideFormatError(f"an FAQ entry must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - FAQ_KNOWN)
    if unknown:
        raise GuideFormatError(f"unknown FAQ field(s) {', '.join(unknown)}; known: {', '.join(sorted(FAQ_KNOWN))}")
    return FaqEntry(**_checked(data, ("id", "question", "answer"), lists=FAQ_LIST_FIELDS, bools=("sample",)))


#: Anything the knowledge base answers with.
Record = Guide | FaqEntry
