"""Tests for pricer.sources.split: arranging train/validation/test, the fraction rule, the train cap."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pytest

from pricer.sources import DataError, fetch_splits
from pricer.params import check_split_fractions
from pricer.layout import SPLITS

from .frames import hub_layout, items


def test_single_split_is_deterministic_in_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    items(200).to_parquet(path)
    first, second = fetch_splits(str(path), seed=1), fetch_splits(str(path), seed=1)
    other = fetch_splits(str(path), seed=2)
    for split in SPLITS:
        pd.testing.assert_frame_equal(first.splits[split], second.splits[split])
    assert first.report == second.report
    assert first.splits["test"]["id"].tolist() != other.splits["test"]["id"].tolist()
    id_sets = [set(first.splits[split]["id"]) for split in SPLITS]
    assert not (id_sets[0] & id_sets[1] or id_sets[0] & id_sets[2] or id_sets[1] & id_sets[2])
    # Shuffled, not the file's order: later stages read "the first N" rows of a split.
    assert first.splits["train"]["id"].tolist() != sorted(first.splits["train"]["id"])


def test_fractions_size_the_splits(tmp_path: Path) -> None:
    items(100).to_parquet(tmp_path / "items.parquet")
    result = fetch_splits(str(tmp_path / "items.parquet"), validation_fraction=0.2, test_fraction=0.05)
    assert [len(result.splits[split]) for split in SPLITS] == [75, 20, 5]


def test_train_and_validation_carve_test_from_train(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(10), "validation": items(2, first_id=50)})
    result = fetch_splits(str(tmp_path / "d"), test_fraction=0.2)
    assert result.report["split_strategy"] == "test_from_train"
    assert len(result.splits["test"]) == 2 and len(result.splits["train"]) == 8
    assert result.splits["validation"]["id"].tolist() == [50, 51]


def test_max_train_items_keeps_the_first_validated_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = items(10)
    train.loc[0, "price"] = -1.0  # dropped by validation before the cap is applied
    hub_layout(tmp_path / "d", {"train": train, "validation": items(2, first_id=50), "test": items(2, first_id=60)})
    with caplog.at_level(logging.INFO, logger="pricer.sources"):
        result = fetch_splits(str(tmp_path / "d"), max_train_items=4)
    assert result.splits["train"]["id"].tolist() == [1, 2, 3, 4]
    assert result.report["max_train_items"] == 4
    assert result.report["splits"]["train"] | {"dropped": None} == {
        "rows_in": 10, "rows_out": 4, "dropped": None, "truncated_text": 0, "capped": 5
    }
    assert "max_train_items=4 keeps the first 4 of 9 train rows" in caplog.text


def test_extra_source_splits_are_ignored(tmp_path: Path) -> None:
    hub_layout(
        tmp_path / "d",
        {"train": items(5), "validation": items(2, first_id=10), "test": items(2, first_id=20), "unlabeled": items(3)},
    )
    assert fetch_splits(str(tmp_path / "d")).report["split_strategy"] == "as_given"
    saved = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_pandas(items(4, first_id=10 * i))
            for i, name in enumerate(["train", "test", "extra"])
        }
    )
    saved.save_to_disk(str(tmp_path / "saved"))
    result = fetch_splits(str(tmp_path / "saved"))
    assert result.report["split_strategy"] == "validation_from_train"
    assert result.report["source_splits"] == {"extra": 4, "test": 4, "train": 4}
    assert result.splits["test"]["id"].tolist() == [10, 11, 12, 13]


def test_an_empty_ignored_split_does_not_matter(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(5), "validation": items(2), "test": items(2), "unlabeled": items(0)})
    assert fetch_splits(str(tmp_path / "d")).report["split_strategy"] == "as_given"


def test_several_splits_without_train_is_an_error(tmp_path: Path) -> None:
    saved = datasets.DatasetDict({"validation": datasets.Dataset.from_pandas(items(4)),
                                  "test": datasets.Dataset.from_pandas(items(4))})
    saved.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match=r"saved: no 'train' split \(the source has \['test', 'validation'\]\)"):
        fetch_splits(str(tmp_path / "saved"))


def test_an_empty_source_split_is_an_error(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(5), "validation": items(2), "test": items(0)})
    with pytest.raises(DataError, match=r"/d: split 'test' is empty in the source"):
        fetch_splits(str(tmp_path / "d"))


def test_zero_or_too_few_rows_to_split(tmp_path: Path) -> None:
    items(2).to_parquet(tmp_path / "two.parquet")
    items(0).to_parquet(tmp_path / "zero.parquet")
    with pytest.raises(DataError, match=r"zero\.parquet: split 'train' is empty in the source"):
        fetch_splits(str(tmp_path / "zero.parquet"))
    with pytest.raises(DataError, match=r"two\.parquet: split 'train' has 2 rows, too few to split"):
        fetch_splits(str(tmp_path / "two.parquet"))


@pytest.mark.parametrize(
    "arguments",
    [{"validation_fraction": 0.0}, {"test_fraction": 1.0}, {"validation_fraction": 0.6, "test_fraction": 0.4},
     {"max_train_items": 0}, {"synthetic_items": 0}],
)
def test_impossible_arguments(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        fetch_splits("synthetic", **arguments)


@pytest.mark.parametrize(
    ("validation_fraction", "test_fraction", "message"),
    [
        (0.0, 0.1, r"validation_fraction must be a fraction in \(0, 0\.5\), got 0\.0"),
        (0.1, 0.5, r"test_fraction must be a fraction in \(0, 0\.5\), got 0\.5"),
        (-0.1, 0.1, r"validation_fraction must be a fraction in \(0, 0\.5\)"),
        (0.45, 0.45, r"data.validation_fraction \+ data.test_fraction must be < 0\.9, got 0\.45 \+ 0\.45"),
    ],
)
def test_check_split_fractions_names_the_broken_rule(
    validation_fraction: float, test_fraction: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_split_fractions(validation_fraction, test_fraction)


def test_check_split_fractions_accepts_the_edges_inside_the_rule() -> None:
    check_split_fractions(0.1, 0.1)
    check_split_fractions(0.49, 0.4)


def test_fetch_splits_applies_the_fraction_rule() -> None:
    with pytest.raises(ValueError, match=r"test_fraction must be a fraction in \(0, 0\.5\), got 0\.6"):
        fetch_splits("synthetic", synthetic_items=10, test_fraction=0.6)
