"""The ``pricer`` command, run in-process on tiny models saved to a temporary directory."""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pricer.models import build_model
from pricer.predictor import PricePredictor
from pricer.target import TargetTransform

ARCHS = {
    "mlp": {"kind": "mlp", "n_features": 512, "hidden_layers": [16, 8], "init": "kaiming"},
    "resnet": {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2},
}
TEXTS = [
    "Title: Stainless steel cookware set\nCategory: Home & Kitchen",
    "Title: Cordless drill 20V\nCategory: Tools & Home Improvement",
    "Title: Guitar strings, 3 pack",
]


def save_model(directory, name, catalogue_features, seed=0):
    settings, _, train_y, *_ = catalogue_features
    torch.manual_seed(seed)
    predictor = PricePredictor(name, build_model(ARCHS[name]).eval(), ARCHS[name], settings,
                               TargetTransform.fit("standardized_log", train_y), info={"best_epoch": 2})
    predictor.save(directory)
    return PricePredictor.load(directory)


@pytest.fixture
def project(tmp_path, catalogue_features, monkeypatch):
    """A working directory holding models/mlp and models/resnet, as after `dvc repro`."""
    models = {name: save_model(tmp_path / "models" / name, name, catalogue_features) for name in ARCHS}
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    return tmp_path, models


def feed_stdin(monkeypatch, data: bytes):
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stream)


def weights_version(directory) -> str:
    return hashlib.sha256((directory / "weights.pt").read_bytes()).hexdigest()[:8]


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def expected_prices(models, texts):
    return {name: np.round(model.predict(texts), 2) for name, model in models.items()}


# ------------------------------------------------------------------- runs for pricer compare

PARAMS = {"seed": 42, "lr": 0.001, "mlp": {"lr": 0.01, "hidden_layers": [16, 8]}, "data": {"synthetic_items": 800}}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=60).stdout


def predictions(prices: np.ndarray, offsets: dict[str, float], ids: np.ndarray | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"id": np.arange(prices.size) if ids is None else ids, "price": prices})
    for model, offset in offsets.items():
        frame[model] = np.round(prices + offset, 2)
    return frame


def commit_run(root: Path, frame: pd.DataFrame, params: dict, message: str) -> str:
    (root / "metrics").mkdir(exist_ok=True)
    frame.to_csv(root / "metrics" / "predictions.csv", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A git + DVC repository with no pipeline: runs are commits holding metrics/predictions.csv."""
    root = tmp_path / "project"
    root.mkdir()
    for key, value in {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}.items():
        monkeypatch.setenv(key, value)
    git(root, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, timeout=120)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def prices() -> np.ndarray:
    return np.round(np.random.default_rng(0).lognormal(3.5, 1.0, size=200), 2)
