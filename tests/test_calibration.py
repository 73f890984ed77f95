"""The "nothing fits" model: fitting, storing, refusing what does not fit."""

import json
import random

import pytest

from bot.answering.calibration import FEATURES, NothingFits, fit_nothing_fits
from bot.errors import ConfigError


def _rows(seed: int = 0):
    rng = random.Random(seed)
    rows, labels = [], []
    for i in range(200):
        unanswerable = i % 5 == 0
        base = 0.80 if unanswerable else 0.90
        row = {name: base + rng.gauss(0, 0.03) for name in FEATURES}
        rows.append(row)
        labels.append(unanswerable)
    return rows, labels


def test_fit_separates_low_signals_and_keeps_lost_small():
    rows, labels = _rows()
    model, cv = fit_nothing_fits(rows, labels, model="m")
    assert cv["cv_answerable_lost"] <= 0.025
    assert cv["cv_unanswerable_recognised"] > 0.8
    low = {name: 0.78 for name in FEATURES}
    high = {name: 0.92 for name in FEATURES}
    assert model.says_none(low) and not model.says_none(high)


def test_round_trip_and_model_or_knowledge_mismatch(tmp_path, caplog):
    rows, labels = _rows()
    model, _ = fit_nothing_fits(rows, labels, model="m", knowledge="kb-1")
    path = tmp_path / "c.json"
    model.save(path)
    assert NothingFits.load(path, model="m", knowledge="kb-1") == model
    assert NothingFits.load(path, model="another model", knowledge="kb-1") is None
    assert NothingFits.load(path, model="m", knowledge="an office's own knowledge base") is None
    assert "another knowledge base" in caplog.text and "knowledge calibrate" in caplog.text
    assert NothingFits.load(tmp_path / "missing.json", model="m") is None


def test_broken_file_names_the_fix(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="make calibrate"):
        NothingFits.load(path, model="m")



def test_a_calibration_of_signals_no_longer_computed_falls_back(tmp_path, caplog):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"features": ["dense", "bogus"], "weights": [1, 2], "intercept": 0, "cut": 0.5,
                                "model": "m"}), encoding="utf-8")
    assert NothingFits.load(path, model="m") is None
    assert "bogus" in caplog.text


def test_too_few_examples_is_a_clear_error():
    with pytest.raises(ConfigError, match="unanswerable"):
        fit_nothing_fits([{n: 0.9 for n in FEATURES}] * 10, [False] * 10, model="m")


def test_committed_calibration_matches_the_bundled_model_and_knowledge(service):
    from bot.knowledge.base import fingerprint
    from bot.settings import load_settings

    settings = load_settings({})
    fitted = NothingFits.load(settings.calibration, model=service.retriever.encoder.name,
                              knowledge=fingerprint(*settings.knowledge_roots))
    assert fitted is not None, ("knowledge/calibration.json is missing, or fitted for another model or before the "
                                "knowledge changed: run `make calibrate` and commit it")
    assert fitted.features == FEATURES
    assert 0.5 <= fitted.cut < 1.0


def test_an_office_can_calibrate_its_own_knowledge_base_without_labels(small_service):
    """The small knowledge base (not the bundled one) calibrated from its own records: everyday
    questions are turned away, its items' questions are not."""
    from bot.answering.selfcalibrate import title_keyword

    assert small_service.retriever.nothing_fits is not None
    assert "pseudo-queries" in small_service.retriever.nothing_fits.fitted_on
    for question in ("今天会不会下冰雹", "推荐一首好听的歌"):
        assert small_service.search(question).status == "none", question
    for question in ("我身份证过期了怎么办", "结婚登记要带什么", "公积金提取"):
        assert small_service.search(question).status != "none", question
    assert title_keyword("二级注册建造师执业资格注册核准(二级注册建造师初始注册)", __import__("random").Random(0))
