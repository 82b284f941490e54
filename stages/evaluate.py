"""evaluate: price the test split from raw text with each saved model; write metrics and plots.

Writes ``metrics/<model>.json``, ``metrics/baselines.json``, ``metrics/bands.csv`` (MAE by
price band: model, band, items, mae) and ``metrics/predictions.csv`` (per item: id, price and
one column per model), and adds the test figures to each model's MLflow training run. The
top-level ``plots`` of dvc.yaml draw both CSVs.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import pandas as pd
from tqdm import tqdm

from pricer import tracking
from pricer.atomic import atomic_path, write_json
from pricer.metrics import (
    band_masks,
    constant_baselines,
    mae_by_band,
    regression_report,
)
from pricer.pipeline import (
    FEATURES_DIR,
    METRICS_DIR,
    MODEL_NAMES,
    MODELS_DIR,
    RAW_DIR,
    configure_logging,
    prices_of,
    progress_enabled,
    read_params,
)
from pricer.predictor import ModelLoadError, PricePredictor

log = logging.getLogger("pricer.stages.evaluate")
BATCH_ROWS = 4096  # texts priced per step of the progress bar


def _predict(predictor: PricePredictor, texts: list[str], progress: bool) -> np.ndarray:
    """Price ``texts`` in batches, with a progress bar for a person at a terminal."""
    parts = []
    with tqdm(total=len(texts), desc=f"evaluate {predictor.name}", unit="item", disable=not progress,
              leave=False) as bar:
        for start in range(0, len(texts), BATCH_ROWS):
            parts.append(predictor.predict(texts[start : start + BATCH_ROWS]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros(0)


def _log_test_figures(name: str, figures: dict, params) -> None:
    """Add the test figures to the model's training run, or to a new run when that run is not
    in this store (a model pulled from a DVC remote, or trained against another tracking URI)."""
    if not params.tracking.enabled:
        return
    run_file = MODELS_DIR / name / "run.json"
    run_id = json.loads(run_file.read_text(encoding="utf-8")).get("mlflow_run_id") if run_file.exists() else None
    settings = {"enabled": True, "experiment": params.tracking.experiment,
                "busy_timeout_s": params.tracking.busy_timeout_s}
    tracker = tracking.resume_run(run_id=run_id, **settings)
    if tracker.enabled:
        try:
            tracker.client.get_run(run_id)
        except Exception:  # MLflow raises its own types for an unknown run id
            log.warning("%s: its training run %s is not in this MLflow store (model pulled from a DVC remote "
                        "or trained against another MLFLOW_TRACKING_URI); logging the test figures to a new run",
                        name, run_id)
        else:
            tracker.log_metrics(figures)
            return
    tracker = tracking.start_run(
        run_name=f"{name}-{os.environ.get('DVC_EXP_NAME', 'workspace')}",
        tags=tracking.run_tags(name, params.data.source, {"training_run_id": run_id or "", "stage": "evaluate"}),
        **settings,
    )
    tracker.log_params({"params": params.as_dict()})
    tracker.log_metrics(figures)
    tracker.finish()


def main() -> int:
    configure_logging()
    params = read_params(log)
    if params is None:
        return 1
    e = params.evaluate
    test = pd.read_parquet(RAW_DIR / "test.parquet")
    actual = test["price"].to_numpy(dtype=np.float64)
    train_prices = prices_of(pd.read_parquet(FEATURES_DIR / "train.parquet", columns=["price"]))

    def report(predicted: np.ndarray) -> dict:
        return regression_report(actual, predicted, first_n=e.first_n, hit_dollars=e.hit_dollars, hit_fraction=e.hit_fraction)

    progress = progress_enabled(params.train.progress)
    band_items = {label: int(mask.sum()) for label, mask in band_masks(actual).items()}
    predictions = pd.DataFrame({"id": test["id"], "price": actual})
    bands = []
    metrics: dict[str, dict] = {}
    for name in MODEL_NAMES:
        try:
            predictor = PricePredictor.load(MODELS_DIR / name)
        except ModelLoadError as error:
            log.error("%s", error)
            return 1
        predicted = _predict(predictor, test[predictor.vectorizer.text_field].tolist(), progress)
        predictions[name] = np.round(predicted, 2)
        metrics[name] = report(predicted)
        bands += [{"model": name, "band": band, "items": band_items[band], "mae": None if mae is None else round(mae, 4)}
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

    test_figures = {name: figures | {f"baseline_{k}": v for k, v in baselines.items() if k.endswith("test_mae")}
                    for name, figures in metrics.items()}
    for name, figures in test_figures.items():
        try:
            _log_test_figures(name, figures, params)
        except tracking.TrackingError as error:
            log.error("%s", error)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
