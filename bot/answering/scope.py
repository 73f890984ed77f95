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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.knowledge.entities import department_stems, region_parts
from bot.knowledge.model import Record
from bot.knowledge.text import normalize

if TYPE_CHECKING:
    from bot.knowledge.entities import EntityFinder

#: Names too generic to say anything about which guide is meant.


@dataclass(frozen=True)
class Mentions:
    """The regions (full names, as in guides) and department stems a question names."""

    regions: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()
    #: Where the question itself names them: (start, end) in the normalised question, so the rest of it
    #: ("社保卡怎么办" of "我在广州，社保卡怎么办") can be read without a second pass.
    spans: tuple[tuple[int, int], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.regions or self.departments)


class Scope:
    """Place and office names known to a knowledge base, and how guides relate to them. The names in a
    question are found by :class:`bot.knowledge.entities.EntityFinder` (spaCy over the knowledge base's names)."""

    def __init__(self, guides: Sequence[Record], finder: EntityFinder | None = None) -> None:
        from bot.knowledge.entities import EntityFinder

        # Sample items stand for "wherever this is deployed": they never belong to a region.
        own = [None if g.sample else g.region for g in guides]
        regions = {r for r in own if r}
        self.finder = finder or EntityFinder.from_records(guides)
        self.guide_stems: list[frozenset[str]] = [
            frozenset(department_stems(g.department, regions)) if g.department else frozenset() for g in guides
        ]
        self.regions = [r or "" for r in own]
        #: The top-level regions (provinces) the guides belong to: "省…厅" names one when there is one.
        self._provinces = {r for r in regions if len(region_parts(r)) == 1 and r.endswith("省")}
        self._known = regions | {"".join(region_parts(r)[:d]) for r in regions for d in range(1, len(region_parts(r)))}

    def mentions(self, query: str, *, region: str | None = None, department: str | None = None) -> Mentions:
        """What ``query`` (normalised) names, plus explicit choices (e.g. from conversation slots)."""
        text = query + " " + " ".join(normalize(x, limit=0) for x in (region, department) if x)
        found = self.finder.find(text, ("REGION", "DEPARTMENT"))  # one segmentation for both
        regions = {key for e in found if e.label == "REGION" for key in e.keys}
        departments = {key for e in found if e.label == "DEPARTMENT" for key in e.keys}
        for entity in found:  # "深圳市公安局" is one name; the place before the office's stem is a region too
            if entity.label == "DEPARTMENT" and not any(r.start <= entity.start < r.end for r in found
                                                        if r.label == "REGION"):
                cut = min((entity.text.find(k) for k in entity.keys if entity.text.find(k) > 0), default=0)
                if cut >= 2:
                    regions |= {key for e in self.finder.find(entity.text[:cut], ("REGION",)) for key in e.keys}
        if department:
            departments |= department_stems(department)
        if not regions and len(self._provinces) == 1 and any(
                e.label == "DEPARTMENT" and text[max(0, e.start - 1):e.start] == "省" for e in found):
            # "省生态环境厅", "省民宗委那边呢": the province's own office, in a knowledge base of one province.
            regions = set(self._provinces)
        spans = tuple(sorted((e.start, e.end) for e in found if e.end <= len(query)))
        return Mentions(frozenset(regions), frozenset(departments), spans)

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
