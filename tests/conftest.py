"""Shared fixtures: tiny, deterministic data so every unit test runs in well under a second."""

from __future__ import annotations

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
