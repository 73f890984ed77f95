"""The knowledge base: every guide and FAQ entry the assistant may answer with, loaded and checked.

Loading is where cross-record problems are found — two files giving the same id, a
``related`` link to an item that does not exist — because no single record can see them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.knowledge.importers import ImportReport, Problem, discover, read_file
from bot.knowledge.model import FaqEntry, Guide, Record

#: Fields of a one-time notification an office should complete (``knowledge validate`` counts them).
GUIDE_FIELDS = ("conditions", "materials", "promised_days", "fee", "process", "visits", "place", "online",
                "consult_phone", "legal_basis")
#: Fields of an FAQ entry worth having besides its question and answer.
FAQ_FIELDS = ("alternatives", "department", "keywords", "related", "updated")


@dataclass
class KnowledgeBase:
    """Guides and FAQ entries by id, in load order, with the import report that produced them.

    Iterating, ``len`` and :meth:`get` are about the guides (the items); :attr:`faqs` holds the
    FAQ entries and :meth:`records` both kinds."""

    guides: dict[str, Guide] = field(default_factory=dict)
    faqs: dict[str, FaqEntry] = field(default_factory=dict)
    report: ImportReport = field(default_factory=ImportReport)
    origin: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.guides)

    def __iter__(self) -> Iterator[Guide]:
        return iter(self.guides.values())

    def get(self, guide_id: str) -> Guide | None:
        return self.guides.get(guide_id)

    def records(self) -> list[Record]:
        """Every guide, then every FAQ entry (the order the index keeps them in)."""
        return [*self.guides.values(), *self.faqs.values()]

    @classmethod
    def from_guides(cls, guides: Iterable[Guide], faqs: Iterable[FaqEntry] = ()) -> KnowledgeBase:
        kb = cls()
        records: list[Record] = [*guides, *faqs]
        for record in records:
            kb._add(record, Problem("<memory>", 0, ""))
        kb._check_links()
        return kb

    @classmethod
    def load(cls, *roots: Path) -> KnowledgeBase:
        """Load every guide and FAQ file under ``roots``; problems go to ``report``, never raise per record."""
        kb = cls()
        for root in roots:
            for path in discover(root):
                part = read_file(path)
                kb.report.skipped.extend(part.skipped)
                kb.report.warnings.extend(part.warnings)
                kb.report.formats.update(part.formats)
                found: list[Record] = [*part.guides, *part.faqs]
                for record in found:
                    kb._add(record, Problem(str(path), 0, ""))
        kb._check_links()
        return kb

    def _add(self, record: Record, where: Problem) -> None:
        first = self.guides.get(record.id) or self.faqs.get(record.id)
        if first is not None:
            self.report.skipped.append(
                Problem(where.file, where.line, f"duplicate id '{record.id}' (first one kept: {first.title})"))
            return
        if isinstance(record, FaqEntry):
            self.faqs[record.id] = record
            self.report.faqs.append(record)
        else:
            self.guides[record.id] = record
            self.report.guides.append(record)
        self.origin[record.id] = where.file

    def _check_links(self) -> None:
        for record in self.records():
            for other in record.related:
                if other not in self.guides:
                    self.report.warnings.append(
                        Problem(self.origin[record.id], 0,
                                f"{record.id}: related item '{other}' is not in the knowledge base"))

    def coverage(self) -> dict[str, int]:
        """How many guides state each one-time-notification field (what an office should complete)."""
        return {name: sum(1 for g in self.guides.values() if getattr(g, name) not in (None, ()))
                for name in GUIDE_FIELDS}

    def faq_coverage(self) -> dict[str, int]:
        """How many FAQ entries have each optional field."""
        return {name: sum(1 for f in self.faqs.values() if getattr(f, name) not in (None, ())) for name in FAQ_FIELDS}

    def life_event(self, name: str) -> list[Guide]:
        """The guides bundled in one life event (一件事), in knowledge-base order."""
        return [g for g in self.guides.values() if name in g.life_events]


def fingerprint(*roots: Path) -> str:
    """A hash of every knowledge file's name and content: the index is stale when it changes."""
    digest = hashlib.sha256()
    for root in roots:
        for path in discover(root):
            digest.update(str(path.relative_to(root) if root.is_dir() else path.name).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
