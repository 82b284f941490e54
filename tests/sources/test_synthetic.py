"""Tests for pricer.sources.synthetic: the generated catalogue as a source."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from pricer.sources import fetch_splits, synthetic

from .frames import all_ids, items


def test_synthetic_source_uses_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []

    def catalogue_rows(start: int, stop: int, seed: int) -> pd.DataFrame:
        calls.append((start, stop, seed))
        return items(stop - start, first_id=start)

    fake = types.ModuleType("pricer.catalogue")
    fake.catalogue_rows = catalogue_rows  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pricer.catalogue", fake)
    monkeypatch.setattr(synthetic, "SOURCE_BATCH_ROWS", 40)
    result = fetch_splits("synthetic", synthetic_items=100, seed=7)
    assert calls == [(0, 40, 7), (40, 80, 7), (80, 100, 7)]  # drawn batch by batch
    assert result.report["kind"] == "synthetic" and all_ids(result) == list(range(100))


def test_synthetic_source_with_the_real_catalogue() -> None:
    pytest.importorskip("pricer.catalogue", reason="pricer.catalogue not written yet")
    result = fetch_splits("synthetic", synthetic_items=200, seed=3)
    assert sum(len(frame) for frame in result.splits.values()) == 200
    assert result.report["kind"] == "synthetic"
    assert result.splits["train"]["price"].dtype == np.float64 and result.splits["train"]["id"].dtype == np.int64
