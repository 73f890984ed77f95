"""Ranking the candidates of a question with a small learned model over per-candidate features.

The dense score alone (the best cosine among a record's vectors) misranks in two ways that
matter: short search-box keywords ("结构师改名", "法考查分") are best judged by how much of the
record's name they cover, which an embedding blurs; and a record with many vectors (the sample
items carry a dozen typical questions each) gets many chances to be nearest to anything. So each
candidate is described by a few features — its dense score per field (name, alias, typical
question, passage), the character TF-IDF score, how much of the query its names cover and how
much of its name the query covers, the longest run of characters they share, whether it is an
FAQ entry or a sample item, how many vectors it has, the query's length — and a logistic model
over them orders the candidates. It is fitted pairwise (a right answer against each wrong
candidate of the same question), which is what ordering needs: in cross-validation on the dev
splits that ranked the right record first for 77% of questions, against 74% for the same features
fitted one candidate at a time and 65% for the fixed blend.

The model (:class:`Ranker`) is a handful of numbers in ``knowledge/ranker.json``, fitted by
``make calibrate`` on the dev splits of the evaluation sets (:func:`fit_ranker`; the test splits
are never seen). Its features describe the match, not the knowledge base, so an office that
imports its own guides keeps it; it belongs to the embedding model whose scores it weighs, and
with another model (or without the file) the retriever falls back to the fixed blend it used
before (:data:`FALLBACK`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.errors import ConfigError

log = logging.getLogger(__name__)

#: Every feature a candidate is described by, in order (``features`` computes them).
FEATURES: tuple[str, ...] = (
    "dense", "d_name", "d_alias", "d_question", "d_passage", "lexical",
    "q_cover", "t_cover", "lcs_q", "lcs_abs", "sample", "faq", "log_vectors", "q_length", "t_length", "scope",
    "short_q_cover", "short_lcs_q", "short_t_cover", "dense_q_cover", "yes_no", "faq_yes_no",
    "how_to", "faq_how_to", "faq_long", "faq_with_item", "item_with_faq",
)
#: A question about a particular situation or permission ("能不能先办后补", "可以找人代办吗"): those are
#: what FAQ entries answer, where "身份证过期了怎么办" wants the item's whole one-time notification.
YES_NO = re.compile(r"吗|能不能|能否|可不可以|可以不|是否|会不会|要不要|行不行|有没有|需不需要|用不用|算不算")
#: Asking how to get the whole thing done, which the item's one-time notification answers.
HOW_TO = re.compile(r"怎么办理?$|如何办理?|怎么(?:弄|申请|换|补|领|交|提|注销|登记|开|上)|怎样办|办理流程|手续"
                    r"|需要什么材料|要什么材料|要带什么|去哪.{0,2}办|在哪.{0,2}办")
#: Queries of at most this many characters are search-box keywords: the short_* features see them.
SHORT_QUERY = 6
#: The fixed blend used without a fitted ranker: 85% dense, 15% lexical (and the scope bonus), scaled
#: so its differences are comparable with the ranker's log-odds (a 0.03 lead is about 0.45).
FALLBACK = {"dense": 0.85 * 15, "lexical": 0.15 * 15, "scope": 0.02 * 15}
#: What a ranker fitted by ``make calibrate`` records it was fitted on.
RERANK_FITTED_ON = "candidates of the dev splits"
#: Longest text compared character by character (longer questions are long anyway).
LCS_CHARS = 64


def _chars(text: str) -> list[str]:
    return [ch for ch in text if ch.isalnum()]


def longest_common_run(a: str, b: str) -> int:
    """Length of the longest run of characters ``a`` and ``b`` share.

    For each start in ``a`` only a run longer than the best so far is tried (a substring test in C),
    so a 20-character question costs about 25 such tests: difflib's ``SequenceMatcher`` gave the same
    lengths at ten times the cost, and this runs for every candidate of every question.
    """
    if not a or not b:
        return 0
    a, b = a[:LCS_CHARS], b[: LCS_CHARS * 4]
    best = 0
    for start in range(len(a) - 1, -1, -1):
        while start + best < len(a) and a[start: start + best + 1] in b:
            best += 1
    return best


def features(
    query: str, *, names: str, title: str, dense: Mapping[str, float], lexical: float, sample: bool, faq: bool,
    vectors: int, scope: float, sibling: bool = False,
) -> dict[str, float]:
    """One candidate's features.

    Args:
        query: the normalised (and synonym-expanded) question.
        names: the candidate's name and aliases, normalised and joined (what a keyword is matched against).
        title: its normalised name alone.
        dense: its best cosine per field ("name", "alias", "question", "passage"; absent fields 0).
        lexical: its character TF-IDF score; sample/faq: what it is; vectors: how many it has;
        scope: 1 when it is of the region or department the citizen named, else 0.
        sibling: for an FAQ entry, its item is among the candidates too; for a guide, an FAQ entry
            about it is (the entry then refines the item, or the item covers the question whole).
    """
    query_chars = _chars(query)
    title_chars = _chars(title)
    q_cover = sum(1 for ch in query_chars if ch in names) / max(1, len(query_chars))
    t_cover = sum(1 for ch in title_chars if ch in query) / max(1, len(title_chars))
    run = longest_common_run(query, names)
    lcs_q = run / max(1, len(query_chars))
    short = 1.0 if len(query_chars) <= SHORT_QUERY else 0.0
    best = max(dense.values()) if dense else 0.0
    yes_no = 1.0 if YES_NO.search(query) else 0.0
    how_to = 1.0 if HOW_TO.search(query) else 0.0
    is_faq = 1.0 if faq else 0.0
    return {
        "dense": best, "d_name": dense.get("name", 0.0), "d_alias": dense.get("alias", 0.0),
        "d_question": dense.get("question", 0.0), "d_passage": dense.get("passage", 0.0), "lexical": lexical,
        "q_cover": q_cover, "t_cover": t_cover, "lcs_q": min(1.0, lcs_q), "lcs_abs": min(run, 8) / 8,
        "sample": 1.0 if sample else 0.0, "faq": 1.0 if faq else 0.0, "log_vectors": math.log(max(1, vectors)),
        "q_length": math.log(len(query_chars) + 1), "t_length": math.log(len(title_chars) + 1), "scope": scope,
        "short_q_cover": short * q_cover, "short_lcs_q": short * min(1.0, lcs_q), "short_t_cover": short * t_cover,
        "dense_q_cover": best * q_cover, "yes_no": yes_no, "faq_yes_no": yes_no * is_faq,
        "how_to": how_to, "faq_how_to": how_to * is_faq,
        "faq_long": is_faq * (1.0 if len(query_chars) > 12 else 0.0),
        "faq_with_item": is_faq * (1.0 if sibling else 0.0),
        "item_with_faq": (1.0 - is_faq) * (1.0 if sibling else 0.0),
    }


def fallback_score(values: Mapping[str, float]) -> float:
    """The fixed blend (no fitted ranker): dense and lexical scores, plus the scope bonus."""
    return sum(weight * values[name] for name, weight in FALLBACK.items())


@dataclass(frozen=True)
class Ranker:
    """A linear score over standardised features; the difference of two candidates' scores is the
    log-odds that the first is the right one rather than the second."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    model: str
    fitted_on: str

    def score(self, values: Mapping[str, float]) -> float:
        return sum(w * (values[name] - m) / s for name, w, m, s
                   in zip(self.features, self.weights, self.mean, self.scale, strict=True))

    @classmethod
    def load(cls, path: Path, *, model: str) -> Ranker | None:
        """The fitted ranker, or None (with a warning) when absent or fitted for another model.

        Raises:
            ConfigError: when the file exists but cannot be used as written.
        """
        if not path.is_file():
            log.warning("no ranker at %s; ranking by the fixed dense/lexical blend (run `make calibrate`)", path)
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            ranker = cls(tuple(raw["features"]), tuple(float(w) for w in raw["weights"]),
                         tuple(float(m) for m in raw["mean"]), tuple(float(s) for s in raw["scale"]),
                         str(raw["model"]), str(raw.get("fitted_on", "")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a ranker file ({exc}); rerun `make calibrate` or delete it") from None
        unknown = set(ranker.features) - set(FEATURES)
        sizes = {len(ranker.features), len(ranker.weights), len(ranker.mean), len(ranker.scale)}
        if unknown or len(sizes) != 1:
            raise ConfigError(f"{path}: unknown or inconsistent features {sorted(unknown)}; rerun `make calibrate`")
        if ranker.model != model:
            log.warning("ranker %s was fitted for model %s, not %s; ranking by the fixed blend (run `make "
                        "calibrate`)", path, ranker.model, model)
            return None
        return ranker

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def fit_ranker(questions: Sequence[Sequence[tuple[Mapping[str, float], bool]]], *, model: str, fitted_on: str,
               c: float = 0.1, seed: int = 0) -> Ranker:
    """Fit on labelled candidate lists: for each question, (candidate features, is it a right answer).

    Pairwise: every right candidate against every wrong one of the same question, as a difference
    of standardised features, in a random direction (seeded) so both classes are present; a logistic
    regression without intercept on those differences gives the weights. Strong regularisation
    (``c``): a few hundred questions should teach only the broad weight of each feature."""
    import random

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    everything = np.array([[values[name] for name in FEATURES] for candidates in questions
                           for values, _ in candidates], dtype=np.float64)
    if not len(everything):
        raise ConfigError("fitting the ranker needs labelled candidate lists")
    mean, scale = everything.mean(axis=0), everything.std(axis=0)
    scale[scale == 0] = 1.0
    rng = random.Random(seed)
    diffs: list[np.ndarray] = []
    labels: list[int] = []
    for candidates in questions:
        right = [(np.array([v[n] for n in FEATURES]) - mean) / scale for v, ok in candidates if ok]
        wrong = [(np.array([v[n] for n in FEATURES]) - mean) / scale for v, ok in candidates if not ok]
        for good in right:
            for bad in wrong:
                forward = rng.random() < 0.5
                diffs.append(good - bad if forward else bad - good)
                labels.append(1 if forward else 0)
    if len(set(labels)) < 2:
        raise ConfigError("fitting the ranker needs questions whose candidates include right and wrong answers")
    clf = LogisticRegression(C=c, max_iter=5000, fit_intercept=False).fit(np.array(diffs), labels)
    return Ranker(FEATURES, tuple(round(float(w), 6) for w in clf.coef_[0]), tuple(round(float(m), 6) for m in mean),
                  tuple(round(float(s), 6) for s in scale), model,
                  f"{fitted_on}: {len(questions)} questions, {len(diffs)} pairs")
