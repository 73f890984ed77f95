"""Finding the guide a citizen means.

Hybrid scoring: the dense score (cosine of the e5 embedding against a guide's best
vector) finds paraphrases; a character n-gram TF-IDF score over names, aliases and typical
questions rescues exact terms the embedding blurs (证件 names, 公积金, item codes).
A region or office the citizen names ("在广州", "公安局") nudges the ranking towards
guides of that place or office (:mod:`bot.scope`). Then one of three outcomes:

* ``clear``: answer the best guide;
* ``ambiguous``: the top candidates are too close to call — offer them as buttons;
* ``none``: nothing fits — say so and give the next step (phone, window). This is decided
  by the calibrated model of :mod:`bot.calibration` when one is present, otherwise by the
  ``GUIDE_MIN_SCORE`` threshold.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from bot.calibration import NothingFits
from bot.embedding.encoder import Encoder
from bot.index import LoadedIndex
from bot.knowledge.model import Guide
from bot.scope import Mentions, Scope
from bot.settings import Settings
from bot.synonyms import Synonyms
from bot.text import has_content, normalize

Status = Literal["clear", "ambiguous", "none", "empty"]

#: Weight of the lexical score in the combined score (the dense score has 1 - this).
LEXICAL_WEIGHT = 0.15
#: How many nearest vectors to pull from FAISS before grouping them by guide.
DENSE_POOL = 64
#: Added to the score of a guide of the region or department the citizen named.
SCOPE_BOOST = 0.02


@dataclass(frozen=True)
class Match:
    """One candidate guide and why it scored as it did."""

    guide: Guide
    score: float
    dense: float
    lexical: float


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one query."""

    query: str
    status: Status
    matches: list[Match] = field(default_factory=list)
    seconds: float = 0.0
    #: The signals the "nothing fits" decision saw (see ``bot.calibration.FEATURES``).
    signals: dict[str, float] = field(default_factory=dict)
    #: P(nothing fits) from the calibrated model, when one is in use.
    p_none: float | None = None
    mentions: Mentions = field(default_factory=Mentions)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


_RUNS = re.compile(r"[a-z0-9]+|[^\sa-z0-9]+")


def _terms(text: str) -> list[str]:
    """Lexical terms: Chinese as character 1- and 2-grams, Latin words and numbers whole.

    Single Latin letters would make every English word match every guide with a Latin
    abbreviation in its name (ATA, CNAS, TBT); whole words do not.
    """
    out: list[str] = []
    for run in _RUNS.findall(text):
        if run[0].isascii() and run[0].isalnum():
            out.append(run)
            continue
        chars = [ch for ch in run if ch.isalnum()]
        out.extend(chars)
        out.extend(a + b for a, b in pairwise(chars))
    return out


class _Lexical:
    """Character 1-2-gram TF-IDF over each name and alias of every guide.

    Like the dense side, a guide scores by its best text, so a short exact alias ("扯证")
    counts fully. Typical questions are left to the dense side: their shared wording
    ("要多少钱", "去哪里办") would make a bare aspect question look like a match.
    """

    def __init__(self, guides: list[Guide]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts: list[str] = []
        rows: list[int] = []
        for position, guide in enumerate(guides):
            for text in (guide.title, *guide.aliases):
                texts.append(normalize(text, limit=0))
                rows.append(position)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._count = len(guides)
        self._vectorizer = TfidfVectorizer(analyzer=_terms, sublinear_tf=True)
        self._matrix: Any = self._vectorizer.fit_transform(texts)

    def scores(self, query: str) -> np.ndarray:
        vector = self._vectorizer.transform([query])
        per_text = np.asarray((self._matrix @ vector.T).toarray()).ravel()
        best = np.zeros(self._count, dtype=np.float64)
        np.maximum.at(best, self._rows, per_text)
        return best


class Retriever:
    """Search over a loaded index with one encoder. Build once; share across requests."""

    def __init__(self, index: LoadedIndex, encoder: Encoder, settings: Settings) -> None:
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self.guides = index.guides
        self.by_id = {g.id: g for g in index.guides}
        self._lexical = _Lexical(index.guides)
        self._titles = [frozenset(ch for ch in normalize(g.title, limit=0) if ch.isalnum()) for g in index.guides]
        self.synonyms = Synonyms.load(settings.synonyms)
        self.scope = Scope(index.guides)
        self.nothing_fits = NothingFits.load(settings.calibration, model=encoder.name)

    def search(
        self, text: str, *, k: int | None = None, region: str | None = None, department: str | None = None
    ) -> SearchResult:
        """Rank guides for ``text`` and decide clear / ambiguous / none.

        ``region`` and ``department`` are names the citizen gave earlier in the conversation;
        names in ``text`` itself are found without them.
        """
        started = time.perf_counter()
        query = normalize(text)
        if not has_content(query):
            return SearchResult(query=query, status="empty")
        k = k or self.settings.max_candidates
        expanded = self.synonyms.expand(query)
        mentions = self.scope.mentions(expanded, region=region, department=department)
        vector = self.encoder.encode([expanded], kind="query")[0]
        dense = self.index.search(vector, DENSE_POOL)
        lexical = self._lexical.scores(expanded)
        # Candidates: the dense pool plus the best lexical hits the embedding may have missed.
        candidates = set(dense)
        candidates.update(int(i) for i in np.argsort(-lexical)[:16] if lexical[i] > 0)
        floor = min(dense.values()) if dense else 0.0
        scored: list[tuple[float, int, float, float]] = []
        for position in candidates:
            d = dense.get(position, floor)
            lex = float(lexical[position])
            score = (1 - LEXICAL_WEIGHT) * d + LEXICAL_WEIGHT * lex
            if mentions:
                fits = self.scope.fits_region(position, mentions.regions)
                if fits is False:
                    continue
                if fits or self.scope.fits_department(position, mentions.departments):
                    score += SCOPE_BOOST
            scored.append((score, position, d, lex))
        scored.sort(reverse=True)
        signals = self._signals(query, expanded, scored, float(lexical.max()) if len(lexical) else 0.0)
        matches = [Match(self.guides[p], round(s, 4), round(d, 4), round(x, 4)) for s, p, d, x in scored[:k]]
        p_none = self.nothing_fits.probability(signals) if self.nothing_fits and signals else None
        return SearchResult(
            query=query, status=self._decide(matches, p_none), matches=matches,
            seconds=time.perf_counter() - started, signals=signals, p_none=p_none, mentions=mentions,
        )

    def _signals(
        self, query: str, expanded: str, scored: list[tuple[float, int, float, float]], lexical_max: float
    ) -> dict[str, float]:
        """The inputs of the "nothing fits" decision (names in ``bot.calibration.FEATURES``)."""
        if not scored:
            return {}
        chars = set(expanded)

        def cover(position: int) -> float:
            title = self._titles[position]
            return sum(1 for ch in title if ch in chars) / max(1, len(title))

        top = scored[0]
        return {
            "dense": top[2],
            "lexical": top[3],
            "margin": top[0] - scored[1][0] if len(scored) > 1 else top[0],
            "log_length": math.log(len(query) + 1),
            "lexical_max": lexical_max,
            "cover_max": max(cover(p) for _, p, _, _ in scored[:32]),
            "cover": cover(top[1]),
        }

    def _decide(self, matches: list[Match], p_none: float | None) -> Status:
        if not matches:
            return "none"
        if self.nothing_fits is not None and p_none is not None:
            if p_none >= self.nothing_fits.cut:
                return "none"
        elif matches[0].score < self.settings.min_score:
            return "none"
        if len(matches) > 1 and matches[0].score - matches[1].score < self.settings.clear_margin:
            return "ambiguous"
        return "clear"
