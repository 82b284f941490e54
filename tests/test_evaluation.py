from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pricer.evaluation import evaluate
from pricer.metrics import mean_absolute_error
from pricer.params import EvaluateParams


class OffsetPredictor:
    """Prices each test item at its true price (read back from the text) times a factor."""

    def __init__(self, name: str, factor: float, noise: float, seed: int) -> None:
        self.name, self.factor, self.noise = name, factor, noise
        self.rng = np.random.default_rng(seed)
        self.vectorizer = SimpleNamespace(text_field="summary")

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
        assert figures["test_mae_first_200_ci95_low"] < figures["test_mae_first_200"] < figures["test_mae_first_200_ci95_high"]
        # 200 items give a wider interval than all 600
        width = figures["test_mae_ci95_high"] - figures["test_mae_ci95_low"]
        assert figures["test_mae_first_200_ci95_high"] - figures["test_mae_first_200_ci95_low"] > width
        assert {"test_mae_ci95_low", "test_mae_ci95_high"} <= set(result.tracked_figures(name))
    (pair,) = result.comparison.values()
    assert list(result.comparison) == ["resnet_vs_mlp"]
    assert pair["verdict"] == "better" and pair["ci95_high"] < 0  # four times less noise: clearly better
    assert pair["mae_difference"] == pytest.approx(result.figures["resnet"]["test_mae"] - result.figures["mlp"]["test_mae"], abs=2e-4)


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
