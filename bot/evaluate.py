"""Measure retrieval on a labelled question set, next to two lexical baselines.

``make eval`` runs this on the frozen test split of ``knowledge/eval/questions.jsonl``
and prints, for each system: top-1, top-5 and MRR over answerable questions, the share of
unanswerable questions recognised as such, the share of answerable questions wrongly
declared unanswerable ("lost"), and median / p95 latency per query.

Baselines, computed in the same run over the same guides:

* ``tfidf``: character 1-3-gram TF-IDF over each guide's title, aliases and questions;
* ``bm25``: Okapi BM25 over jieba tokens of the same text.

A baseline has no built-in notion of "nothing fits", so its threshold is calibrated on the
dev split (the best recognised-minus-lost) and then applied to the test split.

The assistant decides "nothing fits" with the model of :mod:`bot.calibration`, which
``--fit-calibration`` (``make calibrate``) fits on the dev split and writes to
``GUIDE_CALIBRATION``. Nothing is ever fitted or tuned on the test split.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import BotError, KnowledgeError
from bot.knowledge.model import Guide
from bot.settings import ROOT, load_settings
from bot.text import normalize

DEFAULT_QUESTIONS = ROOT / "knowledge" / "eval" / "questions.jsonl"
RANK_DEPTH = 10


@dataclass(frozen=True)
class Question:
    question: str
    expected: tuple[str, ...]
    style: str
    split: str


@dataclass(frozen=True)
class Ranked:
    """One system's answer to one question: guide ids best first, the top score, its verdict."""

    ids: list[str]
    top_score: float
    none: bool
    seconds: float


@dataclass(frozen=True)
class Figures:
    system: str
    questions: int
    top1: float
    top5: float
    mrr: float
    unanswerable_recognised: float
    answerable_lost: float
    median_ms: float
    p95_ms: float
    threshold: float | None = None


def load_questions(path: Path) -> list[Question]:
    """Read the question set; every line must have question, expected, style and split."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            out.append(Question(raw["question"], tuple(raw["expected"]), raw["style"], raw["split"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise KnowledgeError(f"{path}:{number}: not a valid evaluation question ({exc})") from None
    return out


def figures(system: str, questions: Sequence[Question], ranked: Sequence[Ranked], threshold: float | None) -> Figures:
    """The metrics for one system over one split."""
    answerable = [(q, r) for q, r in zip(questions, ranked, strict=True) if q.expected]
    unanswerable = [r for q, r in zip(questions, ranked, strict=True) if not q.expected]

    def rank(q: Question, r: Ranked) -> int | None:
        for position, guide_id in enumerate(r.ids[:RANK_DEPTH], 1):
            if guide_id in q.expected:
                return position
        return None

    ranks = [rank(q, r) for q, r in answerable]
    n = max(1, len(answerable))
    ms = sorted(r.seconds * 1000 for r in ranked)
    return Figures(
        system=system,
        questions=len(questions),
        top1=round(sum(1 for x in ranks if x == 1) / n, 4),
        top5=round(sum(1 for x in ranks if x is not None and x <= 5) / n, 4),
        mrr=round(sum(1 / x for x in ranks if x) / n, 4),
        unanswerable_recognised=round(sum(1 for r in unanswerable if r.none) / max(1, len(unanswerable)), 4),
        answerable_lost=round(sum(1 for _, r in answerable if r.none) / n, 4),
        median_ms=round(statistics.median(ms), 2) if ms else 0.0,
        p95_ms=round(ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)], 2) if ms else 0.0,
        threshold=threshold,
    )


def best_threshold(questions: Sequence[Question], ranked: Sequence[Ranked]) -> float:
    """The score cut that maximises (unanswerable recognised - answerable lost) on these questions."""
    scores = sorted({round(r.top_score, 4) for r in ranked})
    best, best_value = 0.0, -math.inf
    answerable = [r.top_score for q, r in zip(questions, ranked, strict=True) if q.expected]
    unanswerable = [r.top_score for q, r in zip(questions, ranked, strict=True) if not q.expected]
    for cut in scores:
        recognised = sum(1 for s in unanswerable if s < cut) / max(1, len(unanswerable))
        lost = sum(1 for s in answerable if s < cut) / max(1, len(answerable))
        # Losing a citizen's real question costs more than answering a joke with a guide.
        value = recognised - 3 * lost
        if value > best_value:
            best, best_value = cut, value
    return best


# --- baselines -----------------------------------------------------------------------------


def _guide_doc(guide: Guide) -> str:
    return normalize(" ".join((guide.title, *guide.aliases, *guide.questions)), limit=0)


class TfidfBaseline:
    """Character 1-3-gram TF-IDF cosine."""

    name = "tfidf"

    def __init__(self, guides: Sequence[Guide]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.ids = [g.id for g in guides]
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform([_guide_doc(g) for g in guides])

    def scores(self, text: str) -> np.ndarray:
        vector = self.vectorizer.transform([normalize(text)])
        return np.asarray((self.matrix @ vector.T).toarray()).ravel()


class Bm25Baseline:
    """Okapi BM25 (k1 1.5, b 0.75) over jieba tokens."""

    name = "bm25"

    def __init__(self, guides: Sequence[Guide], k1: float = 1.5, b: float = 0.75) -> None:
        import jieba

        jieba.setLogLevel(60)
        self._cut = jieba.lcut_for_search
        self.ids = [g.id for g in guides]
        docs = [self._tokens(_guide_doc(g)) for g in guides]
        self.k1, self.b = k1, b
        self.lengths = np.array([len(d) for d in docs], dtype=np.float64)
        self.avg = float(self.lengths.mean()) if len(docs) else 1.0
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for position, doc in enumerate(docs):
            for token, count in Counter(doc).items():
                self.postings.setdefault(token, []).append((position, count))
        n = len(docs)
        self.idf = {t: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}

    def _tokens(self, text: str) -> list[str]:
        return [t for t in self._cut(text) if t.strip() and any(ch.isalnum() for ch in t)]

    def scores(self, text: str) -> np.ndarray:
        out = np.zeros(len(self.ids), dtype=np.float64)
        for token in set(self._tokens(normalize(text))):
            idf = self.idf.get(token)
            if idf is None:
                continue
            for position, tf in self.postings[token]:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[position] / self.avg)
                out[position] += idf * tf * (self.k1 + 1) / (tf + norm)
        return out


def _rank_baseline(system: TfidfBaseline | Bm25Baseline, questions: Sequence[Question]) -> list[Ranked]:
    out = []
    for q in questions:
        started = time.perf_counter()
        scores = system.scores(q.question)
        order = np.argsort(-scores)[:RANK_DEPTH]
        top = float(scores[order[0]]) if len(order) else 0.0
        out.append(Ranked([system.ids[i] for i in order], top, False, time.perf_counter() - started))
    return out


def _apply_threshold(ranked: Sequence[Ranked], cut: float) -> list[Ranked]:
    return [Ranked(r.ids, r.top_score, r.top_score < cut, r.seconds) for r in ranked]


# --- the assistant's own retrieval ---------------------------------------------------------


def _rank_assistant(search: Callable[[str], object], questions: Sequence[Question]) -> list[Ranked]:
    out = []
    for q in questions:
        started = time.perf_counter()
        result = search(q.question)
        seconds = time.perf_counter() - started
        matches = getattr(result, "matches", [])
        status = getattr(result, "status", "none")
        top = matches[0].score if matches else 0.0
        out.append(Ranked([m.guide.id for m in matches], top, status in ("none", "empty"), seconds))
    return out


def fit_calibration(service: Any, dev: Sequence[Question], path: Path) -> dict[str, Any]:
    """Fit the "nothing fits" model on the dev split, save it, and put it to use in ``service``."""
    from bot.calibration import fit_nothing_fits

    results = [service.search(q.question) for q in dev]
    kept = [(q, r) for q, r in zip(dev, results, strict=True) if r.signals]
    model, cv = fit_nothing_fits([r.signals for _, r in kept], [not q.expected for q, _ in kept],
                                 model=service.retriever.encoder.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    service.retriever.nothing_fits = model
    return {"path": str(path), "cut": model.cut, **cv}


def run(questions_path: Path, split: str, calibrate: bool, fit: bool = False) -> dict[str, Any]:
    from bot.service import GuideService

    settings = load_settings()
    service = GuideService.from_settings(settings.with_(max_candidates=RANK_DEPTH))
    guides = service.retriever.guides
    known = {g.id for g in guides}
    questions = load_questions(questions_path)
    unknown = sorted({e for q in questions for e in q.expected} - known)
    if unknown:
        raise KnowledgeError(f"{questions_path}: expected ids not in the index: {', '.join(unknown[:5])}")
    dev = [q for q in questions if q.split == "dev"]
    chosen = [q for q in questions if q.split == split]
    if not chosen:
        raise KnowledgeError(f"{questions_path}: no questions in split '{split}'")
    service.search("预热")  # the first encode allocates buffers; keep it out of the latency figures
    calibration = fit_calibration(service, dev, settings.calibration) if fit else None

    results: list[Figures] = []
    ours = _rank_assistant(service.search, chosen)
    fitted = service.retriever.nothing_fits
    results.append(figures("assistant (hybrid)", chosen, ours, fitted.cut if fitted else settings.min_score))
    suggestion = None
    if calibrate and dev:
        dev_ranked = _rank_assistant(service.search, dev)
        suggestion = best_threshold(dev, dev_ranked)
    for baseline in (TfidfBaseline(guides), Bm25Baseline(guides)):
        cut = best_threshold(dev, _rank_baseline(baseline, dev)) if dev else 0.0
        ranked = _apply_threshold(_rank_baseline(baseline, chosen), cut)
        results.append(figures(baseline.name, chosen, ranked, round(cut, 4)))

    by_style: dict[str, dict[str, float]] = {}
    for style in sorted({q.style for q in chosen}):
        picked = [(q, r) for q, r in zip(chosen, ours, strict=True) if q.style == style]
        f = figures(style, [q for q, _ in picked], [r for _, r in picked], None)
        by_style[style] = {"n": len(picked), "top1": f.top1, "top5": f.top5,
                           "recognised" if style == "unanswerable" else "lost":
                           f.unanswerable_recognised if style == "unanswerable" else f.answerable_lost}
    misses = [
        {"question": q.question, "expected": list(q.expected), "got": r.ids[:3], "score": round(r.top_score, 4),
         "none": r.none}
        for q, r in zip(chosen, ours, strict=True)
        if (q.expected and (not r.ids or r.ids[0] not in q.expected or r.none)) or (not q.expected and not r.none)
    ]
    return {
        "split": split, "questions": len(chosen), "guides": len(guides),
        "model": service.retriever.encoder.name,
        "systems": [asdict(f) for f in results], "by_style": by_style,
        "suggested_min_score_from_dev": suggestion, "misses": misses,
        "nothing_fits": (f"calibrated model (cut {fitted.cut:.3f})" if fitted else "GUIDE_MIN_SCORE threshold"),
        "calibration_fitted": calibration,
    }


def print_report(report: dict[str, Any]) -> None:
    """The figures as a table on stdout."""
    print(f"split {report['split']}: {report['questions']} questions over {report['guides']} guides "
          f"(model {report['model']})")
    print(f"{'system':<20}{'top1':>7}{'top5':>7}{'MRR':>7}{'unans.':>8}{'lost':>7}{'p50 ms':>9}{'p95 ms':>9}")
    for s in report["systems"]:
        print(f"{s['system']:<20}{s['top1']:>7.3f}{s['top5']:>7.3f}{s['mrr']:>7.3f}"
              f"{s['unanswerable_recognised']:>8.3f}{s['answerable_lost']:>7.3f}"
              f"{s['median_ms']:>9.1f}{s['p95_ms']:>9.1f}")
    print(f"nothing fits decided by: {report['nothing_fits']}")
    if report.get("calibration_fitted"):
        c = report["calibration_fitted"]
        print(f"calibration fitted on dev and written to {c['path']}: cross-validated on dev, "
              f"unanswerable recognised {c['cv_unanswerable_recognised']}, answerable lost {c['cv_answerable_lost']}")
    print("by style (assistant):")
    for style, f in report["by_style"].items():
        print(f"  {style:<14} " + "  ".join(f"{k} {v}" for k, v in f.items()))
    if report.get("suggested_min_score_from_dev") is not None:
        print(f"suggested GUIDE_MIN_SCORE from the dev split: {report['suggested_min_score_from_dev']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--calibrate", action="store_true", help="also suggest GUIDE_MIN_SCORE from the dev split")
    parser.add_argument("--fit-calibration", action="store_true",
                        help="fit the 'nothing fits' model on the dev split and write GUIDE_CALIBRATION first")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "eval.json", help="where to write figures")
    parser.add_argument("--misses", type=int, default=15, help="how many misses to print")
    args = parser.parse_args(argv)
    try:
        report = run(args.questions, args.split, args.calibrate, args.fit_calibration)
    except BotError as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    print_report(report)
    misses = report["misses"]
    if args.misses and misses:
        print(f"first {min(args.misses, len(misses))} of {len(misses)} misses:")
        for miss in misses[: args.misses]:
            print(f"  {miss['question']}  expected {miss['expected']}  got {miss['got'][:1]} "
                  f"score {miss['score']} none={miss['none']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
