import numpy as np
import pytest

from pricer.metrics import constant_baselines, hit_rate, mae_by_band, mean_absolute_error, regression_report, rmsle

ACTUAL = np.array([10.0, 100.0, 5.0, 400.0])
PREDICTED = np.array([12.0, 150.0, 5.0, 300.0])


def test_mae_and_rmsle():
    assert mean_absolute_error(ACTUAL, PREDICTED) == pytest.approx((2 + 50 + 0 + 100) / 4)
    expected = np.sqrt(np.mean((np.log1p(PREDICTED) - np.log1p(ACTUAL)) ** 2))
    assert rmsle(ACTUAL, PREDICTED) == pytest.approx(expected)
    assert rmsle(np.array([1.0]), np.array([-3.0])) == pytest.approx(np.log1p(1.0))


def test_hit_rate_uses_dollars_or_fraction():
    # errors: 2 hit (<= $40), 50 miss (> $40 and > 20% of 100), 0 hit, 100 miss (> $40 and > 20% of 400)
    assert hit_rate(ACTUAL, PREDICTED, dollars=40, fraction=0.2) == pytest.approx(0.5)
    assert hit_rate(ACTUAL, PREDICTED, dollars=40, fraction=0.5) == pytest.approx(1.0)


def test_bands_and_report():
    bands = mae_by_band(ACTUAL, PREDICTED)
    assert bands == {"<$10": 0.0, "$10-50": 2.0, "$50-200": 50.0, "$200-1000": 100.0, "$1000+": None}
    over = mae_by_band(np.array([5000.0, 999.0, 1000.0]), np.array([4000.0, 989.0, 1100.0]))
    assert over["$1000+"] == 550.0 and over["$200-1000"] == 10.0  # $5,000 and $1,000 are not "200-1000"
    assert mae_by_band(np.array([5.0]), np.array([6.0]))["$10-50"] is None
    report = regression_report(ACTUAL, PREDICTED, first_n=2, hit_dollars=40, hit_fraction=0.2)
    assert report["test_mae"] == 38.0 and report["test_mae_first_2"] == 26.0
    assert report["test_hit_rate"] == 0.5


def test_constant_baselines():
    assert constant_baselines(np.array([1.0, 2.0, 9.0])) == {"train_mean": 4.0, "train_median": 2.0}
