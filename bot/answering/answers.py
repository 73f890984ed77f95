"""Every sentence the assistant composes from a guide (the one templates module).

A one-time notification (一次性告知) tells the citizen everything at once, so a field the
guide does not have is never silently dropped: it says the guide does not state it and
where to ask. Fixed replies that need no guide live in ``domain.yml`` responses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bot.answering.lifeevents import EventPlan
from bot.contract import MaterialLine, Section
from bot.knowledge.model import FaqEntry, Guide, Material
from bot.knowledge.text import normalize

#: Canonical aspect names (the values of the Rasa ``aspect`` slot) and their Chinese labels.
ASPECTS: dict[str, str] = {
    "materials": "申请材料",
    "conditions": "受理条件",
    "fee": "收费标准",
    "time": "办理时限",
    "place": "办理地点和时间",
    "process": "办理流程",
    "online": "网上办理",
    "appointment": "预约方式",
    "visits": "跑动次数",
    "phone": "咨询电话",
}

#: Keywords that identify an aspect when the NLU passes a span its synonym list did not
#: map ("带什么材料", "网上"); checked in this order, first hit wins.
_ASPECT_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("materials", ("材料", "带", "证件", "资料")),
    ("fee", ("钱", "费", "收费", "价格")),
    ("appointment", ("预约",)),
    ("visits", ("跑", "趟")),
    ("online", ("网上", "线上", "网办", "手机上", "app")),
    ("phone", ("电话", "热线")),
    ("time", ("多久", "几天", "时间长", "时限", "多长")),
    ("place", ("哪", "地址", "窗口", "几点", "上班")),
    ("conditions", ("条件", "资格", "能不能办", "可以办")),
    ("process", ("流程", "步骤", "手续", "怎么办")),
)


#: Question words that say which aspect is asked whatever else the sentence names: "在哪里交材料"
#: asks where (the NLU hears 材料), "材料要交多少钱" how much. Time is left out: "多久" also asks
#: deadlines and validity, which other passages answer.
_ASKED_BY: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("place", re.compile(r"在哪|去哪|哪里|哪儿|哪个地方|什么地方|边度|地址|地点在")),
    ("fee", re.compile(r"多少钱|几多钱|收费吗|收不收费|要钱吗|要不要钱|费用多少|收多少")),
    ("materials", re.compile(r"(?:带|准备|交|提供|需要)(?:些)?(?:什么|啥|哪些|乜嘢)|(?:什么|哪些|啥)材料|材料有哪些")),
)


def asked_aspect(text: str) -> str | None:
    """The aspect the question words of ``text`` ask for, when exactly one is asked."""
    asked = [aspect for aspect, words in _ASKED_BY if words.search(text)]
    return asked[0] if len(asked) == 1 else None


def canonical_aspect(value: str | None) -> str | None:
    """Map an aspect entity value to a key of :data:`ASPECTS`, or None if it names none."""
    if not value:
        return None
    text = value.strip().lower()
    if text in ASPECTS:
        return text
    for aspect, words in _ASPECT_KEYWORDS:
        if any(word in text for word in words):
            return aspect
    return None


FULL_NOTIFICATION_BUTTON = "查看完整的一次性告知"

#: Longest button label (characters). Official titles run to 100 and more; a button shows a short
#: form that keeps what tells similar items apart, and the answer keeps the full title.
BUTTON_CHARS = 24
_OPEN, _CLOSE = "(（", ")）"


def _split_case(title: str) -> tuple[str, str]:
    """'许可(初次申请)' -> ('许可', '初次申请'): the last bracketed group at the end, brackets nested or not."""
    if not title or title[-1] not in _CLOSE:
        return title, ""
    depth = 0
    for i in range(len(title) - 1, -1, -1):
        if title[i] in _CLOSE:
            depth += 1
        elif title[i] in _OPEN:
            depth -= 1
            if depth == 0:
                return (title[:i], title[i + 1:-1]) if i > 0 else (title, "")
    return title, ""


def short_title(title: str, limit: int = BUTTON_CHARS) -> str:
    """A button label of at most ``limit`` characters that keeps the case in brackets, which is
    what tells sibling items apart: '二级注册建造师执业资格注册核准(二级注册建造师初始注册)' ->
    '二级注册建造师执业资格注册核准（初始注册）'."""
    title = title.strip()
    if len(title) <= limit:
        return title
    main, case = _split_case(title)
    main = main.strip()
    # The case usually repeats words of the item's name first or last: keep what it adds.
    head = next((n for n in range(len(case) - 2, 2, -1) if case[:n] in main), 0)
    case = case[head:].strip("，、等 ")
    tail = next((n for n in range(len(case) - 2, 2, -1) if case[-n:] in main), 0)
    case = (case[:-tail] if tail else case).strip("，、等 ")
    if not case:
        return main if len(main) <= limit else main[: limit - 1] + "…"
    if len(case) > limit // 2:
        case = case[: limit // 2 - 1] + "…"
    room = limit - len(case) - 2
    if len(main) > room:
        main = main[: max(1, room - 1)] + "…"
    return f"{main}（{case}）"


_REGION_PREFIX = re.compile(r"^[\u4e00-\u9fa5]{2,7}?(?:省|市|区|县)(?=.{4})")


def core_title(title: str) -> str:
    """A title without a leading place name: the province's and a city's guide of one item share it."""
    return _REGION_PREFIX.sub("", normalize(title, limit=0))


def render_scope_noted(named: str) -> str:
    """A place or office named with nothing to apply it to yet (never a placeholder for a name)."""
    return f"好的，已记下：{named}。请问您要办理什么事项？" if named else "请问您要办理什么事项？例如“护照怎么办理”。"


def button_labels(guides: Sequence[Guide | FaqEntry]) -> list[str]:
    """Labels for buttons offering ``guides`` side by side: short, and different from each other.

    Items with the same name (a province's and a city's guide, one department's and another's)
    get what differs — the region, else the department — so a citizen can tell which to tap."""
    labels = [short_title(g.title) for g in guides]
    for extra in (_region_tag, _office_tag):
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(label, []).append(i)
        for members in groups.values():
            tags = [extra(guides[i]) for i in members]
            if len(members) > 1 and len(set(tags)) > 1:  # only a tag that tells them apart
                for i, tag in zip(members, tags, strict=True):
                    labels[i] = f"{labels[i]}·{tag}" if tag else labels[i]
    return labels


def _region_tag(guide: Guide | FaqEntry) -> str:
    region = (guide.region or "").strip()
    if not region or guide.sample:
        return ""
    last = region.replace("广东省", "", 1) if region != "广东省" else ""
    return last or ("省级" if region.endswith("省") else region)


def _office_tag(guide: Guide | FaqEntry) -> str:
    department = (guide.department or "").strip()
    return department if len(department) <= 12 else department[:11] + "…"

SAMPLE_NOTE = "（本条为示例内容，具体以当地部门公布的办事指南为准。）"


def _ask(guide: Guide, hotline: str) -> str:
    phone = guide.consult_phone or hotline
    return f"本指南未载明，请致电 {phone} 咨询核实"


def material_line(material: Material) -> str:
    """One material as a line: name, form and copies, then what matters about it."""
    details = []
    if material.form:
        details.append(material.form)
    if material.copies:
        details.append(f"{material.copies}份")
    text = material.name + (f"（{'，'.join(details)}）" if details else "")
    notes = []
    if not material.required:
        notes.append("特定情形需要")
    if material.issuer:
        notes.append(f"来源：{material.issuer}")
    if material.deferrable:
        notes.append("可容缺受理，后补")
    if material.promise_ok:
        notes.append("可用告知承诺书代替")
    if material.note:
        notes.append(material.note)
    return text + (f"；{'；'.join(notes)}" if notes else "")


def _numbered(items: Sequence[str]) -> str:
    return "\n".join(f"  {i}. {item}" for i, item in enumerate(items, 1))


def _days(days: int | None) -> str | None:
    if days is None:
        return None
    return "即办（当场办结）" if days == 0 else f"{days}个工作日"


def _visits(visits: int | None) -> str | None:
    if visits is None:
        return None
    if visits == 0:
        return "0次（全程网办，无需到现场）"
    if visits == 1:
        return "最多跑一次"
    return f"{visits}次"


def aspect_text(guide: Guide, aspect: str, hotline: str) -> str:
    """The body of one aspect of a guide (no heading), always non-empty."""
    return _ASPECT_BODIES[aspect](guide, hotline)


def _materials(guide: Guide, hotline: str) -> str:
    if not guide.materials:
        return _ask(guide, hotline)
    return _numbered([material_line(m) for m in guide.materials])


def _conditions(guide: Guide, hotline: str) -> str:
    if not guide.conditions:
        return _ask(guide, hotline)
    text = _numbered(guide.conditions)
    if guide.refusal_grounds:
        text += "\n  不予受理的情形：" + "；".join(guide.refusal_grounds)
    return text


def _fee(guide: Guide, hotline: str) -> str:
    return guide.fee or _ask(guide, hotline)


def _joined(*items: tuple[str, str | None]) -> str:
    """The labelled values that are present, joined; "" when none is."""
    return "；".join(f"{label}{value}" for label, value in items if value)


def _time(guide: Guide, hotline: str) -> str:
    text = _joined(
        ("承诺办结：", _days(guide.promised_days)),
        ("法定时限：", _days(guide.statutory_days)),
        ("", guide.time_note),
    )
    return text or _ask(guide, hotline)


def _place(guide: Guide, hotline: str) -> str:
    text = _joined(("地点：", guide.place), ("窗口：", guide.window), ("时间：", guide.hours))
    return text or _ask(guide, hotline)


def _process(guide: Guide, hotline: str) -> str:
    return _numbered(guide.process) if guide.process else _ask(guide, hotline)


def _online(guide: Guide, hotline: str) -> str:
    text = _joined(
        ("可在", f"{guide.online}办理" if guide.online else None),
        ("网址：", guide.online_url),
        ("", "结果可邮寄送达" if guide.courier else None),
    )
    return text or f"本指南未载明网上办理渠道，请到现场办理或致电 {guide.consult_phone or hotline} 咨询"


def _appointment(guide: Guide, hotline: str) -> str:
    return guide.appointment or _ask(guide, hotline)


def _visits_body(guide: Guide, hotline: str) -> str:
    return _visits(guide.visits) or _ask(guide, hotline)


def _phone(guide: Guide, hotline: str) -> str:
    parts = [f"咨询电话：{guide.consult_phone or hotline}"]
    if guide.complain_phone:
        parts.append(f"投诉电话：{guide.complain_phone}")
    return "；".join(parts)


_ASPECT_BODIES: dict[str, Callable[[Guide, str], str]] = {
    "materials": _materials,
    "conditions": _conditions,
    "fee": _fee,
    "time": _time,
    "place": _place,
    "process": _process,
    "online": _online,
    "appointment": _appointment,
    "visits": _visits_body,
    "phone": _phone,
}


#: The order of a notification's sections (the same as the text's).
NOTIFICATION_ORDER = ("conditions", "materials", "time", "fee", "process", "visits", "place", "online", "appointment")


def notification_sections(guide: Guide, hotline: str) -> tuple[Section, ...]:
    """The one-time notification as sections for cards: each aspect's lines, and the materials as a
    checklist (form, copies, 容缺/承诺 flags), in the order of :func:`render_notification`."""
    sections = []
    for aspect in NOTIFICATION_ORDER:
        body = aspect_text(guide, aspect, hotline)
        lines = tuple(re.sub(r"^\s*\d+\.\s*", "", line).strip() for line in body.splitlines() if line.strip())
        checklist = tuple(MaterialLine(m.name, m.form, m.copies, m.required, m.deferrable, m.promise_ok, m.note)
                          for m in guide.materials) if aspect == "materials" else ()
        sections.append(Section(aspect, ASPECTS[aspect], lines, checklist))
    return tuple(sections)


def render_notification(guide: Guide, hotline: str, related: Sequence[Guide] = ()) -> str:
    """The full one-time notification for one guide, as plain text with light structure."""
    lines = [f"【{guide.title}】一次性告知"]
    facts = []
    if guide.department:
        facts.append(f"办理部门：{guide.department}")
    if guide.item_type:
        facts.append(f"事项类型：{guide.item_type}")
    if guide.service_objects:
        facts.append(f"服务对象：{'、'.join(guide.service_objects)}")
    if facts:
        lines.append("；".join(facts))
    for aspect in ("conditions", "materials", "time", "fee", "process", "visits", "place", "online", "appointment"):
        body = aspect_text(guide, aspect, hotline)
        sep = "\n" if body.startswith("  ") else ""
        lines.append(f"■ {ASPECTS[aspect]}：{sep}{body}")
    if guide.results:
        lines.append(f"■ 办理结果：{'、'.join(guide.results)}")
    lines.append(f"■ 咨询电话：{_phone(guide, hotline).removeprefix('咨询电话：')}")
    if guide.legal_basis:
        lines.append(f"■ 办理依据：{'；'.join(guide.legal_basis)}")
    if related:
        lines.append(f"■ 通常还需要办：{'、'.join(g.title for g in related)}")
    if guide.sample:
        lines.append(SAMPLE_NOTE)
    elif guide.source == "guangdong-2021":
        lines.append("（来源：广东政务服务网2021年办事指南，办理前请以最新公布为准。）")
    return "\n".join(lines)


def render_faq(entry: FaqEntry, hotline: str) -> str:
    """An FAQ answer: the office's answer verbatim, then who answers for it and where it is from."""
    lines = [f"【{entry.question}】", entry.answer]
    facts = [f"答复部门：{entry.department}" if entry.department else "",
             f"来源：{entry.source}" if entry.source not in ("", "local", "sample") else "",
             f"更新于 {entry.updated}" if entry.updated else ""]
    if any(facts):
        lines.append("（" + "；".join(f for f in facts if f) + "）")
    lines.append(SAMPLE_NOTE if entry.sample else f"如有疑问，请拨打 {hotline} 咨询。")
    return "\n".join(lines)


def render_aspect(guide: Guide, aspect: str, hotline: str) -> str:
    """A short answer to one aspect question, naming the item so the context is clear."""
    body = aspect_text(guide, aspect, hotline)
    sep = "\n" if body.startswith("  ") else ""
    text = f"【{guide.title}】{ASPECTS[aspect]}：{sep}{body}"
    if guide.sample:
        text += "\n" + SAMPLE_NOTE
    return text


def render_event_aspect(plan: EventPlan, aspect: str, hotline: str) -> str:
    """One aspect of each item of a life event: "【出生一件事】各事项的办理地点和时间：" and a line per item."""
    lines = [f"【{plan.event}】各事项的{ASPECTS[aspect]}："]
    for number, guide in enumerate(plan.guides, 1):
        body = aspect_text(guide, aspect, hotline).strip()
        lines.append(f"{number}. {guide.title}：{body}" if "\n" not in body else f"{number}. {guide.title}：\n{body}")
    if any(g.sample for g in plan.guides):
        lines.append(SAMPLE_NOTE)
    return "\n".join(lines)


def render_candidates_prompt() -> str:
    return "您问的可能是以下事项，请点选最符合的一项："


def render_other_candidates() -> str:
    return "以上按最接近的一项作答；如果您要办的是下面其他事项，请点选："


def render_not_found(hotline: str, *, offer_near: bool = False) -> str:
    near = "如果您要办的是下面某一项，请直接点选。" if offer_near else ""
    return (
        f"抱歉，我没有找到与您的问题相符的办事指南。{near}您可以换个说法，说出要办的事项名称（例如“身份证到期换证”），"
        f"或拨打政务服务热线 {hotline} 咨询；在办事大厅也可以到“办不成事反映窗口”寻求帮助。"
    )


def render_empty() -> str:
    return "请告诉我您想办理什么事项，例如：“我身份证过期了怎么办”。"


def render_which_item(aspect: str) -> str:
    label = ASPECTS.get(aspect, "办理信息")
    return f"请问您想了解哪个事项的{label}？例如：“身份证换证{_EXAMPLE_SUFFIX.get(aspect, '怎么办')}”。"


_EXAMPLE_SUFFIX = {
    "materials": "要带什么材料", "fee": "要多少钱", "time": "要多久", "place": "在哪里办",
    "process": "流程是什么", "online": "能在网上办吗", "conditions": "需要什么条件",
    "appointment": "怎么预约", "visits": "要跑几次", "phone": "咨询电话是多少",
}


ESCALATE_BUTTON = "转人工 / 办不成事反映"


def render_escalation_offer(hotline: str) -> str:
    """The next step after repeated failures: never end at "I can't"."""
    return (
        "看来我没能帮您解决。您可以点“转人工 / 办不成事反映”，由“办不成事反映窗口”的工作人员跟进；"
        f"也可以拨打政务服务热线 {hotline}，或到政务服务大厅的“办不成事反映窗口”当面反映。"
    )


def render_off_topic(guide: Guide, aspect: str | None, hotline: str) -> str:
    """An aspect-shaped question ("这件衣服多少钱") that is not about the item under discussion."""
    label = ASPECTS.get(aspect or "", "办理信息")
    return (
        f"抱歉，这个问题不在政务服务的范围内，我回答不了。如果您想了解【{guide.title}】的{label}，"
        f"可以直接问“{guide.title}{_EXAMPLE_SUFFIX.get(aspect or '', '怎么办')}”；其他问题可拨打 {hotline} 咨询。"
    )


def render_life_event(plan: EventPlan, hotline: str) -> str:
    """One combined notification for a life event: the items in order, materials listed once."""
    lines = [f"【{plan.event}】一次告知：共{len(plan.guides)}个事项，建议按以下顺序办理"]
    for number, guide in enumerate(plan.guides, 1):
        facts = _joined(("地点：", guide.place or guide.department), ("时限：", _days(guide.promised_days)),
                        ("收费：", guide.fee), ("网办：", guide.online))
        lines.append(f"  {number}. {guide.title}" + (f"——{facts}" if facts else ""))
    if plan.materials:
        lines.append("■ 需要准备的材料（相同材料只需准备一份）：")
        for number, (name, titles) in enumerate(plan.materials, 1):
            if len(plan.guides) == 1:
                lines.append(f"  {number}. {name}")
                continue
            used = "、".join(titles) if len(titles) < len(plan.guides) else "各事项都要"
            lines.append(f"  {number}. {name}（用于：{used}）")
    if plan.produced:
        made = "；".join(f"{name}由“{title}”办好后取得" for name, title in plan.produced)
        lines.append(f"■ 前一步办好的证件直接用于后面的事项：{made}。")
    lines.append(f"点击下方事项可查看各自的完整一次性告知；有疑问请拨打 {hotline}。")
    if any(g.sample for g in plan.guides):
        lines.append(SAMPLE_NOTE)
    return "\n".join(lines)
