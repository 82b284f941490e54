"""Tests for pricer.sources.synthetic: the generated catalogue as a source."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from pricer.sources import fetch_splits

from .frames import all_ids, items


def test_synthetic_source_uses_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def generate_catalogue(n_items: int, seed: int) -> pd.DataFrame:
        calls.append((n_items, seed))
        return items(n_items)

    fake = types.ModuleType("pricer.catalogue")
    fake.generate_catalogue = generate_catalogue  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pricer.catalogue", fake)
    result = fetch_splits("synthetic", synthetic_items=100, seed=7)
    assert calls == [(100, 7)]
    assert result.report["kind"] == "synthetic" and all_ids(result) == list(range(100))


def test_synthetic_source_with_the_real_catalogue() -> None:
    pytest.importorskip("pricer.catalogue", reason="pricer.catalogue not written yet")
    result = fetch_splits("synthetic", synthetic_items=200, seed=3)
    assert sum(len(frame) for frame in result.splits.values()) == 200
    assert result.report["kind"] == "synthetic"
    assert result.splits["train"]["price"].dtype == np.float64 and result.splits["train"]["id"].dtype == np.int64
