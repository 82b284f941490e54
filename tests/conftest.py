"""Shared fixtures: tiny, deterministic data so every unit test runs in well under a second."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "real_items_sample.parquet"


@pytest.fixture
def real_sample_path() -> Path:
    if not REAL_SAMPLE.exists():
        pytest.skip(f"real data sample not present at {REAL_SAMPLE} (only on the team's machines)")
    return REAL_SAMPLE


@pytest.fixture
def tiny_texts() -> list[str]:
    words = ["steel", "plastic", "premium", "budget", "pack", "watt", "guitar", "drill", "cable", "lamp"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(120)]


@pytest.fixture
def random_csr() -> sp.csr_matrix:
    matrix = sp.random(200, 50, density=0.08, format="lil", dtype=np.float32, random_state=1)
    matrix[5, :] = 0  # an empty row: its output must be the bias alone
    return matrix.tocsr()


@pytest.fixture(scope="session")
def catalogue_features():
    """A small learnable problem: 1,200 catalogue items hashed to 512 columns, split 1000/200."""
    from pricer.catalogue import generate_catalogue
    from pricer.features import VectorizerSettings, vectorize_texts

    items = generate_catalogue(1200, seed=0)
    settings = VectorizerSettings(n_features=512)
    matrix = vectorize_texts(items["summary"].tolist(), settings)
    prices = items["price"].to_numpy()
    return settings, matrix[:1000], prices[:1000], matrix[1000:], prices[1000:], items


@dataclass(frozen=True)
class LoggedModel:
    """A tiny model trained by a tracked run in a scratch store: its directory, run and version."""

    root: Path
    directory: Path
    run_id: str
    experiment_id: str
    version: str
    texts: list[str]


def log_tiny_model(root: Path, exp_name: str, seed: int) -> LoggedModel:
    """Save a freshly initialised residual network under ``root/models/resnet`` and log it the
    way the train stage does (a run, the pyfunc model, a registry version)."""
    import torch

    from pricer import tracking
    from pricer.catalogue import generate_catalogue
    from pricer.digests import directory_md5
    from pricer.features import VectorizerSettings
    from pricer.models import build_model
    from pricer.predictor import PricePredictor
    from pricer.target import TargetTransform

    items = generate_catalogue(300, seed=0)
    architecture = {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2}
    torch.manual_seed(seed)
    predictor = PricePredictor("resnet", build_model(architecture).eval(), architecture,
                               VectorizerSettings(n_features=512), TargetTransform.fit("standardized_log", items["price"].to_numpy()))
    directory = root / "models" / "resnet"
    predictor.save(directory)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("DVC_EXP_NAME", exp_name)
        tracker = tracking.start_run(enabled=True, experiment="pricer", run_name=f"resnet-{exp_name}", root=root,
                                     tags=tracking.run_tags("resnet", "synthetic", {"data_revision": ""}))
        tracker.log_model_directory(directory, {"best_val_mae": 12.5}, register=True)
        tracker.finish()
    (version,) = tracker.client.search_model_versions(f"run_id = '{tracker.run_id}'")
    return LoggedModel(root, directory, tracker.run_id, tracker.experiment_id, version.version,
                       items["summary"].tolist()[:40])


@pytest.fixture(scope="session")
def logged_model(tmp_path_factory) -> LoggedModel:
    return log_tiny_model(tmp_path_factory.mktemp("store"), "bright-lamp", seed=0)
