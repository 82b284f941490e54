"""evaluate: price the test split from raw text with each saved model; write metrics and plots.

Writes ``metrics/<model>.json``, ``metrics/baselines.json``, ``metrics/bands.csv`` (MAE by
price band) and ``metrics/predictions.csv`` (per item), and adds the test figures to each
model's MLflow training run.
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pandas as pd

from pricer import tracking
from pricer.atomic import atomic_path, write_json
from pricer.metrics import constant_baselines, mae_by_band, regression_report
from pricer.params import ParamsError, load_params
from pricer.pipeline import FEATURES_DIR, METRICS_DIR, MODEL_NAMES, MODELS_DIR, RAW_DIR, configure_logging, prices_of
from pricer.predictor import ModelLoadError, PricePredictor

log = logging.getLogger("pricer.stages.evaluate")


def main() -> int:
    configure_logging()
    try:
        params = load_params()
    except ParamsError as error:
        log.error("%s", error)
        return 1
    e = params.evaluate
    test = pd.read_parquet(RAW_DIR / "test.parquet")
    actual = test["price"].to_numpy(dtype=np.float64)
    train_prices = prices_of(pd.read_parquet(FEATURES_DIR / "train.parquet", columns=["price"]))

    def report(predicted: np.ndarray) -> dict:
        return regression_report(actual, predicted, first_n=e.first_n, hit_dollars=e.hit_dollars, hit_fraction=e.hit_fraction)

    predictions = pd.DataFrame({"id": test["id"], "price": actual})
    bands = []
    metrics: dict[str, dict] = {}
    for name in MODEL_NAMES:
        try:
            predictor = PricePredictor.load(MODELS_DIR / name)
        except ModelLoadError as error:
            log.error("%s", error)
            return 1
        predicted = predictor.predict(test[predictor.vectorizer.text_field].tolist())
        predictions[name] = np.round(predicted, 2)
        metrics[name] = report(predicted)
        bands += [{"model": name, "band": band, "mae": None if mae is None else round(mae, 4)}
                  for band, mae in mae_by_band(actual, predicted).items()]
        log.info("%s: test MAE $%.2f", name, metrics[name]["test_mae"])

    baselines = {}
    for name, value in constant_baselines(train_prices).items():
        baselines[f"{name}_test_mae"] = report(np.full_like(actual, value))["test_mae"]
        baselines[f"{name}_price"] = round(value, 4)
    for name, figures in metrics.items():
        write_json(METRICS_DIR / f"{name}.json", figures)
    write_json(METRICS_DIR / "baselines.json", baselines)
    with atomic_path(METRICS_DIR / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False)
    with atomic_path(METRICS_DIR / "bands.csv") as tmp:
        pd.DataFrame(bands).to_csv(tmp, index=False)

    for name, figures in metrics.items():
        run_file = MODELS_DIR / name / "run.json"
        run_id = json.loads(run_file.read_text(encoding="utf-8")).get("mlflow_run_id") if run_file.exists() else None
        try:
            tracker = tracking.resume_run(enabled=params.tracking.enabled, run_id=run_id, experiment=params.tracking.experiment)
        except tracking.TrackingError as error:
            log.error("%s", error)
            return 1
        tracker.log_metrics(figures | {f"baseline_{k}": v for k, v in baselines.items() if k.endswith("test_mae")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
