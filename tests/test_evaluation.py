from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pricer.evaluation import evaluate
from pricer.intervals import Calibration
from pricer.metrics import mean_absolute_error
from pricer.params import EvaluateParams


class OffsetPredictor:
    """Prices each test item at its true price (read back from the text) times a factor."""

    def __init__(self, name: str, factor: float, noise: float, seed: int,
                 calibration_noise: float | None = None) -> None:
        self.name, self.factor, self.noise = name, factor, noise
        self.rng = np.random.default_rng(seed)
        self.vectorizer = SimpleNamespace(text_field="summary")
        # calibrated on its own validation items, priced with `calibration_noise` (default: its real noise)
        validation = np.random.default_rng(seed + 100).lognormal(3.5, 1.0, 3000)
        noisy = validation * factor * np.exp(self.rng.normal(0, calibration_noise or noise, validation.size))
        self.calibration = Calibration.fit(validation, noisy)

    def predict(self, texts: list[str]) -> np.ndarray:
        true = np.array([float(text.split("$")[1]) for text in texts])
        return true * self.factor * np.exp(self.rng.normal(0, self.noise, len(true)))


@pytest.fixture
def test_split() -> pd.DataFrame:
    prices = np.round(np.random.default_rng(3).lognormal(3.5, 1.0, 600), 2)
    return pd.DataFrame({"id": np.arange(600), "price": prices, "summary": [f"Title: item ${p}" for p in prices]})


def test_every_mae_comes_with_its_interval_and_the_models_are_paired(test_split):
    predictors = {"mlp": OffsetPredictor("mlp", 1.0, 0.5, 1), "resnet": OffsetPredictor("resnet", 1.0, 0.2, 2)}
    result = evaluate(test_split, predictors, test_split["price"].to_numpy(), EvaluateParams(bootstrap_resamples=500))
    actual = test_split["price"].to_numpy()
    for name in ("mlp", "resnet"):
        figures = result.figures[name]
        mae = mean_absolute_error(actual, result.predictions[name].to_numpy())
        assert figures["test_mae_ci95_low"] < figures["test_mae"] < figures["test_mae_ci95_high"]
        assert figures["test_mae"] == pytest.approx(mae, abs=0.01)
        assert (figures["test_mae_first_200_ci95_low"] < figures["test_mae_first_200"]
                < figures["test_mae_first_200_ci95_high"])
        # 200 items give a wider interval than all 600
        width = figures["test_mae_ci95_high"] - figures["test_mae_ci95_low"]
        assert figures["test_mae_first_200_ci95_high"] - figures["test_mae_first_200_ci95_low"] > width
        assert {"test_mae_ci95_low", "test_mae_ci95_high"} <= set(result.tracked_figures(name))
    (pair,) = result.comparison.values()
    assert list(result.comparison) == ["resnet_vs_mlp"]
    assert pair["verdict"] == "better" and pair["ci95_high"] < 0  # four times less noise: clearly better
    assert pair["mae_difference"] == pytest.approx(
        result.figures["resnet"]["test_mae"] - result.figures["mlp"]["test_mae"], abs=2e-4)


def test_two_equally_good_models_show_no_detectable_difference(test_split):
    predictors = {"mlp": OffsetPredictor("mlp", 1.0, 0.3, 1), "resnet": OffsetPredictor("resnet", 1.0, 0.3, 2)}
    result = evaluate(test_split, predictors, test_split["price"].to_numpy(), EvaluateParams(bootstrap_resamples=500))
    pair = result.comparison["resnet_vs_mlp"]
    assert pair["ci95_low"] < 0 < pair["ci95_high"] and pair["verdict"] == "no detectable difference"


def test_the_intervals_are_reproducible_from_the_bootstrap_seed(test_split):
    def run(seed: int) -> dict:
        predictors = {"mlp": OffsetPredictor("mlp", 1.1, 0.3, 1), "resnet": OffsetPredictor("resnet", 0.9, 0.3, 2)}
        settings = EvaluateParams(bootstrap_resamples=300, bootstrap_seed=seed)
        return evaluate(test_split, predictors, test_split["price"].to_numpy(), settings).figures
    assert run(0) == run(0) and run(0) != run(1)


def test_each_price_has_its_range_evaluated_overall_and_per_band(test_split):
    predictors = {"mlp": OffsetPredictor("mlp", 1.0, 0.5, 1),
                  "overconfident": OffsetPredictor("overconfident", 1.0, 0.5, 2, calibration_noise=0.2)}
    result = evaluate(test_split, predictors, test_split["price"].to_numpy(),
                      EvaluateParams(bootstrap_resamples=200, interval_level=0.8))
    actual = test_split["price"].to_numpy()
    for name in predictors:
        low, high = result.predictions[f"{name}_low"].to_numpy(), result.predictions[f"{name}_high"].to_numpy()
        assert (low <= result.predictions[name]).all() and (result.predictions[name] <= high).all()
        figures = result.figures[name]
        assert figures["interval_level"] == 0.8
        assert figures["test_interval_coverage"] == pytest.approx(np.mean((actual >= low) & (actual <= high)), abs=0.01)
        assert figures["test_interval_width_median"] == pytest.approx(np.median(high - low), abs=0.05)
        bands = result.bands[result.bands["model"] == name]
        assert list(bands.columns) == ["model", "band", "items", "mae", "coverage"]
        assert (bands["items"] * bands["coverage"].fillna(0)).sum() == pytest.approx(
            figures["test_interval_coverage"] * len(actual), abs=0.1)
    assert abs(result.figures["mlp"]["test_interval_coverage"] - 0.8) <= 0.04  # 600 items: sd 0.016
    assert result.range_problems["mlp"] == []
    # calibrated on residuals 2.5 times too small: the held-out check names it
    assert result.figures["overconfident"]["test_interval_coverage"] < 0.5
    assert any("coverage" in problem for problem in result.range_problems["overconfident"])


def test_a_wider_level_gives_wider_ranges_without_refitting(test_split):
    def coverage_at(level: float) -> float:
        predictors = {"mlp": OffsetPredictor("mlp", 1.0, 0.4, 1)}
        settings = EvaluateParams(bootstrap_resamples=100, interval_level=level)
        return evaluate(test_split, predictors, test_split["price"].to_numpy(), settings).figures["mlp"]
    narrow, wide = coverage_at(0.5), coverage_at(0.95)
    assert narrow["test_interval_width_median"] < wide["test_interval_width_median"]
    assert narrow["test_interval_coverage"] < 0.6 < 0.9 < wide["test_interval_coverage"]
