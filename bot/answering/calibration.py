"""Knowing when nothing fits: a small calibrated model over the retrieval's own signals.

A single score threshold cannot tell "驾照到期怎么换" (a short question that matches a
title well) from "今天天气怎么样" (which also lands near *some* guide, because every
embedding lands near something). A logistic model over a handful of signals does better:
the top guide's dense and lexical scores, how far it leads the next one, how much of its
title the question covers, the best lexical hit anywhere, and the question's length.

The model is fitted on the **dev** splits of the evaluation sets by ``make calibrate`` and
stored as ``knowledge/calibration.json`` (a few numbers, readable and diffable). Its cut is
chosen on cross-validated dev predictions so that at most ``MAX_LOST`` of answerable dev
questions are turned away. The frozen test splits are never seen.

A calibration belongs to the knowledge base it was fitted on: the file records the index's
knowledge fingerprint and the embedding model. Applied to another knowledge base (an office
that imported its own region's guides) or another model, the retriever warns at start and falls
back to the plain ``GUIDE_MIN_SCORE`` threshold, until the office calibrates its own
(``knowledge calibrate``, :mod:`bot.answering.selfcalibrate`, needs no hand-labelled questions).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.errors import ConfigError

log = logging.getLogger(__name__)

#: The signals, in order. ``bot.answering.retrieval`` computes them for every search: the ranker's score of
#: the top candidate and its lead over the next, the top candidate's dense and lexical scores and
#: how much of the query its names cover (and of its name the query covers, and the longest run of
#: characters they share), the best lexical score anywhere, the question's length and whether it
#: is a short keyword.
FEATURES: tuple[str, ...] = ("top", "margin", "dense", "lexical", "q_cover", "t_cover", "lcs_q", "log_length",
                             "lexical_max", "short")
#: Inverse regularisation strength of the logistic fit.
C = 1.0
#: The most answerable dev questions the cut may turn away ("lost").
MAX_LOST = 0.025


@dataclass(frozen=True)
class NothingFits:
    """Logistic model of P(no guide answers the question)."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    cut: float
    model: str
    fitted_on: str
    #: The knowledge fingerprint (index manifest) of the knowledge base it was fitted on.
    knowledge: str = ""

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.intercept + sum(w * values[name] for name, w in zip(self.features, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def says_none(self, values: Mapping[str, float]) -> bool:
        return self.probability(values) >= self.cut

    @classmethod
    def load(cls, path: Path, *, model: str, knowledge: str | None = None) -> NothingFits | None:
        """The stored model, or None (with a warning) when absent or fitted for another model or
        another knowledge base (``knowledge``: the index's fingerprint; None skips that check).

        Raises:
            ConfigError: when the file exists but cannot be used as written.
        """
        if not path.is_file():
            log.warning("no calibration at %s; using the GUIDE_MIN_SCORE threshold (run `make calibrate`)", path)
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            fitted = cls(
                features=tuple(raw["features"]), weights=tuple(float(w) for w in raw["weights"]),
                intercept=float(raw["intercept"]), cut=float(raw["cut"]), model=str(raw["model"]),
                fitted_on=str(raw.get("fitted_on", "")), knowledge=str(raw.get("knowledge", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a calibration file ({exc}); rerun `make calibrate` or delete it") from None
        unknown = set(fitted.features) - set(FEATURES)
        if unknown or len(fitted.weights) != len(fitted.features):
            log.warning("calibration %s was fitted on signals this version no longer computes (%s); using the "
                        "GUIDE_MIN_SCORE threshold until you rerun `make calibrate` or `knowledge calibrate`",
                        path, ", ".join(sorted(unknown)) or "a different count")
            return None
        if fitted.model != model:
            log.warning("calibration %s was fitted for model %s, not %s; using the GUIDE_MIN_SCORE threshold "
                        "(run `knowledge calibrate`)", path, fitted.model, model)
            return None
        if knowledge is not None and fitted.knowledge != knowledge:
            log.warning("calibration %s was fitted on another knowledge base (fingerprint %s…, this one %s…); "
                        "using the GUIDE_MIN_SCORE threshold until you run `knowledge calibrate` for this one",
                        path, fitted.knowledge[:12] or "none", knowledge[:12])
            return None
        return fitted

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _fit(rows: Sequence[Mapping[str, float]], labels: Sequence[bool]) -> tuple[list[float], float]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[row[name] for name in FEATURES] for row in rows], dtype=np.float64)
    # Standardise so the regularisation treats every signal alike, then fold the scaling back
    # into plain weights: the stored model needs nothing but a dot product.
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit((x - mean) / scale, list(labels))
    weights = clf.coef_[0] / scale
    intercept = float(clf.intercept_[0] - (clf.coef_[0] * mean / scale).sum())
    return [float(w) for w in weights], intercept


def fit_nothing_fits(
    rows: Sequence[Mapping[str, float]], unanswerable: Sequence[bool], *, model: str, knowledge: str = "",
    fitted_on: str = "dev split", folds: int = 5, seed: int = 0, max_lost: float = MAX_LOST,
) -> tuple[NothingFits, dict[str, float]]:
    """Fit on dev questions' signals; pick the cut on cross-validated predictions.

    Returns the model (fitted on all rows) and the cross-validated figures at its cut.
    """
    if sum(unanswerable) < folds or len(rows) - sum(unanswerable) < folds:
        raise ConfigError("calibration needs at least a few answerable and a few unanswerable dev questions")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held_out = [0.0] * len(rows)
    for fold in range(folds):
        test = [i for n, i in enumerate(order) if n % folds == fold]
        train = [i for n, i in enumerate(order) if n % folds != fold]
        weights, intercept = _fit([rows[i] for i in train], [unanswerable[i] for i in train])
        part = NothingFits(FEATURES, tuple(weights), intercept, 0.5, model, "")
        for i in test:
            held_out[i] = part.probability(rows[i])
    answerable_p = sorted(p for p, u in zip(held_out, unanswerable, strict=True) if not u)
    unanswerable_p = [p for p, u in zip(held_out, unanswerable, strict=True) if u]
    # The lowest cut that turns away at most MAX_LOST of answerable questions.
    allowed = math.floor(max_lost * len(answerable_p))
    cut = answerable_p[-allowed - 1] + 1e-6 if allowed < len(answerable_p) else 1.0
    cut = min(max(cut, 0.5), 0.99)
    figures = {
        "cv_unanswerable_recognised": round(sum(p >= cut for p in unanswerable_p) / len(unanswerable_p), 4),
        "cv_answerable_lost": round(sum(p >= cut for p in answerable_p) / len(answerable_p), 4),
    }
    weights, intercept = _fit(rows, unanswerable)
    fitted_on = f"{fitted_on}: {len(answerable_p)} answerable, {len(unanswerable_p)} unanswerable questions"
    return NothingFits(FEATURES, tuple(round(w, 6) for w in weights), round(intercept, 6), round(cut, 6), model,
                       fitted_on, knowledge), figures
