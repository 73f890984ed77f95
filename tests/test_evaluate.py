"""The evaluation arithmetic and baselines (the figures `make eval` prints must be right)."""

import pytest

from bot.answering.evaluate import Bm25Baseline, Question, Ranked, TfidfBaseline, best_threshold, figures
from bot.knowledge.model import Guide

Q = [
    Question("a", ("g1",), "colloquial", "test"),
    Question("b", ("g2", "g3"), "slang", "test"),
    Question("c", ("g4",), "typo", "test"),
    Question("d", (), "unanswerable", "test"),
]


def test_figures_count_ranks_and_verdicts():
    ranked = [
        Ranked(["g1", "g9"], 0.9, False, 0.010),       # rank 1
        Ranked(["g9", "g8", "g3"], 0.8, False, 0.020),  # rank 3 (either expected id counts)
        Ranked(["g9"], 0.5, True, 0.030),               # missed and declared unanswerable: lost
        Ranked(["g1"], 0.4, True, 0.040),               # unanswerable, recognised
    ]
    f = figures("x", Q, ranked, 0.6)
    assert f.top1 == pytest.approx(1 / 3, abs=1e-4)
    assert f.top5 == pytest.approx(2 / 3, abs=1e-4)
    assert f.mrr == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert f.unanswerable_recognised == 1.0
    assert f.answerable_lost == pytest.approx(1 / 3, abs=1e-4)
    assert f.median_ms == pytest.approx(25.0)


def test_threshold_separates_when_it_can():
    ranked = [Ranked(["g1"], 0.9, False, 0), Ranked(["g2"], 0.8, False, 0), Ranked(["g4"], 0.85, False, 0),
              Ranked(["g1"], 0.3, False, 0)]
    cut = best_threshold(Q, ranked)
    assert 0.3 < cut <= 0.8


GUIDES = [
    Guide(id="m", title="内地居民结婚登记", aliases=("扯证",)),
    Guide(id="d", title="内地居民离婚登记"),
    Guide(id="p", title="普通护照签发", aliases=("办护照",)),
]


@pytest.mark.parametrize("baseline", [TfidfBaseline, Bm25Baseline])
def test_baselines_rank_the_obvious_match_first(baseline):
    system = baseline(GUIDES)
    scores = system.scores("我想办护照")
    assert system.ids[int(scores.argmax())] == "p"
    assert system.scores("今天天气").max() < scores.max()
