"""Price the test split with each trained model: the figures, the per-item predictions and the
MAE by price band that the evaluate stage writes, beside the constant baselines.

Every test MAE comes with its 95% interval (a percentile bootstrap over the test items, with
``evaluate.bootstrap_resamples`` resamples from ``evaluate.bootstrap_seed``), and the two models
are compared on the same items: the MAE difference, its paired-bootstrap interval and a verdict.
Each price has its calibrated range at ``evaluate.interval_level`` (from the model directory's
calibration, never refitted here); the figures say how many test prices lie inside their range
(overall and per price band) and how wide the ranges are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from pricer.comparison import MIN_ITEMS_FOR_VERDICT, TOO_FEW_ITEMS, mae_interval, paired_difference, too_few_items
from pricer.ensemble import Predictor
from pricer.intervals import PriceRange, coverage, coverage_problems
from pricer.metrics import band_masks, constant_baselines, mae_by_band, regression_report
from pricer.params import EvaluateParams
from pricer.predictor import ranges_of

BATCH_ROWS = 4096  # texts priced per step of the progress bar


@dataclass(frozen=True)
class Evaluation:
    figures: dict[str, dict[str, float]]  # model -> metrics/<model>.json
    baselines: dict[str, float]  # metrics/baselines.json
    predictions: pd.DataFrame  # metrics/predictions.csv: id, price, per model <model>, <model>_low, <model>_high
    bands: pd.DataFrame  # metrics/bands.csv: model, band, items, mae, coverage
    comparison: dict[str, dict[str, float | str]]  # metrics/comparison.json
    range_problems: dict[str, list[str]]  # model -> why its ranges miss their level on the test items (logged)

    def tracked_figures(self, model_name: str) -> dict[str, float]:
        """What goes to the model's MLflow run: its test figures and the baselines' MAEs."""
        baseline_maes = {f"baseline_{key}": value for key, value in self.baselines.items() if key.endswith("test_mae")}
        return self.figures[model_name] | baseline_maes


def price_texts(predictor: Predictor, texts: list[str], progress: bool) -> np.ndarray:
    """Price ``texts`` in batches, with a progress bar for a person at a terminal."""
    parts = []
    with tqdm(total=len(texts), desc=f"evaluate {predictor.name}", unit="item", disable=not progress,
              leave=False) as bar:
        for start in range(0, len(texts), BATCH_ROWS):
            parts.append(predictor.predict(texts[start : start + BATCH_ROWS]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros(0)


def evaluate(
    test: pd.DataFrame,
    predictors: Mapping[str, Predictor],
    train_prices: np.ndarray,
    settings: EvaluateParams,
    *,
    progress: bool = False,
) -> Evaluation:
    """Each predictor on the raw test texts (the field it was trained on), and the baselines."""
    actual = test["price"].to_numpy(dtype=np.float64)

    def report(predicted: np.ndarray) -> dict[str, float]:
        return regression_report(actual, predicted, first_n=settings.first_n, hit_dollars=settings.hit_dollars,
                                 hit_fraction=settings.hit_fraction)

    bootstrap = {"resamples": settings.bootstrap_resamples, "seed": settings.bootstrap_seed}

    def with_intervals(predicted: np.ndarray) -> dict[str, float]:
        figures = report(predicted)
        first = slice(0, settings.first_n)
        for key, part in (("test_mae", slice(None)), (f"test_mae_first_{settings.first_n}", first)):
            low, high = mae_interval(actual[part], predicted[part], **bootstrap)
            figures[f"{key}_ci95_low"], figures[f"{key}_ci95_high"] = round(low, 4), round(high, 4)
        return figures

    masks = band_masks(actual)
    band_items = {label: int(mask.sum()) for label, mask in masks.items()}
    predictions = pd.DataFrame({"id": test["id"], "price": actual})
    figures: dict[str, dict[str, float]] = {}
    priced: dict[str, np.ndarray] = {}
    problems: dict[str, list[str]] = {}
    bands = []
    for name, predictor in predictors.items():
        predicted = price_texts(predictor, test[predictor.vectorizer.text_field].tolist(), progress)
        ranged = ranges_of(name, predictor.calibration, predicted, settings.interval_level)
        priced[name] = predicted
        predictions[name] = np.round(predicted, 2)
        predictions[f"{name}_low"], predictions[f"{name}_high"] = np.round(ranged.low, 2), np.round(ranged.high, 2)
        figures[name] = with_intervals(predicted) | range_figures(actual, ranged)
        problems[name] = coverage_problems(actual, ranged.low, ranged.high, ranged.level)
        bands += [{"model": name, "band": band, "items": band_items[band],
                   "mae": None if mae is None else round(mae, 4),
                   "coverage": round(coverage(actual[masks[band]], ranged.low[masks[band]],
                                              ranged.high[masks[band]]), 4)
                   if band_items[band] else None}
                  for band, mae in mae_by_band(actual, predicted).items()]
    baselines: dict[str, float] = {}
    for name, value in constant_baselines(train_prices).items():
        baselines[f"{name}_test_mae"] = report(np.full_like(actual, value))["test_mae"]
        baselines[f"{name}_price"] = round(value, 4)
    return Evaluation(figures, baselines, predictions, pd.DataFrame(bands), compare_models(actual, priced, bootstrap),
                      problems)


def range_figures(actual: np.ndarray, ranged: PriceRange) -> dict[str, float]:
    """The range's level, the share of test prices inside their range, and the median width in dollars."""
    return {"interval_level": ranged.level,
            "test_interval_coverage": round(coverage(actual, ranged.low, ranged.high), 4),
            "test_interval_width_median": round(float(np.median(ranged.high - ranged.low)), 4)}


def compare_models(actual: np.ndarray, priced: Mapping[str, np.ndarray], bootstrap: dict[str, int]) -> dict:
    """Each later model against each earlier one on the same items (``resnet`` against ``mlp``,
    ``ensemble`` against each)."""
    names = list(priced)
    comparison = {}
    for position, first in enumerate(names):
        for second in names[position + 1:]:
            paired = paired_difference(actual, priced[second], priced[first], **bootstrap)
            comparison[f"{second}_vs_{first}"] = {
                "mae_difference": round(paired.diff, 4),  # MAE(second) - MAE(first): negative = second is better
                "ci95_low": round(paired.low, 4),
                "ci95_high": round(paired.high, 4),
                "verdict": paired.verdict,
                "items": int(actual.size),
                "min_items": MIN_ITEMS_FOR_VERDICT,
            }
            if paired.verdict == TOO_FEW_ITEMS:  # the interval of so few items is no evidence either way
                comparison[f"{second}_vs_{first}"]["verdict"] = too_few_items(int(actual.size))
    return comparison
