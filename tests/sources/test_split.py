"""Tests for pricer.sources.split: arranging train/validation/test, the fraction rule, the train cap."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pytest

from pricer.layout import SPLITS
from pricer.params import check_split_fractions
from pricer.sources import DataError, batches, fetch_splits, local
from pricer.sources.split import unit_hash

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
    # Each row's split is a function of (seed, id): exactly the ids unit_hash places there.
    unit = dict(zip(range(200), unit_hash(1, range(200)), strict=True))
    assert set(first.splits["test"]["id"]) == {i for i, u in unit.items() if u < 0.1}
    assert set(first.splits["validation"]["id"]) == {i for i, u in unit.items() if 0.1 <= u < 0.2}
    assert first.splits["train"]["id"].tolist() == sorted(first.splits["train"]["id"])  # the source's order


def test_a_row_s_split_depends_on_its_id_not_on_order_or_batching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = items(300)
    frame.to_parquet(tmp_path / "items.parquet")
    frame.iloc[::-1].to_parquet(tmp_path / "reversed.parquet")
    whole = fetch_splits(str(tmp_path / "items.parquet"), seed=5)
    monkeypatch.setattr(batches, "SOURCE_BATCH_ROWS", 7)
    monkeypatch.setattr(local, "SOURCE_BATCH_ROWS", 7)
    in_batches = fetch_splits(str(tmp_path / "items.parquet"), seed=5)
    reversed_order = fetch_splits(str(tmp_path / "reversed.parquet"), seed=5)
    for split in SPLITS:
        pd.testing.assert_frame_equal(whole.splits[split], in_batches.splits[split])
        assert set(reversed_order.splits[split]["id"]) == set(whole.splits[split]["id"])


def test_fractions_size_the_splits(tmp_path: Path) -> None:
    items(10_000).to_parquet(tmp_path / "items.parquet")
    result = fetch_splits(str(tmp_path / "items.parquet"), validation_fraction=0.2, test_fraction=0.05)
    sizes = [len(result.splits[split]) for split in SPLITS]
    # Binomial counts: within 4 standard deviations of 7,500 / 2,000 / 500.
    for size, fraction in zip(sizes, (0.75, 0.2, 0.05), strict=True):
        assert abs(size - 10_000 * fraction) < 4 * (10_000 * fraction * (1 - fraction)) ** 0.5
    assert sum(sizes) == 10_000


def test_duplicate_ids_are_dropped_before_splitting_and_stay_together(tmp_path: Path) -> None:
    # Issue 21 family 4: 600 duplicated rows in a single file; no test item may be a training item.
    frame = items(2_000)
    repeats = frame.sample(600, random_state=0).assign(price=lambda f: f["price"] + 1.0)
    pd.concat([frame, repeats], ignore_index=True).to_parquet(tmp_path / "items.parquet")
    result = fetch_splits(str(tmp_path / "items.parquet"))
    ids = {split: set(result.splits[split]["id"]) for split in SPLITS}
    assert not (ids["train"] & ids["test"] or ids["train"] & ids["validation"] or ids["validation"] & ids["test"])
    assert sum(map(len, ids.values())) == 2_000
    dropped = {split: result.report["splits"][split]["dropped"]["duplicate_id"] for split in SPLITS}
    assert sum(dropped.values()) == 600  # counted where each really was dropped, and dropped
    for split in SPLITS:  # the first row of each id is the one kept
        kept = result.splits[split].set_index("id")["price"]
        assert (kept == frame.set_index("id").loc[kept.index, "price"]).all()


def test_ids_shared_by_a_source_s_own_splits_are_counted_and_kept_out_of_train(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(30), "validation": items(5, first_id=28), "test": items(6, first_id=25)})
    result = fetch_splits(str(tmp_path / "d"))
    assert result.splits["test"]["id"].tolist() == list(range(25, 31))
    assert result.splits["validation"]["id"].tolist() == [31, 32]  # 28-30 are test items
    assert result.splits["train"]["id"].tolist() == list(range(25))
    assert result.report["source_shared_ids"] == {"train & test": 5, "validation & test": 3}
    assert result.report["splits"]["train"]["dropped"]["id_in_other_split"] == 5
    assert result.report["splits"]["validation"]["dropped"]["id_in_other_split"] == 3


def test_sources_without_ids_number_their_rows_per_split(tmp_path: Path) -> None:
    splits = {name: items(n, with_id=False) for name, n in (("train", 20), ("validation", 4), ("test", 4))}
    hub_layout(tmp_path / "d", splits)
    result = fetch_splits(str(tmp_path / "d"))
    assert [len(result.splits[split]) for split in SPLITS] == [20, 4, 4]
    assert result.report["source_shared_ids"] == {}


def test_a_split_that_receives_no_row_is_a_clear_error(tmp_path: Path) -> None:
    items(3).to_parquet(tmp_path / "items.parquet")
    with pytest.raises(DataError, match=r"split '(validation|test)' received none of the 3 rows read .*raise data\."):
        fetch_splits(str(tmp_path / "items.parquet"), validation_fraction=0.01, test_fraction=0.01)


def test_train_and_validation_carve_test_from_train(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(10), "validation": items(2, first_id=50)})
    result = fetch_splits(str(tmp_path / "d"), test_fraction=0.2)
    assert result.report["split_strategy"] == "test_from_train"
    carved = [i for i, u in enumerate(unit_hash(42, range(10))) if u < 0.2]
    assert result.splits["test"]["id"].tolist() == carved and len(result.splits["train"]) == 10 - len(carved)
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
            name: datasets.Dataset.from_pandas(items(40 if name == "train" else 4, first_id=100 * i))
            for i, name in enumerate(["train", "test", "extra"])
        }
    )
    saved.save_to_disk(str(tmp_path / "saved"))
    result = fetch_splits(str(tmp_path / "saved"))
    assert result.report["split_strategy"] == "validation_from_train"
    assert result.report["source_splits"] == {"extra": 4, "test": 4, "train": 40}
    assert result.splits["test"]["id"].tolist() == [100, 101, 102, 103]


def test_an_empty_ignored_split_does_not_matter(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(5), "validation": items(2, first_id=10), "test": items(2, first_id=20),
                                "unlabeled": items(0)})
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
