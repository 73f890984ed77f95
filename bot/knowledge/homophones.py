"""Typing slips that sound right: "结婚正" for 结婚证, "身分证" for 身份证.

Why: most Chinese is typed through a pinyin input method (or spoken to the kiosk and transcribed),
so the commonest slip is not a wrong letter but the right sound with the wrong character. Such a
query shares too few characters with the guide for the lexical scores, and the encoder sees an
unknown word; the nothing-fits check then turns the citizen away although the item is obvious.

:meth:`Homophones.expand` appends to a query the knowledge base's own term for every run of
3–6 characters in it that is *pronounced* exactly like that term (tones ignored, each
character's usual reading: the one an input method is typed for) but differs from it in one
character (two in runs of five or more). It works as :class:`bot.knowledge.synonyms.Synonyms`
does: the term is appended and the citizen's words are kept. A run that is itself a known term
is left alone, so a correct word is never "corrected" into its homophone. Two-character item names
("护照", "社保") are matched too, but only by a run that is no dictionary word and whose characters the
dictionary cuts alone ("胡照过期了"; not "公式", not the "工证" of "社工证"). The terms are the
knowledge base's names (titles, aliases, synonym terms, and the dictionary words inside them),
built once when retrieval starts; the readings come from pypinyin's character table.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

#: Lengths of runs compared (shorter ones have too many true homophones: 公式/公示, 期限/期间).
MIN_RUN, MAX_RUN = 3, 6
#: A word found inside a name counts as a term only if jieba's dictionary knows it this well.
MIN_WORD_FREQ = 10
#: A polyphone-heavy run could have many spellings; beyond this many it is not looked up.
MAX_SPELLINGS = 16


@lru_cache(maxsize=1)
def _table() -> dict[int, str]:
    from pypinyin.pinyin_dict import pinyin_dict

    return pinyin_dict


@lru_cache(maxsize=8192)
def readings(char: str) -> tuple[str, ...]:
    """The toneless readings of one character (``()`` for anything that is not a Chinese character)."""
    raw = _table().get(ord(char))
    if not raw:
        return ()
    out = []
    for one in raw.split(","):
        bare = "".join(c for c in unicodedata.normalize("NFD", one) if not unicodedata.combining(c))
        if bare and bare not in out:
            out.append(bare)
    return tuple(out)


def spellings(text: str, *, usual_only: bool = False) -> list[tuple[str, ...]]:
    """Every toneless pinyin spelling of ``text`` (one reading per character), or [] when a
    character has no reading or there are more than :data:`MAX_SPELLINGS`. ``usual_only``: each
    character's usual (first-listed) reading only — what an input method typed it for."""
    options = [readings(c)[:1] if usual_only else readings(c) for c in text]
    if not all(options):
        return []
    count = 1
    for one in options:
        count *= len(one)
        if count > MAX_SPELLINGS:
            return []
    return [tuple(s) for s in itertools.product(*options)]


def _hanzi(text: str) -> bool:
    """Is ``text`` Chinese characters only (CJK unified ideographs)?"""
    return all("\u4e00" <= c <= "\u9fff" for c in text)


def _allowed_differences(length: int) -> int:
    return 1 if length < 5 else 2


@dataclass
class Homophones:
    """Known terms by spelling; :meth:`expand` adds the terms a query mis-typed."""

    by_spelling: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    terms: set[str] = field(default_factory=set)
    #: Two-character item names ("护照", "社保") by spelling, and the dictionary's words (and their
    #: prefixes): a two-character run is a slip for such a name only when it is none of them ("胡照";
    #: "公式" is a word).
    short: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    words: frozenset[str] | dict[str, int] = field(default_factory=frozenset)

    @classmethod
    def from_terms(cls, terms: Iterable[str]) -> Homophones:
        index: dict[tuple[str, ...], set[str]] = {}
        known: set[str] = set()
        for term in terms:
            term = term.strip()
            if not (MIN_RUN <= len(term) <= MAX_RUN) or term in known:
                continue
            known.add(term)
            for spelling in spellings(term, usual_only=True):
                index.setdefault(spelling, set()).add(term)
        return cls(index, known)

    def corrections(self, query: str) -> list[str]:
        """Known terms that runs of ``query`` sound like but mis-type, longest runs first."""
        if not self.by_spelling:
            return []
        found: list[str] = []
        # Runs inside a term the query spells right are not slips ("生育津贴" holds "生育津", which
        # sounds like 生育金): the positions of every known term in the query are covered from the start.
        covered: set[int] = set()
        for length in range(MIN_RUN, min(MAX_RUN, len(query)) + 1):
            for start in range(len(query) - length + 1):
                if query[start:start + length] in self.terms:
                    covered.update(range(start, start + length))
        for length in range(min(MAX_RUN, len(query)), MIN_RUN - 1, -1):
            for start in range(len(query) - length + 1):
                run = query[start:start + length]
                if run in self.terms or covered.issuperset(range(start, start + length)):
                    continue
                matches = {t for s in spellings(run, usual_only=True) for t in self.by_spelling.get(s, ())}
                for term in sorted(matches):
                    differences = sum(a != b for a, b in zip(run, term, strict=True))
                    if 0 < differences <= _allowed_differences(length) and term not in query and term not in found:
                        found.append(term)
                        covered.update(range(start, start + length))
        if self.short:
            found += self._short_corrections(query, covered, found)
        return found

    def _short_corrections(self, query: str, covered: set[int], found: list[str]) -> list[str]:
        """Two-character item names that two-character runs of ``query`` sound like. Only a run that is
        no dictionary word (nor the start of one) and whose characters the dictionary cuts alone is a
        slip: "胡照" cuts into 胡 / 照, while "工证" of "社工证" ends 社工 and starts another word. The
        query is cut only when some run sounds like a name (most questions have none)."""
        sounding = []
        for start in range(len(query) - 1):
            run = query[start:start + 2]
            if covered & {start, start + 1} or run in self.words or not _hanzi(run):
                continue
            terms = sorted({t for sp in spellings(run, usual_only=True) for t in self.short.get(sp, ())} - {run})
            if terms:
                sounding.append((start, terms))
        if not sounding:
            return []
        alone = self._single_characters(query)
        out: list[str] = []
        for start, terms in sounding:
            if not {start, start + 1} <= alone or covered & {start, start + 1}:
                continue
            for term in terms:
                if term not in query and term not in found and term not in out:
                    out.append(term)
                    covered.update((start, start + 1))
        return out

    @staticmethod
    def _single_characters(query: str) -> set[int]:
        """Positions of ``query`` jieba's dictionary cuts as one-character words."""
        import jieba

        alone: set[int] = set()
        position = 0
        for token in jieba.cut(query, HMM=False):
            if len(token) == 1:
                alone.add(position)
            position += len(token)
        return alone

    @classmethod
    def from_names(cls, names: Iterable[str], words: Iterable[str] = ()) -> Homophones:
        """Terms from the knowledge base's names (titles, aliases, synonym terms: each whole) and the
        dictionary words inside them (jieba, no guessed words; rare fragments such as 师资格 out)."""
        import jieba

        terms = set(words)
        short: dict[tuple[str, ...], set[str]] = {}
        for name in names:
            terms.add(name)
            if len(name) == 2 and _hanzi(name):
                for spelling in spellings(name, usual_only=True):
                    short.setdefault(spelling, set()).add(name)
            for word in jieba.cut_for_search(name, HMM=False):
                if len(word) >= MIN_RUN and jieba.dt.FREQ.get(word, 0) >= MIN_WORD_FREQ:
                    terms.add(word)
        found = cls.from_terms(sorted(terms))
        found.short, found.words = short, jieba.dt.FREQ
        return found

    def expand(self, query: str) -> str:
        """``query`` plus the terms it mis-typed (normalised text in), or ``query`` itself."""
        found = self.corrections(query)
        return f"{query} {' '.join(found)}" if found else query
