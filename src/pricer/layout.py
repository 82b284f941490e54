"""Where the pipeline's files live, relative to the project root: the one definition of each
path that ``dvc.yaml`` declares (a test checks the two agree)."""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "validation", "test")
MODEL_NAMES = ("mlp", "resnet")

RAW_DIR = Path("data/raw")
FETCH_REPORT = Path("data/fetch_report.json")
FEATURES_DIR = Path("data/features")
MODELS_DIR = Path("models")
CHECKPOINTS_DIR = Path("checkpoints")
METRICS_DIR = Path("metrics")
PREDICTIONS_CSV = METRICS_DIR / "predictions.csv"
BANDS_CSV = METRICS_DIR / "bands.csv"
BASELINES_JSON = METRICS_DIR / "baselines.json"


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
