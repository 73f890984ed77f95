"""Measure retrieval on the labelled question sets, next to two lexical baselines.

``make eval`` runs this on the frozen test split of every set in :data:`EVAL_SETS` and prints,
for each system: top-1, top-5 and MRR over answerable questions, the share of unanswerable
questions recognised as such, the share of answerable questions wrongly declared unanswerable
("lost"), and median / p95 latency per query; then the sets side by side with the targets, and
each set by style and by query length (≤4, 5–10, >10 characters).

* ``original`` (``knowledge/eval/questions.jsonl``): 560 questions, mostly about the sample items;
* ``catalogue`` (``knowledge/eval/catalogue/``): 932 queries over 440 items drawn at random from
  the whole knowledge base, 56% short keyword queries, written blind from titles only;
* ``faq`` (``knowledge/eval/faq/``): 455 questions in citizens' words about the FAQ entries,
  written blind from the entries' canonical questions only.

Baselines, computed in the same run over the same guides:

* ``tfidf``: character 1-3-gram TF-IDF over each guide's title, aliases and questions;
* ``bm25``: Okapi BM25 over jieba tokens of the same text.

A baseline has no built-in notion of "nothing fits", so its threshold is calibrated on the
dev split (the best recognised-minus-lost) and then applied to the test split.

The assistant decides "nothing fits" with the model of :mod:`bot.answering.calibration`, which
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bot.answering.retrieval import names_of
from bot.errors import BotError, KnowledgeError
from bot.knowledge.model import FaqEntry, Guide, Record
from bot.knowledge.text import normalize
from bot.settings import ROOT, load_settings

DEFAULT_QUESTIONS = ROOT / "knowledge" / "eval" / "questions.jsonl"
#: The labelled sets, by name (each with a frozen test split and a dev split to tune on).
EVAL_SETS: dict[str, Path] = {
    "original": DEFAULT_QUESTIONS,
    "catalogue": ROOT / "knowledge" / "eval" / "catalogue" / "questions.jsonl",
    "faq": ROOT / "knowledge" / "eval" / "faq" / "questions.jsonl",
}
RANK_DEPTH = 10
#: The targets the sets are measured against (issue 12), shown beside the figures.
TARGETS = {"top1": 0.90, "top5": 0.98, "unanswerable_recognised": 0.90, "answerable_lost": 0.03,
           "short_top1": 0.85, "short_lost": 0.05, "p95_ms": 30.0}
#: Questions of at most this many characters count as short (search-box keywords).
SHORT = 6
LENGTH_BUCKETS = (("≤4", 0, 4), ("5–10", 5, 10), (">10", 11, 10**6))


def length_bucket(text: str) -> str:
    n = len(text.strip())
    return next(name for name, low, high in LENGTH_BUCKETS if low <= n <= high)


@dataclass(frozen=True)
class Question:
    question: str
    expected: tuple[str, ...]
    style: str
    split: str
    set: str = ""


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


def load_questions(path: Path, name: str = "") -> list[Question]:
    """Read a question set; every line must have question, expected, style and split."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            out.append(Question(raw["question"], tuple(raw["expected"]), raw["style"], raw["split"], name))
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


def _guide_doc(record: Record) -> str:
    questions = record.questions if isinstance(record, Guide) else (record.answer,)
    return normalize(" ".join((*names_of(record), *questions)), limit=0)


class TfidfBaseline:
    """Character 1-3-gram TF-IDF cosine."""

    name = "tfidf"

    def __init__(self, guides: Sequence[Record]) -> None:
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

    def __init__(self, guides: Sequence[Record], k1: float = 1.5, b: float = 0.75) -> None:
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
        out.append(Ranked([m.item.id for m in matches], top, status in ("none", "empty"), seconds))
    return out


def fit_ranking(service: Any, dev: Sequence[Question], path: Path, folds: int = 5) -> dict[str, Any]:
    """Fit the ranker on the dev questions' candidates (:func:`bot.answering.ranking.fit_ranker`), save it and put
    it to use; report its cross-validated top-1 on dev beside the fixed blend's."""
    from bot.answering.ranking import RERANK_FITTED_ON, fit_ranker
    from bot.answering.retrieval import RERANK

    retriever = service.retriever
    retriever.ranker = None  # candidates and features as the fixed blend finds them
    lists: list[tuple[Question, list[tuple[dict[str, float], bool]]]] = []
    for q in dev:
        if not q.expected:
            continue
        result = service.search(q.question, k=RERANK)
        candidates = [(m.features, m.item.id in q.expected) for m in result.matches]
        if any(label for _, label in candidates):
            lists.append((q, candidates))
    name = retriever.encoder.name
    fitted_on = f"{RERANK_FITTED_ON} of {', '.join(sorted({q.set for q in dev}))}"
    hits = {"ranker": 0, "blend": 0}
    for fold in range(folds):
        train = [c for i, (_, c) in enumerate(lists) if i % folds != fold]
        part = fit_ranker(train, model=name, fitted_on=fitted_on)
        for i, (_, candidates) in enumerate(lists):
            if i % folds == fold:
                hits["ranker"] += max(candidates, key=lambda c: part.score(c[0]))[1]
                hits["blend"] += candidates[0][1]
    ranker = fit_ranker([c for _, c in lists], model=name, fitted_on=fitted_on)
    path.parent.mkdir(parents=True, exist_ok=True)
    ranker.save(path)
    retriever.ranker = ranker
    n = max(1, len(lists))
    return {"path": str(path), "questions": len(lists), "cv_top1_among_candidates": round(hits["ranker"] / n, 4),
            "blend_top1_among_candidates": round(hits["blend"] / n, 4)}


def fit_calibration(service: Any, dev: Sequence[Question], path: Path) -> dict[str, Any]:
    """Fit the "nothing fits" model on the dev questions, save it, and put it to use in ``service``."""
    from bot.answering.calibration import fit_nothing_fits

    results = [service.search(q.question) for q in dev]
    kept = [(q, r) for q, r in zip(dev, results, strict=True) if r.signals]
    model, cv = fit_nothing_fits([r.signals for _, r in kept], [not q.expected for q, _ in kept],
                                 model=service.retriever.encoder.name,
                                 knowledge=service.retriever.index.manifest.fingerprint,
                                 fitted_on=f"dev splits of {', '.join(sorted({q.set for q in dev}))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    service.retriever.nothing_fits = model
    return {"path": str(path), "cut": model.cut, **cv}


def _group_figures(questions: Sequence[Question], ranked: Sequence[Ranked], key: Callable[[Question], str],
                   order: Sequence[str] = ()) -> dict[str, dict[str, float]]:
    """Figures per group of questions (a style, a length bucket): top-1/top-5 and lost over the
    answerable ones, recognised over the unanswerable ones."""
    out: dict[str, dict[str, float]] = {}
    present = {key(q) for q in questions}
    for group in [g for g in order if g in present] + sorted(present - set(order)):
        picked = [(q, r) for q, r in zip(questions, ranked, strict=True) if key(q) == group]
        answerable = [(q, r) for q, r in picked if q.expected]
        unanswerable = [(q, r) for q, r in picked if not q.expected]
        row: dict[str, float] = {"n": len(picked)}
        if answerable:
            f = figures(group, [q for q, _ in answerable], [r for _, r in answerable], None)
            row.update(top1=f.top1, top5=f.top5, lost=f.answerable_lost)
        if unanswerable:
            f = figures(group, [q for q, _ in unanswerable], [r for _, r in unanswerable], None)
            row.update(recognised=f.unanswerable_recognised)
        out[group] = row
    return out


def evaluate_set(service: Any, name: str, questions: Sequence[Question], split: str) -> dict[str, Any]:
    """One set's split: the assistant and the baselines (whose thresholds come from the set's dev split)."""
    guides = service.retriever.records
    dev = [q for q in questions if q.split == "dev"]
    chosen = [q for q in questions if q.split == split]
    if not chosen:
        raise KnowledgeError(f"{name}: no questions in split '{split}'")
    ours = _rank_assistant(service.search, chosen)
    fitted = service.retriever.nothing_fits
    systems = [figures("assistant (hybrid)", chosen, ours, fitted.cut if fitted else service.settings.min_score)]
    for baseline in (TfidfBaseline(guides), Bm25Baseline(guides)):
        cut = best_threshold(dev, _rank_baseline(baseline, dev)) if dev else 0.0
        ranked = _apply_threshold(_rank_baseline(baseline, chosen), cut)
        systems.append(figures(baseline.name, chosen, ranked, round(cut, 4)))
    short = [(q, r) for q, r in zip(chosen, ours, strict=True) if q.expected and len(q.question.strip()) <= SHORT]
    short_figures = figures("short", [q for q, _ in short], [r for _, r in short], None) if short else None
    misses = [
        {"question": q.question, "style": q.style, "expected": list(q.expected), "got": r.ids[:3],
         "score": round(r.top_score, 4), "none": r.none}
        for q, r in zip(chosen, ours, strict=True)
        if (q.expected and (not r.ids or r.ids[0] not in q.expected or r.none)) or (not q.expected and not r.none)
    ]
    return {
        "set": name, "split": split, "questions": len(chosen),
        "answerable": sum(1 for q in chosen if q.expected), "unanswerable": sum(1 for q in chosen if not q.expected),
        "systems": [asdict(f) for f in systems],
        "short": ({"n": len(short), "top1": short_figures.top1, "top5": short_figures.top5,
                   "lost": short_figures.answerable_lost} if short_figures else None),
        "by_style": _group_figures(chosen, ours, lambda q: q.style),
        "by_length": _group_figures(chosen, ours, lambda q: length_bucket(q.question),
                                    [name for name, _, _ in LENGTH_BUCKETS]),
        "misses": misses,
    }


def credit_faq(questions: Sequence[Question], records: Sequence[Record]) -> list[Question]:
    """Questions labelled with an item's guide also accept the FAQ entries about that item (an entry's
    first related id): the citizen then gets the office's answer about the right item, with a button
    to its full notification and the item under discussion. The sets were labelled before the FAQ
    existed; without this, every good FAQ answer about the asked item would count as a miss."""
    about: dict[str, list[str]] = {}
    for record in records:
        if isinstance(record, FaqEntry) and record.related:
            about.setdefault(record.related[0], []).append(record.id)
    out = []
    for q in questions:
        extra = [faq for guide_id in q.expected for faq in about.get(guide_id, ())]
        out.append(replace(q, expected=(*q.expected, *extra)) if extra else q)
    return out


def load_sets(names: Sequence[str], known: set[str]) -> dict[str, list[Question]]:
    """The named sets, each checked against the knowledge base's ids."""
    sets: dict[str, list[Question]] = {}
    for name in names:
        if name not in EVAL_SETS:
            raise KnowledgeError(f"unknown evaluation set '{name}'; one of {', '.join(EVAL_SETS)}")
        questions = load_questions(EVAL_SETS[name], name)
        unknown = sorted({e for q in questions for e in q.expected} - known)
        if unknown:
            raise KnowledgeError(f"{EVAL_SETS[name]}: expected ids not in the index: {', '.join(unknown[:5])}")
        sets[name] = questions
    return sets


def run(names: Sequence[str], split: str, fit: bool = False) -> dict[str, Any]:
    from bot.answering.service import GuideService

    settings = load_settings()
    service = GuideService.from_settings(settings.with_(max_candidates=RANK_DEPTH))
    sets = load_sets(names, set(service.retriever.by_id))
    service.search("预热")  # the first encode allocates buffers; keep it out of the latency figures
    dev = [q for questions in sets.values() for q in questions if q.split == "dev"]
    ranking = fit_ranking(service, dev, settings.ranker) if fit else None
    calibration = fit_calibration(service, dev, settings.calibration) if fit else None
    fitted = service.retriever.nothing_fits
    return {
        "ranking_fitted": ranking,
        "ranker": (service.retriever.ranker.fitted_on if service.retriever.ranker else "fixed dense/lexical blend"),
        "split": split, "guides": len(service.retriever.guides), "model": service.retriever.encoder.name,
        # What encoded the questions: the model itself, or the query student distilled into its space.
        "query_encoder": str(getattr(getattr(service.retriever.encoder, "inner", service.retriever.encoder),
                                     "model", service.retriever.encoder.name)),
        "nothing_fits": (f"calibrated model (cut {fitted.cut:.3f}; {fitted.fitted_on})" if fitted
                         else f"GUIDE_MIN_SCORE threshold {settings.min_score}"),
        "calibration_fitted": calibration, "targets": TARGETS,
        # Fitted on the labels as written (a guide question teaches the ranker to prefer the guide);
        # measured with FAQ entries about the asked item credited (what the citizen gets).
        "sets": {name: evaluate_set(service, name, credit_faq(questions, service.retriever.records), split)
                 for name, questions in sets.items()},
    }


def _side_by_side(report: dict[str, Any]) -> list[str]:
    names = list(report["sets"])
    rows: list[tuple[str, Callable[[dict[str, Any]], float | None], float | None, str]] = [
        ("top-1", lambda s: s["systems"][0]["top1"], TARGETS["top1"], ">="),
        ("top-5", lambda s: s["systems"][0]["top5"], TARGETS["top5"], ">="),
        ("MRR", lambda s: s["systems"][0]["mrr"], None, ""),
        ("unanswerable recognised", lambda s: s["systems"][0]["unanswerable_recognised"],
         TARGETS["unanswerable_recognised"], ">="),
        ("answerable lost", lambda s: s["systems"][0]["answerable_lost"], TARGETS["answerable_lost"], "<="),
        (f"short (≤{SHORT} chars) top-1", lambda s: (s["short"] or {}).get("top1"), TARGETS["short_top1"], ">="),
        (f"short (≤{SHORT} chars) lost", lambda s: (s["short"] or {}).get("lost"), TARGETS["short_lost"], "<="),
        ("p95 ms", lambda s: s["systems"][0]["p95_ms"], TARGETS["p95_ms"], "<="),
        ("TF-IDF baseline top-1", lambda s: s["systems"][1]["top1"], None, ""),
    ]
    lines = [f"{'':<26}" + "".join(f"{n:>12}" for n in names) + f"{'target':>12}"]
    for label, get, target, sense in rows:
        cells = []
        for name in names:
            value = get(report["sets"][name])
            cells.append(f"{value:>12.3f}" if value is not None else f"{'-':>12}")
        lines.append(f"{label:<26}" + "".join(cells) + (f"{sense + format(target, 'g'):>12}" if target else ""))
    return lines


def print_report(report: dict[str, Any], misses: int = 0) -> None:
    """The figures as tables on stdout."""
    print(f"split {report['split']}, {report['guides']} guides, model {report['model']}, questions encoded by "
          f"{report.get('query_encoder', report['model'])}")
    print(f"ranked by: {report['ranker']}")
    print(f"nothing fits decided by: {report['nothing_fits']}")
    if report.get("ranking_fitted"):
        r = report["ranking_fitted"]
        print(f"ranker fitted on {r['questions']} dev questions and written to {r['path']}: cross-validated top-1 "
              f"among the candidates {r['cv_top1_among_candidates']} (fixed blend {r['blend_top1_among_candidates']})")
    if report.get("calibration_fitted"):
        c = report["calibration_fitted"]
        print(f"calibration fitted on the dev splits and written to {c['path']}: cross-validated on dev, "
              f"unanswerable recognised {c['cv_unanswerable_recognised']}, answerable lost {c['cv_answerable_lost']}")
    print()
    print("\n".join(_side_by_side(report)))
    for name, s in report["sets"].items():
        print(f"\n== {name}: {s['questions']} questions ({s['answerable']} answerable, {s['unanswerable']} not)")
        print(f"{'system':<20}{'top1':>7}{'top5':>7}{'MRR':>7}{'unans.':>8}{'lost':>7}{'p50 ms':>9}{'p95 ms':>9}")
        for f in s["systems"]:
            print(f"{f['system']:<20}{f['top1']:>7.3f}{f['top5']:>7.3f}{f['mrr']:>7.3f}"
                  f"{f['unanswerable_recognised']:>8.3f}{f['answerable_lost']:>7.3f}"
                  f"{f['median_ms']:>9.1f}{f['p95_ms']:>9.1f}")
        for title, groups in (("by style", s["by_style"]), ("by length", s["by_length"])):
            print(f"  {title}:")
            for group, row in groups.items():
                print(f"    {group:<22} " + "  ".join(f"{k} {v:g}" for k, v in row.items()))
        for miss in s["misses"][:misses]:
            print(f"    miss: {miss['question']}  expected {miss['expected'][:1]}  got {miss['got'][:1]} "
                  f"score {miss['score']} none={miss['none']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.answering.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(EVAL_SETS), help=f"comma-separated (default: {','.join(EVAL_SETS)})")
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--fit-calibration", action="store_true",
                        help="fit the ranker and the 'nothing fits' model on the sets' dev splits and write "
                             "GUIDE_RANKER and GUIDE_CALIBRATION first")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "eval.json", help="where to write figures")
    parser.add_argument("--misses", type=int, default=0, help="how many misses to print per set")
    args = parser.parse_args(argv)
    try:
        report = run([n.strip() for n in args.sets.split(",") if n.strip()], args.split, args.fit_calibration)
    except BotError as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    print_report(report, args.misses)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
