"""Tests for pricer.sources.fetch: fetch_splits' report, its arguments, and the real sample."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pricer.layout import SPLITS
from pricer.sources import fetch_splits
from pricer.sources.validate import DROP_REASONS, MAX_TEXT_CHARS

from .frames import all_ids, items


def test_revision_is_ignored_with_a_warning_for_local_sources(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    items(10).to_parquet(tmp_path / "items.parquet")
    with caplog.at_level(logging.WARNING, logger="pricer.sources"):
        result = fetch_splits(str(tmp_path / "items.parquet"), revision="v1")
    assert result.report["revision"] == "v1" and result.report["resolved_revision"] is None
    assert "only Hub datasets have revisions" in caplog.text


def test_real_sample_loads_splits_and_validates(real_sample_path: Path) -> None:
    result = fetch_splits(str(real_sample_path))
    report = result.report
    assert report["kind"] == "local_file" and report["source_splits"] == {"train": 11_816}
    sizes = [len(result.splits[split]) for split in SPLITS]
    # Placed by a hash of each id: binomial counts, within 4 standard deviations of 80/10/10%.
    assert sum(sizes) == 11_816
    for size, fraction in zip(sizes, (0.8, 0.1, 0.1), strict=True):
        assert abs(size - 11_816 * fraction) < 4 * (11_816 * fraction * (1 - fraction)) ** 0.5
    assert all(report["splits"][split]["dropped"] == dict.fromkeys(DROP_REASONS, 0) for split in SPLITS)
    import pyarrow.parquet as pq

    source_ids = pq.read_table(real_sample_path, columns=["id"]).column("id").to_pylist()
    assert all_ids(result) == sorted(source_ids)  # every row lands in exactly one split
    for frame in result.splits.values():
        assert frame["price"].dtype == np.float64 and (frame["price"] > 0).all()
        assert frame["summary"].dtype == "str" and frame["summary"].str.startswith("Title: ").all()
        assert frame["id"].dtype == np.int64
    again = fetch_splits(str(real_sample_path))
    pd.testing.assert_frame_equal(result.splits["test"], again.splits["test"])


def test_real_sample_with_the_full_text_field(real_sample_path: Path) -> None:
    result = fetch_splits(str(real_sample_path), text_field="full", seed=0, max_train_items=1000)
    train = result.report["splits"]["train"]
    assert len(result.splits["train"]) == 1000 and train["capped"] == train["rows_in"] - 1000
    assert result.splits["train"]["full"].str.len().max() <= MAX_TEXT_CHARS
