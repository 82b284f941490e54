"""Bootstrap intervals and paired comparisons against cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from pricer.comparison import DEFAULT_RESAMPLES, PairedComparison, mae_interval, paired_difference, seed_spread
from pricer.metrics import mean_absolute_error as mae


@pytest.fixture
def prices() -> np.ndarray:
    return np.random.default_rng(1).lognormal(3.5, 1.0, size=500)


def test_constant_offsets_give_an_exact_difference(prices):
    result = paired_difference(prices, prices + 5.0, prices - 2.0)
    assert result == PairedComparison(pytest.approx(3.0), pytest.approx(3.0), pytest.approx(3.0), "worse")
    assert mae_interval(prices, prices + 5.0) == pytest.approx((5.0, 5.0))
    flipped = paired_difference(prices, prices - 2.0, prices + 5.0)
    assert flipped.diff == pytest.approx(-3.0) and flipped.verdict == "better"


def test_the_interval_contains_the_true_mae_about_95_times_in_100():
    """Test sets drawn from one population whose MAE is known: the interval covers it ~95% of the time."""
    rng = np.random.default_rng(7)
    true_mae = 10.0  # errors are |N(0, s)| with s chosen so that E|error| = 10
    scale = true_mae / np.sqrt(2 / np.pi)
    covered = 0
    for trial in range(200):
        actual = rng.lognormal(3.5, 1.0, size=300)
        low, high = mae_interval(actual, actual + rng.normal(0, scale, size=300), resamples=500, seed=trial)
        covered += low <= true_mae <= high
    assert 0.89 <= covered / 200 <= 0.99


def test_interval_brackets_the_mae_and_narrows_with_more_items(prices):
    rng = np.random.default_rng(2)
    predicted = prices * rng.lognormal(0, 0.4, size=prices.size)
    low, high = mae_interval(prices, predicted)
    assert low < mae(prices, predicted) < high
    many = np.tile(prices, 16)
    wide, narrow = high - low, np.subtract(*mae_interval(many, np.tile(predicted, 16))[::-1])
    assert narrow == pytest.approx(wide / 4, rel=0.25)  # width ~ 1/sqrt(items)


def test_same_seed_same_interval_other_seed_other_interval(prices):
    predicted = prices * 1.2
    noisy = predicted + np.random.default_rng(3).normal(0, 5, size=prices.size)
    assert mae_interval(prices, noisy, seed=4) == mae_interval(prices, noisy, seed=4)
    assert mae_interval(prices, noisy, seed=4) != mae_interval(prices, noisy, seed=5)
    assert paired_difference(prices, noisy, predicted, seed=9) == paired_difference(prices, noisy, predicted, seed=9)
    assert mae_interval(prices, noisy) == mae_interval(prices, noisy, resamples=DEFAULT_RESAMPLES, seed=0)


def test_verdicts_on_a_clear_and_on_a_noise_only_difference():
    rng = np.random.default_rng(5)
    actual = rng.lognormal(3.5, 1.0, size=2000)
    good = actual + rng.normal(0, 5, size=actual.size)
    bad = actual + rng.normal(0, 8, size=actual.size)
    assert paired_difference(actual, good, bad).verdict == "better"
    assert paired_difference(actual, bad, good).verdict == "worse"
    # Two predictors with the same error distribution: no detectable difference in nearly every draw.
    verdicts = [paired_difference(actual, actual + rng.normal(0, 5, size=actual.size),
                                  actual + rng.normal(0, 5, size=actual.size), resamples=500, seed=trial).verdict
                for trial in range(40)]
    assert verdicts.count("no detectable difference") >= 34


def test_pairing_is_tighter_than_two_separate_intervals():
    """Items that are hard for both predictors cancel out of a paired difference."""
    rng = np.random.default_rng(6)
    actual = rng.lognormal(3.5, 1.0, size=1000)
    shared = rng.normal(0, 20, size=actual.size)  # the error both predictors make
    pred_a, pred_b = actual + shared + 1.0, actual + shared - 0.2
    result = paired_difference(actual, pred_a, pred_b)
    low_a, high_a = mae_interval(actual, pred_a)
    assert result.high - result.low < (high_a - low_a) / 3
    assert result.diff == pytest.approx(mae(actual, pred_a) - mae(actual, pred_b))


def test_bad_arguments_name_the_problem(prices):
    with pytest.raises(ValueError, match="pred_b: 3 values for 500 items"):
        paired_difference(prices, prices, prices[:3])
    with pytest.raises(ValueError, match="predicted: 1 values are not finite"):
        mae_interval(prices, np.where(np.arange(prices.size) == 4, np.nan, prices))
    with pytest.raises(ValueError, match="actual: expected a non-empty 1-d array"):
        mae_interval([], [])
    with pytest.raises(ValueError, match="resamples must be at least 1"):
        mae_interval(prices, prices, resamples=0)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        mae_interval(prices, prices, confidence=95)


def test_seed_spread():
    assert seed_spread([10.0, 12.0, 14.0]) == (12.0, 2.0)
    with pytest.raises(ValueError, match="at least 2 runs"):
        seed_spread([3.0])
