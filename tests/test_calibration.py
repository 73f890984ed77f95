"""The "nothing fits" model: fitting, storing, refusing what does not fit."""

import json
import random

import pytest

from bot.calibration import FEATURES, NothingFits, fit_nothing_fits
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


def test_round_trip_and_model_mismatch(tmp_path):
    rows, labels = _rows()
    model, _ = fit_nothing_fits(rows, labels, model="m")
    path = tmp_path / "c.json"
    model.save(path)
    assert NothingFits.load(path, model="m") == model
    assert NothingFits.load(path, model="another model") is None
    assert NothingFits.load(tmp_path / "missing.json", model="m") is None


def test_broken_file_names_the_fix(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="make calibrate"):
        NothingFits.load(path, model="m")
    path.write_text(json.dumps({"features": ["dense", "bogus"], "weights": [1, 2], "intercept": 0, "cut": 0.5,
                                "model": "m"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="bogus"):
        NothingFits.load(path, model="m")


def test_too_few_examples_is_a_clear_error():
    with pytest.raises(ConfigError, match="unanswerable"):
        fit_nothing_fits([{n: 0.9 for n in FEATURES}] * 10, [False] * 10, model="m")


def test_committed_calibration_matches_the_bundled_model(service):
    from bot.settings import load_settings

    fitted = NothingFits.load(load_settings({}).calibration, model=service.retriever.encoder.name)
    assert fitted is not None, "knowledge/calibration.json is missing or for another model: run `make calibrate`"
    assert fitted.features == FEATURES
    assert 0.5 <= fitted.cut < 1.0
