"""Tests for pricer.sources.local: local files and directories, end to end through fetch_splits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pricer.layout import SPLITS
from pricer.sources import DataError, fetch_splits
from pricer.sources.split import unit_hash
from pricer.sources.validate import DROP_REASONS

from .frames import all_ids, dropped_in_all_splits, items, write_jsonl


def test_parquet_file_is_one_split_cut_into_three_by_id_hash(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    items(50).to_parquet(path)
    result = fetch_splits(str(path))
    unit = unit_hash(42, range(50))
    expected = {"train": int((unit >= 0.2).sum()), "validation": int(((unit >= 0.1) & (unit < 0.2)).sum()),
                "test": int((unit < 0.1).sum())}
    assert {split: len(frame) for split, frame in result.splits.items()} == expected
    assert all_ids(result) == list(range(50))
    report = result.report
    assert report["kind"] == "local_file" and report["source"] == str(path)
    assert report["split_strategy"] == "hashed_single_split" and report["source_splits"] == {"train": 50}
    assert report["resolved_revision"] is None and report["revision"] is None
    assert report["splits"]["train"] == {
        "rows_in": expected["train"],
        "rows_out": expected["train"],
        "dropped": dict.fromkeys(DROP_REASONS, 0),
        "truncated_text": 0,
        "capped": 0,
    }
    json.dumps(report, allow_nan=False)  # the stage writes it with allow_nan=False


def test_jsonl_and_json_array_files(tmp_path: Path) -> None:
    jsonl = fetch_splits(str(write_jsonl(tmp_path / "items.jsonl", items(30))))
    array_file = tmp_path / "items.json"
    array_file.write_text(items(30).to_json(orient="records"))
    array = fetch_splits(str(array_file))
    for result in (jsonl, array):
        assert result.report["kind"] == "local_file"
        assert all_ids(result) == list(range(30))
        assert result.splits["train"]["price"].dtype == np.float64
        assert result.splits["train"]["summary"].dtype == "str"
    for split in SPLITS:
        pd.testing.assert_frame_equal(jsonl.splits[split], array.splits[split])


def test_hub_layout_dir_keeps_its_three_splits(tmp_path: Path) -> None:
    directory = tmp_path / "items_lite"
    (directory / "data").mkdir(parents=True)
    items(6).to_parquet(directory / "data" / "train-00000-of-00002.parquet")
    items(6, first_id=6).to_parquet(directory / "data" / "train-00001-of-00002.parquet")
    items(3, first_id=100).to_parquet(directory / "data" / "validation-00000-of-00001.parquet")
    items(2, first_id=200).to_parquet(directory / "data" / "test-00000-of-00001.parquet")
    # `hf download --local-dir` leaves bookkeeping in .cache/; it must not be read as data.
    (directory / ".cache" / "huggingface").mkdir(parents=True)
    (directory / ".cache" / "huggingface" / "junk.parquet").write_bytes(b"not parquet")
    (directory / "README.md").write_text("---\nlicense: mit\n---\n")
    result = fetch_splits(str(directory))
    assert result.report["kind"] == "hub_layout_dir" and result.report["split_strategy"] == "as_given"
    assert result.splits["train"]["id"].tolist() == list(range(12))  # shards in order
    assert result.splits["validation"]["id"].tolist() == [100, 101, 102]
    assert result.splits["test"]["id"].tolist() == [200, 201]


def test_top_level_train_and_test_files_carve_validation_from_train(tmp_path: Path) -> None:
    items(20).to_parquet(tmp_path / "train.parquet")
    items(4, first_id=100).to_parquet(tmp_path / "test.parquet")
    result = fetch_splits(str(tmp_path), validation_fraction=0.25)
    assert result.report["split_strategy"] == "validation_from_train"
    train, validation = result.splits["train"]["id"].tolist(), result.splits["validation"]["id"].tolist()
    assert len(validation) == 5 and len(train) == 15
    assert sorted(train + validation) == list(range(20))
    assert train == sorted(train) and validation == sorted(validation)  # source order kept
    assert result.splits["test"]["id"].tolist() == [100, 101, 102, 103]
    again = fetch_splits(str(tmp_path), validation_fraction=0.25)
    assert again.splits["validation"]["id"].tolist() == validation


def test_save_to_disk_dataset_dict_and_single_dataset(tmp_path: Path) -> None:
    splits = {"train": items(10), "validation": items(3, first_id=10), "test": items(3, first_id=13)}
    datasets.DatasetDict({k: datasets.Dataset.from_pandas(v) for k, v in splits.items()}).save_to_disk(
        str(tmp_path / "dict")
    )
    result = fetch_splits(str(tmp_path / "dict"))
    assert result.report["kind"] == "saved_dataset" and result.report["split_strategy"] == "as_given"
    for split, frame in splits.items():
        assert result.splits[split]["id"].tolist() == frame["id"].tolist()

    datasets.Dataset.from_pandas(items(20)).save_to_disk(str(tmp_path / "single"))
    single = fetch_splits(str(tmp_path / "single"))
    assert single.report["kind"] == "saved_dataset" and single.report["split_strategy"] == "hashed_single_split"
    assert all_ids(single) == list(range(20))


def test_jsonl_with_mixed_price_types(tmp_path: Path) -> None:
    # datasets 5.2 reads a mixed-type JSON column as its Json feature: Python objects in an
    # object column, which validation parses like any other.
    prices = [12.5, "$3.99", "7", None, 4, -1, *range(1, 11)]
    path = tmp_path / "mixed.jsonl"
    records = [{"summary": f"item {i}", "price": price, "id": i} for i, price in enumerate(prices)]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = fetch_splits(str(path))
    assert dropped_in_all_splits(result) == dict.fromkeys(DROP_REASONS, 0) | {
        "non_numeric_price": 1, "missing_price": 1, "non_positive_price": 1
    }
    prices_by_id = pd.concat(result.splits.values()).set_index("id")["price"]
    assert prices_by_id[[0, 2, 4]].tolist() == [12.5, 7.0, 4.0]


def test_null_prices_in_parquet_count_as_missing_not_non_finite(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    prices = pa.array([None, None, float("nan"), *items(30)["price"][3:]], type=pa.float64())
    table = pa.Table.from_pandas(items(30), preserve_index=False)
    pq.write_table(table.set_column(table.schema.get_field_index("price"), "price", prices), tmp_path / "nulls.parquet")
    result = fetch_splits(str(tmp_path / "nulls.parquet"))
    assert dropped_in_all_splits(result) == dict.fromkeys(DROP_REASONS, 0) | {"missing_price": 2, "non_finite_price": 1}


def test_a_missing_arrow_file_of_a_saved_dataset_is_named(tmp_path: Path) -> None:
    datasets.Dataset.from_pandas(items(10)).save_to_disk(str(tmp_path / "saved"))
    arrow_file = next((tmp_path / "saved").glob("*.arrow"))
    arrow_file.unlink()
    message = rf"saved: not a readable datasets\.save_to_disk directory: {re.escape(str(arrow_file))} is missing$"
    with pytest.raises(DataError, match=message):
        fetch_splits(str(tmp_path / "saved"))


@pytest.mark.parametrize(
    ("second_shard", "difference"),
    [
        # an index stored as a column: datasets refuses it as much as any other extra column
        (items(10, first_id=10).set_axis([f"row{i}" for i in range(10)]),
         r"it has \['__index_level_0__'\] in addition"),
        (items(10, first_id=10).drop(columns="title"), r"it lacks \['title'\]"),
    ],
    ids=["stored-pandas-index", "missing-column"],
)
def test_a_shard_with_other_columns_is_named(tmp_path: Path, second_shard: pd.DataFrame, difference: str) -> None:
    directory = tmp_path / "d" / "data"
    directory.mkdir(parents=True)
    items(10).to_parquet(directory / "train-00000-of-00002.parquet")
    shard = directory / "train-00001-of-00002.parquet"
    second_shard.to_parquet(shard)
    message = rf"{re.escape(str(shard))} has other columns than .*train-00000-of-00002\.parquet: {difference}$"
    with pytest.raises(DataError, match=message):
        fetch_splits(str(tmp_path / "d"))
