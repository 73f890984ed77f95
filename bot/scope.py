"""Region and department mentions: "在广州办", "去公安局办", "人社局的".

A citizen who names a place or an office is telling the assistant which of several
similar guides they mean: the Guangzhou public-security item rather than the provincial one,
or nothing from another city at all. :class:`Scope` learns the names from the knowledge base
itself (its guides' ``region`` and ``department`` fields), so an office that imports its own
region's guides gets its own place and office names without editing code.

The retriever uses a mention as a *preference*, never as a hard filter on its own: a guide
from the named region or department gets a small boost, and a guide tied to a *different*
city or district is dropped. Province-wide guides and guides with no region (the sample
items) stay, because they apply everywhere below them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.entities import place_names, region_parts
from bot.knowledge.model import Record
from bot.text import normalize

if TYPE_CHECKING:
    from bot.entities import EntityFinder

_DEPT_SUFFIX = re.compile(r"(管理局|管理所|管理部门|委员会|办公室|总局|局|厅|所|处|委|中心|部门|机关|机构)$")
_BRACKETS = re.compile(r"[(（][^)）]*[)）]")
#: Names too generic to say anything about which guide is meant.
_IGNORED = {"人民政府", "政府", "有限责任公司", "研究", "协会", "学会"}


@dataclass(frozen=True)
class Mentions:
    """The regions (full names, as in guides) and department stems a question names."""

    regions: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.regions or self.departments)


def department_stems(name: str, regions: Iterable[str] = ()) -> set[str]:
    """The distinctive part of a department name: 广州市公安局 -> {公安}; 广东省人力资源和社会保障厅 ->
    {人力资源和社会保障}; 公安机关交通管理部门（车辆管理所） -> {公安, 公安机关交通, 车辆}."""
    text = normalize(name, limit=0)
    pieces = [_BRACKETS.sub("", text), *re.findall(r"[(（]([^)）]*)[)）]", text)]
    prefixes = sorted({p for r in regions for part in region_parts(r) for p in place_names(part)},
                      key=len, reverse=True)
    stems: set[str] = set()
    for piece in pieces:
        for chunk in re.split(r"[、，,；;]", piece):
            stem = chunk.strip()
            changed = True
            while changed:
                changed = False
                for prefix in (*prefixes, "国家税务总局", "县级人民政府", "县级以上", "县级", "县区", "中共"):
                    if stem.startswith(prefix) and len(stem) > len(prefix) + 1:
                        stem, changed = stem[len(prefix):], True
                stripped = _DEPT_SUFFIX.sub("", stem)
                if stripped != stem and len(stripped) >= 2:
                    stem, changed = stripped, True
            if len(stem) >= 2 and stem not in _IGNORED and len(stem) <= 12:
                stems.add(stem)
                if stem.startswith("公安") and stem != "公安":
                    stems.add("公安")
    return stems


class Scope:
    """Place and office names known to a knowledge base, and how guides relate to them. The names in a
    question are found by :class:`bot.entities.EntityFinder` (spaCy over the knowledge base's names)."""

    def __init__(self, guides: Sequence[Record], finder: EntityFinder | None = None) -> None:
        from bot.entities import EntityFinder

        # Sample items stand for "wherever this is deployed": they never belong to a region.
        own = [None if g.sample else g.region for g in guides]
        regions = {r for r in own if r}
        self.finder = finder or EntityFinder.from_records(guides)
        self.guide_stems: list[frozenset[str]] = [
            frozenset(department_stems(g.department, regions)) if g.department else frozenset() for g in guides
        ]
        self.regions = [r or "" for r in own]
        self._known = regions | {"".join(region_parts(r)[:d]) for r in regions for d in range(1, len(region_parts(r)))}

    def mentions(self, query: str, *, region: str | None = None, department: str | None = None) -> Mentions:
        """What ``query`` (normalised) names, plus explicit choices (e.g. from conversation slots)."""
        text = query + " " + " ".join(normalize(x, limit=0) for x in (region, department) if x)
        regions = self.finder.regions(text)
        departments = self.finder.departments(text)
        if department:
            departments |= department_stems(department)
        return Mentions(frozenset(regions), frozenset(departments))

    def fits_region(self, position: int, regions: frozenset[str]) -> bool | None:
        """True: the guide is of a named region; False: of another place; None: applies anyway."""
        own = self.regions[position]
        if not regions or not own or own not in self._known:
            return None
        if own in regions:
            return True
        if any(r.startswith(own) for r in regions):
            return None  # a province-wide guide when the citizen named a city in that province
        return False

    def fits_department(self, position: int, departments: frozenset[str]) -> bool:
        return bool(departments & self.guide_stems[position])
