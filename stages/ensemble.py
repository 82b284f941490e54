"""ensemble: combine the trained models into a third predictor (no training), calibrate its
price range on the validation split, save it as ``models/ensemble`` and track it in MLflow
(logged and registered as ``pricer-ensemble``, like the trained models).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pricer import layout, tracking
from pricer.atomic import atomic_directory, refuse_outputs_outside, write_json
from pricer.console import run_stage
from pricer.ensemble import COMBINE, EnsemblePredictor
from pricer.features import feature_md5s, load_features, prices_of
from pricer.params import load_params
from pricer.predictor import PricePredictor

log = logging.getLogger("pricer.stages.ensemble")


def main() -> int:
    params = load_params()
    refuse_outputs_outside(Path.cwd(), layout.stage_outputs(layout.ENSEMBLE_NAME))  # before anything is written
    members = [PricePredictor.load(layout.model_dir(name)) for name in layout.MODEL_NAMES]
    features, labels = load_features(layout.FEATURES_DIR, "validation")
    ensemble = EnsemblePredictor.calibrated(layout.ENSEMBLE_NAME, members, features, prices_of(labels))
    directory = layout.model_dir(layout.ENSEMBLE_NAME)
    with atomic_directory(directory) as tmp:
        ensemble.save(tmp)
    write_json(layout.train_metrics(layout.ENSEMBLE_NAME), ensemble.info)
    log.info("ensemble of %s: validation MAE $%.2f", ", ".join(layout.MODEL_NAMES), ensemble.info["val_mae"])
    inputs = feature_md5s(layout.FEATURES_DIR, ["validation"])
    with tracking.training_run(params, layout.ENSEMBLE_NAME, inputs, is_main=True,
                               source_name="stages/ensemble.py") as run:
        run.log_params({"params": params.as_dict(), "members": ",".join(layout.MODEL_NAMES), "combine": COMBINE,
                        **{f"member_version.{member.name}": member.version for member in members}})
        run.log_model_directory(directory, ensemble.info, register=params.tracking.register)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("ensemble", main))
