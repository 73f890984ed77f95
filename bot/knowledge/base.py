"""The knowledge base: every guide the assistant may answer with, loaded and checked.

Loading is where cross-record problems are found — two files giving the same id, a
``related`` link to an item that does not exist — because no single record can see them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.knowledge.importers import ImportReport, Problem, discover, read_file
from bot.knowledge.model import Guide


@dataclass
class KnowledgeBase:
    """Guides by id, in load order, with the import report that produced them."""

    guides: dict[str, Guide] = field(default_factory=dict)
    report: ImportReport = field(default_factory=ImportReport)
    origin: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.guides)

    def __iter__(self) -> Iterator[Guide]:
        return iter(self.guides.values())

    def get(self, guide_id: str) -> Guide | None:
        return self.guides.get(guide_id)

    @classmethod
    def from_guides(cls, guides: Iterable[Guide]) -> KnowledgeBase:
        kb = cls()
        for guide in guides:
            kb._add(guide, Problem("<memory>", 0, ""))
        kb._check_links()
        return kb

    @classmethod
    def load(cls, root: Path) -> KnowledgeBase:
        """Load every guide file under ``root``; problems go to ``report``, never raise per record."""
        kb = cls()
        for path in discover(root):
            part = read_file(path)
            kb.report.skipped.extend(part.skipped)
            kb.report.warnings.extend(part.warnings)
            kb.report.formats.update(part.formats)
            for guide in part.guides:
                kb._add(guide, Problem(str(path), 0, ""))
        kb._check_links()
        return kb

    def _add(self, guide: Guide, where: Problem) -> None:
        if guide.id in self.guides:
            self.report.skipped.append(
                Problem(where.file, where.line,
                        f"duplicate id '{guide.id}' (first one kept: {self.guides[guide.id].title})")
            )
            return
        self.guides[guide.id] = guide
        self.origin[guide.id] = where.file
        self.report.guides.append(guide)

    def _check_links(self) -> None:
        for guide in self.guides.values():
            for other in guide.related:
                if other not in self.guides:
                    self.report.warnings.append(
                        Problem(self.origin[guide.id], 0,
                                f"{guide.id}: related item '{other}' is not in the knowledge base")
                    )

    def coverage(self) -> dict[str, int]:
        """How many guides state each one-time-notification field (what an office should complete)."""
        fields_ = ("conditions", "materials", "promised_days", "fee", "process", "visits", "place", "online",
                   "consult_phone", "legal_basis")
        return {name: sum(1 for g in self.guides.values() if getattr(g, name) not in (None, ())) for name in fields_}

    def life_event(self, name: str) -> list[Guide]:
        """The guides bundled in one life event (一件事), in knowledge-base order."""
        return [g for g in self.guides.values() if name in g.life_events]


def fingerprint(root: Path) -> str:
    """A hash of every guide file's name and content: the index is stale when it changes."""
    digest = hashlib.sha256()
    for path in discover(root):
        digest.update(str(path.relative_to(root) if root.is_dir() else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
