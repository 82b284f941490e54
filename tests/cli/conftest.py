"""The ``pricer`` command, run in-process on tiny models saved to a temporary directory."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest
import torch

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
    (directory / "run.json").write_text(json.dumps({"mlflow_run_id": f"run-{name}"}))
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
