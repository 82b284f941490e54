"""Where the pipeline's files live, relative to the project root: the one definition of each
path that ``dvc.yaml`` declares (a test checks the two agree)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pricer.errors import PricerError


class ArtifactError(PricerError):
    """A pipeline file is missing or unreadable; the message names it and the stage to rerun."""


SPLITS = ("train", "validation", "test")
MODEL_NAMES = ("mlp", "resnet")  # the trained models, one train stage each
ENSEMBLE_NAME = "ensemble"  # the two combined (stages/ensemble.py): no training of its own
PREDICTOR_NAMES = (*MODEL_NAMES, ENSEMBLE_NAME)  # every model evaluated, priced and registered

RAW_DIR = Path("data/raw")
FETCH_REPORT = Path("data/fetch_report.json")
FEATURES_DIR = Path("data/features")
MODELS_DIR = Path("models")
CHECKPOINTS_DIR = Path("checkpoints")
METRICS_DIR = Path("metrics")
PREDICTIONS_CSV = METRICS_DIR / "predictions.csv"
BANDS_CSV = METRICS_DIR / "bands.csv"
BASELINES_JSON = METRICS_DIR / "baselines.json"
COMPARISON_JSON = METRICS_DIR / "comparison.json"  # the models against each other, paired on the test items


DVC_TEMP_COPIES = (".dvc", "tmp", "exps")  # where `dvc exp run --temp` and queued runs work


def project_root(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The project a command or stage belongs to: the nearest directory at or above the working
    directory that holds ``.dvc/`` (as ``dvc`` itself finds it, so commands also work from a
    subdirectory), stepping out of a DVC temporary experiment copy; the working directory itself
    where there is none."""
    environ = os.environ if environ is None else environ
    start = Path(environ.get("DVC_ROOT") or (cwd or Path.cwd())).resolve()
    parts = start.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == DVC_TEMP_COPIES:
            return Path(*parts[:i])
    return enclosing_project(start) or start


def enclosing_project(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` (the working directory) holding ``.dvc/``."""
    start = (start or Path.cwd()).resolve()
    return next((directory for directory in (start, *start.parents) if (directory / ".dvc").is_dir()), None)


def in_dvc_temp_copy(cwd: Path | None = None) -> bool:
    """Whether this runs in a copy made by `dvc exp run --temp` or the queue, which holds only
    the files git and DVC track."""
    parts = (cwd or Path.cwd()).resolve().parts
    return any(parts[i : i + 3] == DVC_TEMP_COPIES for i in range(len(parts) - 2))


def raw_split(split: str) -> Path:
    return RAW_DIR / f"{split}.parquet"


def model_dir(model_name: str) -> Path:
    return MODELS_DIR / model_name


def checkpoint_file(model_name: str) -> Path:
    return CHECKPOINTS_DIR / f"{model_name}.pt"


def history_csv(model_name: str) -> Path:
    return METRICS_DIR / "history" / f"{model_name}.csv"


def train_metrics(model_name: str) -> Path:
    return METRICS_DIR / "train" / f"{model_name}.json"


def test_metrics(model_name: str) -> Path:
    return METRICS_DIR / f"{model_name}.json"


def stage_outputs(stage: str) -> tuple[Path, ...]:
    """Every path ``stage`` writes (its outs and metrics in dvc.yaml; a test checks the two agree)."""
    if stage == "fetch":
        return (RAW_DIR, FETCH_REPORT)
    if stage == "vectorize":
        return (FEATURES_DIR,)
    if stage == "evaluate":
        return (*(test_metrics(name) for name in PREDICTOR_NAMES), BASELINES_JSON, COMPARISON_JSON, PREDICTIONS_CSV,
                BANDS_CSV)
    if stage == ENSEMBLE_NAME:
        return (model_dir(ENSEMBLE_NAME), train_metrics(ENSEMBLE_NAME))
    model_name = stage.removeprefix("train_")
    if stage.startswith("train_") and model_name in MODEL_NAMES:
        return (model_dir(model_name), history_csv(model_name), train_metrics(model_name), checkpoint_file(model_name))
    raise ValueError(f"no pipeline stage {stage!r}")


def read_json_output(path: Path, stage: str, *, missing_ok: bool = False) -> dict[str, Any]:
    """A JSON file a stage wrote (``{}`` for a missing one when ``missing_ok``), or an
    ArtifactError naming it and the stage that rewrites it."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise ArtifactError(f"{path}: missing; run `dvc repro {stage}`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: not valid JSON ({error}); rerun `dvc repro -f {stage}`") from None
    except RecursionError:
        raise ArtifactError(f"{path}: JSON nested too deeply to read; rerun `dvc repro -f {stage}`") from None
    if not isinstance(payload, dict):
        raise ArtifactError(f"{path}: expected a JSON object, found {type(payload).__name__}; "
                            f"rerun `dvc repro -f {stage}`")
    return payload


def checkout_commit(cwd: Path | None = None) -> str:
    """The commit checked out here (``git rev-parse HEAD``), or "" outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
