"""Tickets for the "unresolvable matter" window (办不成事反映窗口).

The window's public practice (``../shared/docs/domain.md``): it accepts five kinds of
matter, triages each as simple / ordinary / complex, answers within one working day, keeps a
ledger (台账) of everything done, and calls back every bad rating (差评) within 24 hours.
This module holds those rules as data; :mod:`bot.tickets.hours` says when a ticket is due (working
days, holidays, office hours), :mod:`bot.tickets.intake` checks what the citizen answers, and
:mod:`bot.tickets.store` keeps the tickets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

#: The five categories the window accepts, in the order the citizen is offered them.
CATEGORIES: dict[str, str] = {
    "failed": "申请办理没办成（线上或线下）",
    "repeated": "多次办理仍未办成",
    "disputed": "对办理结果有异议",
    "conduct": "投诉工作人员作风",
    "other": "其他合理诉求",
}

#: Triage levels: solve on the spot, coordinate with departments, track to the end.
TRIAGE: dict[str, str] = {"simple": "简单（当场解决）", "ordinary": "一般（协调部门）", "complex": "复杂（跟踪到底）"}

STATUSES: dict[str, str] = {"open": "待处理", "assigned": "处理中", "resolved": "已办结"}

SOURCES: dict[str, str] = {"conversation": "对话登记", "bad_rating": "差评回访"}

#: Keywords that pick a category from what the citizen typed (buttons send the labels).
_CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conduct", ("作风", "态度", "工作人员", "刁难", "投诉")),
    ("disputed", ("异议", "不服", "不认可", "不合理", "结果")),
    ("repeated", ("多次", "几次", "好几", "三次", "跑了", "反复", "来回")),
    ("failed", ("没办成", "办不成", "失败", "没通过", "不给办", "办不了", "被拒")),
    ("other", ("其他", "其它", "别的", "建议")),
)


def category_from_text(text: str) -> str | None:
    """The category a button label, code or free text names, or None."""
    value = text.strip()
    if value in CATEGORIES:
        return value
    for code, label in CATEGORIES.items():
        if value == label or value.rstrip("。.") == label:
            return code
    for code, words in _CATEGORY_WORDS:
        if any(word in value for word in words):
            return code
    return None


def triage_for(category: str) -> str:
    """The first triage a new ticket gets; staff change it when they take the ticket."""
    return {"conduct": "ordinary", "disputed": "ordinary", "repeated": "ordinary"}.get(category, "simple")


@dataclass(frozen=True)
class NewTicket:
    """A ticket to create, with the full phone number (for callers that hold it: staff tools and
    tests). The conversation files a :class:`DraftTicket` instead, so the number stays in the store."""

    category: str
    description: str
    name: str
    phone: str | None
    conversation_id: str
    item: str | None = None
    source: str = "conversation"
    rating: int | None = None


@dataclass(frozen=True)
class DraftTicket:
    """What the conversation collected, without the phone number: that stays in the store's draft
    for ``conversation_id`` (:meth:`bot.tickets.store.TicketStore.create_from_draft`)."""

    category: str
    description: str
    name: str
    conversation_id: str
    item: str | None = None
    source: str = "conversation"
    rating: int | None = None

    def with_phone(self, phone: str | None) -> NewTicket:
        return NewTicket(category=self.category, description=self.description, name=self.name, phone=phone,
                         conversation_id=self.conversation_id, item=self.item, source=self.source,
                         rating=self.rating)


@dataclass(frozen=True)
class HistoryEntry:
    at: dt.datetime
    actor: str
    action: str
    detail: str


@dataclass(frozen=True)
class Ticket:
    number: str
    category: str
    description: str
    name: str
    phone: str | None
    conversation_id: str
    item: str | None
    source: str
    rating: int | None
    status: str
    triage: str
    assignee: str | None
    resolution: str | None
    created_at: dt.datetime
    due_at: dt.datetime
    resolved_at: dt.datetime | None
    #: What the citizen gives besides the number to see the ticket's status (six digits).
    access_code: str | None = None
    history: tuple[HistoryEntry, ...] = field(default_factory=tuple)

    def overdue(self, now: dt.datetime) -> bool:
        """Past its due time and not resolved (or resolved late)."""
        if self.resolved_at is not None:
            return self.resolved_at > self.due_at
        return now > self.due_at
