"""evaluate: price the test split from raw text with each saved model; write metrics and plots.

Writes ``metrics/<model>.json``, ``metrics/baselines.json``, ``metrics/bands.csv`` and
``metrics/predictions.csv`` (drawn by dvc.yaml's plots), and adds the test figures to each
model's MLflow training run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pricer import layout, tracking
from pricer.atomic import atomic_path, refuse_outputs_outside, write_json
from pricer.console import progress_enabled, run_stage
from pricer.digests import directory_md5, file_md5
from pricer.evaluation import evaluate
from pricer.features import load_labels, prices_of, read_raw_split
from pricer.params import load_params
from pricer.predictor import PricePredictor
from pricer.tracking.inputs import read_fetch_report, split_datasets

log = logging.getLogger("pricer.stages.evaluate")


def main() -> int:
    refuse_outputs_outside(Path.cwd(), layout.stage_outputs("evaluate"))  # before anything is written
    params = load_params()
    test = read_raw_split("test")
    train_prices = prices_of(load_labels(layout.FEATURES_DIR, "train"))
    predictors = {name: PricePredictor.load(layout.model_dir(name)) for name in layout.MODEL_NAMES}
    result = evaluate(test, predictors, train_prices, params.evaluate, progress=progress_enabled(params.train.progress))
    for name, figures in result.figures.items():
        write_json(layout.test_metrics(name), figures)
        log.info("%s: test MAE $%.2f", name, figures["test_mae"])
    write_json(layout.BASELINES_JSON, result.baselines)
    write_json(layout.COMPARISON_JSON, result.comparison)
    with atomic_path(layout.PREDICTIONS_CSV) as tmp:
        result.predictions.to_csv(tmp, index=False)
    with atomic_path(layout.BANDS_CSV) as tmp:
        result.bands.to_csv(tmp, index=False)
    test_file = str(layout.raw_split("test"))
    datasets = split_datasets(params.data.source, read_fetch_report(), {test_file: file_md5(test_file)})
    for name in layout.MODEL_NAMES:
        tracking.log_test_figures(params.tracking, name, directory_md5(layout.model_dir(name)),
                                  result.tracked_figures(name), data_source=params.data.source,
                                  params=params.as_dict(), datasets=datasets)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("evaluate", main))
