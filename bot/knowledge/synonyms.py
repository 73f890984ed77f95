"""Query expansion from an editable synonym list (``knowledge/synonyms.txt``).

Citizens say 驾照, 红本本, "ID card" or 户扣; guides say 驾驶证, 不动产权证书, 身份证, 户口.
The list maps such words to the official term, and :meth:`Synonyms.expand` appends the
official term to a question that contains one — the question itself is kept, so nothing
the citizen said is lost. The deploying office edits the list without touching code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.errors import KnowledgeError
from bot.knowledge.text import normalize


@dataclass(frozen=True)
class Synonyms:
    """Variant -> official term pairs, longest variant first."""

    pairs: tuple[tuple[re.Pattern[str], str], ...] = ()

    @classmethod
    def load(cls, path: Path) -> Synonyms:
        """Read ``official: variant, variant`` lines; '#' starts a comment.

        Raises:
            KnowledgeError: naming the file and line of a malformed entry.
        """
        if not path.is_file():
            return cls()
        entries: list[tuple[str, str]] = []
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            official, sep, variants = line.partition(":")
            if not sep or not official.strip() or not variants.strip():
                raise KnowledgeError(f"{path}:{number}: expected 'official term: variant, variant, ...'")
            term = normalize(official, limit=0)
            for variant in re.split(r"[,，、]", variants):
                clean = normalize(variant, limit=0)
                if clean and clean != term:
                    entries.append((clean, term))
        entries.sort(key=lambda e: len(e[0]), reverse=True)
        return cls(tuple((_pattern(variant), term) for variant, term in entries))

    def expand(self, query: str) -> str:
        """``query`` plus the official terms of the variants it contains (normalised text in)."""
        added: list[str] = []
        for pattern, term in self.pairs:
            if term not in query and term not in added and pattern.search(query):
                added.append(term)
        return f"{query} {' '.join(added)}" if added else query


def _pattern(variant: str) -> re.Pattern[str]:
    # Latin words match whole words only ("tax" must not fire inside "taxi"); Chinese has no
    # word boundaries, so a Chinese variant matches anywhere.
    if variant.isascii():
        return re.compile(rf"(?<![a-z]){re.escape(variant)}(?![a-z])")
    return re.compile(re.escape(variant))
