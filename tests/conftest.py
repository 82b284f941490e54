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
    matrix = sp.random(200, 50, density=0.08, format="csr", dtype=np.float32, random_state=1)
    matrix[5] = 0  # an empty row: its output must be the bias alone
    matrix.eliminate_zeros()
    return matrix.tocsr()
