"""The reply contract: what an answer carries from the action server to every channel.

The action server answers with a chat message (text and buttons, which every Rasa channel shows)
and, right after it, a ``custom.answer`` message holding an :class:`Answer`: the kind of answer, the
items it is about with their short titles, a notification's sections with its materials as a
checklist, the spoken form, the buttons and the printable sheet's address. The actions build it
once (:func:`actions.actions.send`); the widget, the kiosk, the mini-program and WeChat read it with
:func:`answer_of` and never parse the text back.

Standard library only: this module is imported by both processes (the Rasa server's channels and
the action server), which live in different virtual environments.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: Bumped when a field changes meaning; readers accept any version they know the fields of.
VERSION = 1


@dataclass(frozen=True)
class ItemRef:
    """An item (guide) or FAQ entry an answer is about."""

    id: str
    title: str
    short_title: str
    kind: str = "guide"


@dataclass(frozen=True)
class MaterialLine:
    """One material of a checklist: what to bring, in what form and how many, and its flags."""

    name: str
    form: str | None = None
    copies: int | None = None
    required: bool = True
    deferrable: bool = False
    promise_ok: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Section:
    """One part of a one-time notification ("申请材料", "收费标准" ...); ``lines`` as shown, and for
    the materials section the checklist."""

    key: str
    heading: str
    lines: tuple[str, ...] = ()
    materials: tuple[MaterialLine, ...] = ()


@dataclass(frozen=True)
class ButtonSpec:
    title: str
    payload: str


@dataclass(frozen=True)
class Answer:
    """One answer, as every channel receives it."""

    kind: str
    text: str = ""
    speech: str = ""
    items: tuple[ItemRef, ...] = ()
    #: The item under discussion after this answer (follow-ups refer to it), or None.
    item_id: str | None = None
    aspect: str | None = None
    event: str | None = None
    sections: tuple[Section, ...] = ()
    buttons: tuple[ButtonSpec, ...] = ()
    sheet_url: str | None = None
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        """The title of the item the answer is about (a card's heading), if it is about one."""
        return self.items[0].title if self.items else None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (lists, not tuples), as it travels."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), ensure_ascii=False))
        data["guide_ids"] = [item.id for item in self.items]  # read by older pages
        return data

    @classmethod
    def from_json(cls, data: Any) -> Answer | None:
        """The answer in ``data``, or None when it is not one. Tolerant: unknown keys are ignored and
        malformed parts dropped, because a page must never fail on an answer."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            return None

        def text(value: Any) -> str:
            return value if isinstance(value, str) else ""

        def optional(value: Any) -> str | None:
            return value if isinstance(value, str) and value else None

        items = tuple(ItemRef(str(i["id"]), text(i.get("title")), text(i.get("short_title")),
                              text(i.get("kind")) or "guide")
                      for i in data.get("items") or [] if isinstance(i, dict) and i.get("id"))
        if not items:  # an answer from before the contract: ids only
            items = tuple(ItemRef(str(i), "", "") for i in data.get("guide_ids") or [] if isinstance(i, str))
        sections = []
        for s in data.get("sections") or []:
            if not isinstance(s, dict):
                continue
            materials = tuple(
                MaterialLine(text(m.get("name")), optional(m.get("form")),
                             m["copies"] if isinstance(m.get("copies"), int) else None,
                             bool(m.get("required", True)), bool(m.get("deferrable")), bool(m.get("promise_ok")),
                             optional(m.get("note")))
                for m in s.get("materials") or [] if isinstance(m, dict) and m.get("name"))
            sections.append(Section(text(s.get("key")), text(s.get("heading")),
                                    tuple(text(x) for x in s.get("lines") or []), materials))
        buttons = tuple(ButtonSpec(text(b.get("title")), text(b.get("payload")))
                        for b in data.get("buttons") or [] if isinstance(b, dict) and b.get("payload"))
        return cls(kind=data["kind"], text=text(data.get("text")), speech=text(data.get("speech")), items=items,
                   item_id=optional(data.get("item_id")), aspect=optional(data.get("aspect")),
                   event=optional(data.get("event")), sections=tuple(sections), buttons=buttons,
                   sheet_url=optional(data.get("sheet_url")),
                   version=data["version"] if isinstance(data.get("version"), int) else VERSION)


def answer_of(message: dict[str, Any]) -> Answer | None:
    """The answer a bot message carries (``custom.answer``), or None. Every channel reads it here."""
    custom = message.get("custom") if isinstance(message, dict) else None
    return Answer.from_json(custom.get("answer")) if isinstance(custom, dict) else None
