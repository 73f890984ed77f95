"""Life events (一件事一次办): several items a citizen needs for one thing in life.

A guide lists the events it belongs to in ``life_events`` ("出生一件事"). For an event this
module works out a sensible order and the materials shared between its items:

* **Order.** An item that produces what another needs comes first: the 出生医学证明 item
  before the household registration that asks for 《出生医学证明》. This is read off the
  data — an item provides a material when one of its ``results`` (办理结果) or, failing
  those, its title matches the material's name — and ties keep the knowledge base's order,
  so an office controls the rest by how it orders its files.
* **Shared materials.** The same material (same name once 《》, quotes and "原件/复印件" are
  stripped) is listed once, with the items that need it. A material one item of the event
  produces for another is not something to bring, so it is left out of the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.knowledge.model import Guide
from bot.knowledge.text import normalize

_MATERIAL_NOISE = re.compile(r"[《》“”\"'（）()]|原件|复印件|及其?复印件|或其?复印件")
_EVENT_SUFFIX = "一件事"


def material_key(name: str) -> str:
    """The comparable core of a material name: '《出生医学证明》原件' -> '出生医学证明'."""
    return _MATERIAL_NOISE.sub("", normalize(name, limit=0)).strip()


@dataclass(frozen=True)
class EventPlan:
    """An event's items in the order to do them, and its materials listed once."""

    event: str
    guides: tuple[Guide, ...]
    #: (material name, titles of the items needing it), in first-needed order; excludes
    #: materials that an earlier item of the event produces.
    materials: tuple[tuple[str, tuple[str, ...]], ...]
    #: (material name, title of the item of this event that produces it)
    produced: tuple[tuple[str, str], ...]


class LifeEvents:
    """The life events of a knowledge base."""

    def __init__(self, guides: list[Guide]) -> None:
        self._members: dict[str, list[Guide]] = {}
        for guide in guides:
            for event in guide.life_events:
                self._members.setdefault(event, []).append(guide)

    @property
    def names(self) -> list[str]:
        return sorted(self._members)

    def find(self, name: str | None, text: str = "") -> str | None:
        """The event a name or question means: exact name, else an event whose stem ('出生',
        '开办企业') appears in the name or the question; longest stem first."""
        if name and name in self._members:
            return name
        haystack = normalize(f"{name or ''} {text}", limit=0)
        for event in sorted(self._members, key=len, reverse=True):
            stem = event.removesuffix(_EVENT_SUFFIX)
            if stem and stem in haystack:
                return event
        return None

    def of_guide(self, guide: Guide) -> str | None:
        """The first event a guide belongs to, if any."""
        return next((e for e in guide.life_events if e in self._members), None)

    def plan(self, event: str) -> EventPlan:
        members = self._members.get(event, [])
        order = _ordered(members)
        produced: dict[str, str] = {}
        for guide in order:
            for other in order:
                if other is guide:
                    continue
                for material in other.materials:
                    if _provides(guide, material_key(material.name)):
                        produced.setdefault(material_key(material.name), guide.title)
        needs: dict[str, list[str]] = {}
        shown: dict[str, str] = {}
        for guide in order:
            for material in guide.materials:
                key = material_key(material.name)
                if not key or key in produced:
                    continue
                shown.setdefault(key, key)
                titles = needs.setdefault(key, [])
                if guide.title not in titles:
                    titles.append(guide.title)
        return EventPlan(
            event=event,
            guides=tuple(order),
            materials=tuple((shown[k], tuple(v)) for k, v in needs.items()),
            produced=tuple(produced.items()),
        )


def _provides(guide: Guide, material: str) -> bool:
    """Does ``guide`` produce the material called ``material``?

    By its declared results when it has any ('居民户口簿' in '落户方居民户口簿'); otherwise
    when its title names the material ('出生医学证明' in '出生医学证明签发').
    """
    if len(material) < 2:
        return False
    if guide.results:
        results = [material_key(r) for r in guide.results]
        return any(len(r) >= 2 and (r in material or material in r) for r in results)
    return len(material) >= 3 and material in material_key(guide.title)


def _ordered(members: list[Guide]) -> list[Guide]:
    """Producers before consumers (Kahn's algorithm), ties in knowledge-base order."""
    before: dict[int, set[int]] = {i: set() for i in range(len(members))}
    for i, consumer in enumerate(members):
        for j, producer in enumerate(members):
            if i != j and any(_provides(producer, material_key(m.name)) for m in consumer.materials):
                before[i].add(j)
    done: list[int] = []
    remaining = list(range(len(members)))
    while remaining:
        ready = [i for i in remaining if before[i] <= set(done)]
        pick = ready[0] if ready else remaining[0]  # a cycle in the data: keep file order
        done.append(pick)
        remaining.remove(pick)
    return [members[i] for i in done]
