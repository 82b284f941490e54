"""Price the test split with each trained model: the figures, the per-item predictions and the
MAE by price band that the evaluate stage writes, beside the constant baselines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from pricer.metrics import band_masks, constant_baselines, mae_by_band, regression_report
from pricer.params import EvaluateParams
from pricer.predictor import PricePredictor

BATCH_ROWS = 4096  # texts priced per step of the progress bar


@dataclass(frozen=True)
class Evaluation:
    figures: dict[str, dict[str, float]]  # model -> metrics/<model>.json
    baselines: dict[str, float]  # metrics/baselines.json
    predictions: pd.DataFrame  # metrics/predictions.csv: id, price, one column per model
    bands: pd.DataFrame  # metrics/bands.csv: model, band, items, mae

    def tracked_figures(self, model_name: str) -> dict[str, float]:
        """What goes to the model's MLflow run: its test figures and the baselines' MAEs."""
        baseline_maes = {f"baseline_{key}": value for key, value in self.baselines.items() if key.endswith("test_mae")}
        return self.figures[model_name] | baseline_maes


def price_texts(predictor: PricePredictor, texts: list[str], progress: bool) -> np.ndarray:
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
    predictors: Mapping[str, PricePredictor],
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

    band_items = {label: int(mask.sum()) for label, mask in band_masks(actual).items()}
    predictions = pd.DataFrame({"id": test["id"], "price": actual})
    figures: dict[str, dict[str, float]] = {}
    bands = []
    for name, predictor in predictors.items():
        predicted = price_texts(predictor, test[predictor.vectorizer.text_field].tolist(), progress)
        predictions[name] = np.round(predicted, 2)
        figures[name] = report(predicted)
        bands += [{"model": name, "band": band, "items": band_items[band], "mae": None if mae is None else round(mae, 4)}
                  for band, mae in mae_by_band(actual, predicted).items()]
    baselines: dict[str, float] = {}
    for name, value in constant_baselines(train_prices).items():
        baselines[f"{name}_test_mae"] = report(np.full_like(actual, value))["test_mae"]
        baselines[f"{name}_price"] = round(value, 4)
    return Evaluation(figures, baselines, predictions, pd.DataFrame(bands))
