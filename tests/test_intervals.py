"""Calibrated price ranges: split conformal per actual-price band, checked on held-out items."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pricer.intervals import (
    CALIBRATION_FILE,
    MIN_BAND_SCORES,
    Calibration,
    CalibrationError,
    conformal_quantile,
    coverage,
    coverage_problems,
)
from pricer.metrics import PRICE_BANDS


def heteroscedastic(items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(actual, predicted): cheap items' log prices are predicted with three times the error of
    dear ones', as a text model's are (a $5 cable is easy to mistake for a $2 or a $15 one)."""
    rng = np.random.default_rng(seed)
    predicted = np.exp(rng.uniform(np.log(1), np.log(5000), items))  # past every band: no edge effects
    sigma = np.where(predicted < 50, 0.9, 0.3)
    actual = np.exp(np.log(predicted) + rng.normal(0, sigma))
    return actual, predicted


def test_ranges_cover_their_level_on_held_out_items_overall_and_per_band():
    calibration = Calibration.fit(*heteroscedastic(6000, seed=1))
    actual, predicted = heteroscedastic(6000, seed=2)  # new items, never calibrated on
    for level in (0.5, 0.8, 0.95):
        ranged = calibration.ranges(predicted, level)
        assert coverage_problems(actual, ranged.low, ranged.high, level) == []
        assert abs(coverage(actual, ranged.low, ranged.high) - level) <= 0.02


def test_ranges_adapt_to_the_price_band():
    calibration = Calibration.fit(*heteroscedastic(6000, seed=1))
    ranged = calibration.ranges(np.array([5.0, 500.0]), 0.8)
    relative = (ranged.high - ranged.low) / ranged.price
    assert relative[0] > 2 * relative[1]  # the noisier cheap band gets the relatively wider range
    assert (ranged.low < ranged.price).all() and (ranged.price < ranged.high).all()


def test_a_miscalibrated_range_fails_the_held_out_check():
    calibration = Calibration.fit(*heteroscedastic(6000, seed=1))
    actual, predicted = heteroscedastic(6000, seed=2)
    ranged = calibration.ranges(predicted, 0.8)
    # too narrow: half the width in log space
    centre = np.log1p(predicted)
    narrow_low = np.expm1(centre - (centre - np.log1p(ranged.low)) / 2)
    narrow_high = np.expm1(centre + (np.log1p(ranged.high) - centre) / 2)
    assert any("coverage" in problem for problem in coverage_problems(actual, narrow_low, narrow_high, 0.8))
    # calibrated for another level than the one it claims
    wide = calibration.ranges(predicted, 0.9)
    assert coverage_problems(actual, wide.low, wide.high, 0.8)
    # one width for every band (not adaptive): right overall, the noisy cheap band far below
    pooled = Calibration((np.sort(np.concatenate(calibration.band_scores)),) + (np.zeros(0),) * (len(PRICE_BANDS) - 1))
    flat = pooled.ranges(predicted, 0.8)
    problems = coverage_problems(actual, flat.low, flat.high, 0.8)
    assert any(problem.startswith("band <$10") or problem.startswith("band $10-50") for problem in problems)


def test_the_quantile_is_split_conformal_s_finite_sample_rank():
    scores = np.arange(1.0, 10.0)  # 9 scores: rank ceil(10 * 0.8) = 8
    assert conformal_quantile(scores, 0.8) == 8.0
    assert conformal_quantile(scores, 0.95) == np.inf  # rank 10 of 9: no finite range exists


def test_a_band_with_few_scores_uses_every_band_s_scores():
    actual, predicted = heteroscedastic(3000, seed=3)
    actual = np.clip(actual, None, 900.0)
    actual[:MIN_BAND_SCORES - 1] = 1500.0  # the $1000+ band: too few validation items of its own
    calibration = Calibration.fit(actual, predicted)
    assert 0 < calibration.band_scores[-1].size < MIN_BAND_SCORES
    pooled = conformal_quantile(np.sort(np.concatenate(calibration.band_scores)), 0.8)
    assert calibration.half_widths(0.8)[-1] == pytest.approx(pooled)
    assert calibration.half_widths(0.8)[0] != pytest.approx(pooled)


def test_any_level_without_refitting_and_bad_levels_refused():
    calibration = Calibration.fit(*heteroscedastic(2000, seed=4))
    widths = [np.ptp(calibration.ranges(np.array([20.0]), level).low.tolist() +
                     calibration.ranges(np.array([20.0]), level).high.tolist()) for level in (0.5, 0.8, 0.9)]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    for level in (0, 1, 1.5, -0.2, True, "0.8"):
        with pytest.raises(CalibrationError, match="between 0 and 1"):
            calibration.ranges(np.array([20.0]), level)


def test_saved_and_loaded_calibration_gives_the_same_ranges(tmp_path):
    calibration = Calibration.fit(*heteroscedastic(2000, seed=5))
    calibration.save(tmp_path)
    loaded = Calibration.load(tmp_path)
    predicted = np.array([4.0, 40.0, 400.0])
    np.testing.assert_allclose(loaded.ranges(predicted).low, calibration.ranges(predicted).low, rtol=1e-5)
    assert Calibration.load(tmp_path / "elsewhere") is None
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"bands": [{"band": "nope", "scores": []}]}))
    with pytest.raises(CalibrationError, match=CALIBRATION_FILE):
        Calibration.load(tmp_path)


def test_each_actual_price_band_is_covered_even_when_the_model_regresses_to_the_mean():
    """A model that prices every item halfway (in log space) to $40: cheap items too high, dear
    ones too low. Split by actual price, each band still gets its coverage."""
    def shrunk(items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        actual = np.exp(rng.normal(np.log(40), 1.2, items))
        predicted = np.exp(0.5 * np.log(actual) + 0.5 * np.log(40) + rng.normal(0, 0.3, items))
        return actual, predicted
    calibration = Calibration.fit(*shrunk(6000, seed=6))
    actual, predicted = shrunk(6000, seed=7)
    ranged = calibration.ranges(predicted, 0.8)
    for label, low, high in PRICE_BANDS:
        inside = (actual >= low) & (actual < high)
        if inside.sum() >= 100:
            assert coverage(actual[inside], ranged.low[inside], ranged.high[inside]) >= 0.75, label
