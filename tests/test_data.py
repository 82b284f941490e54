"""Tests for pricer.data: source resolution, every source kind, splitting, validation, corrupt
inputs, the Hub's failure modes (offline, against loopback servers only) and the real sample."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helpers import not_found_hub
from pricer import data
from pricer.data import DROP_REASONS, MAX_TEXT_CHARS, DataError, fetch_splits, resolve_source, validate_split

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/real_items_sample.parquet"
HUB_ERROR_BUDGET_S = 30.0


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_dataset writes Arrow caches; keep them out of ~/.cache and separate per test.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


def items(n: int, *, first_id: int = 0, with_id: bool = True) -> pd.DataFrame:
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "title": [f"Item {i}" for i in ids],
            "summary": [f"Title: Item {i}\nCategory: Tools" for i in ids],
            "price": (ids + 1).astype(float) * 1.25,
        }
    )
    if with_id:
        frame["id"] = ids
    return frame


def write_jsonl(path: Path, frame: pd.DataFrame) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in frame.to_dict(orient="records")))
    return path


def hub_layout(directory: Path, splits: dict[str, pd.DataFrame]) -> Path:
    """A directory shaped like a Hub dataset repo: data/<split>-00000-of-00001.parquet."""
    (directory / "data").mkdir(parents=True)
    for split, frame in splits.items():
        frame.to_parquet(directory / "data" / f"{split}-00000-of-00001.parquet")
    return directory


def all_ids(result: data.FetchResult) -> list[int]:
    return sorted(int(i) for split in data.SPLITS for i in result.splits[split]["id"])


def dropped_in_all_splits(result: data.FetchResult) -> dict[str, int]:
    splits = result.report["splits"]
    return {reason: sum(splits[split]["dropped"][reason] for split in data.SPLITS) for reason in DROP_REASONS}


# --------------------------------------------------------------------------------------------
# Source resolution


@pytest.fixture
def source_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    items(10).to_parquet("items.parquet")
    write_jsonl(tmp_path / "items.jsonl", items(10))
    (tmp_path / "items.json").write_text(items(3).to_json(orient="records"))
    (tmp_path / "table.csv").write_text("summary,price\na,1\n")
    hub_layout(tmp_path / "hub_dir", {"train": items(10)})
    datasets.DatasetDict({"train": datasets.Dataset.from_pandas(items(4))}).save_to_disk("saved_dict")
    datasets.Dataset.from_pandas(items(4)).save_to_disk("saved_single")
    (tmp_path / "notes_dir").mkdir()
    (tmp_path / "notes_dir" / "notes.txt").write_text("no data here")
    hub_layout(tmp_path / "owner" / "name", {"train": items(3)})  # a local path spelled like a Hub id
    return tmp_path


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("synthetic", "synthetic"),
        ("items.parquet", "local_file"),
        ("./items.parquet", "local_file"),
        ("items.jsonl", "local_file"),
        ("items.json", "local_file"),
        ("hub_dir", "hub_layout_dir"),
        ("saved_dict", "saved_dataset"),
        ("saved_single", "saved_dataset"),
        ("owner/name", "hub_layout_dir"),  # an existing path wins over the Hub
        ("ed-donner/items_lite", "hub"),
        ("ed-donner/items_full", "hub"),
        ("someone/data.v2", "hub"),
    ],
)
def test_resolve_source_kinds(source_tree: Path, source: str, kind: str) -> None:
    assert resolve_source(source).kind == kind


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.parquet", r"missing\.parquet: no such file"),
        ("data/missing.jsonl", r"data/missing\.jsonl: no such file"),
        ("./missing", r"\./missing: no such file"),
        ("/definitely/not/here", r"/definitely/not/here: no such file"),
        ("~/pricer-no-such-dir-3f9a", r"~/pricer-no-such-dir-3f9a: no such file"),
        ("table.csv", r"table\.csv: unsupported file type '\.csv'"),
        ("notes_dir", r"notes_dir: directory has no parquet files and is not a datasets\.save_to_disk"),
        ("nonsense", r"'nonsense': not a known data source; expected 'synthetic'.*parquet.*save_to_disk.*Hub"),
        ("", r"'': not a known data source"),
        ("a/b/c", r"'a/b/c': not a known data source"),
    ],
)
def test_resolve_source_errors(source_tree: Path, source: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        resolve_source(source)


# --------------------------------------------------------------------------------------------
# Every source kind, end to end


def test_parquet_file_is_one_split_shuffled_into_three(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    items(50).to_parquet(path)
    result = fetch_splits(str(path))
    assert {split: len(frame) for split, frame in result.splits.items()} == {"train": 40, "validation": 5, "test": 5}
    assert all_ids(result) == list(range(50))
    report = result.report
    assert report["kind"] == "local_file" and report["source"] == str(path)
    assert report["split_strategy"] == "shuffled_single_split" and report["source_splits"] == {"train": 50}
    assert report["resolved_revision"] is None and report["revision"] is None
    assert report["splits"]["train"] == {
        "rows_in": 40,
        "rows_out": 40,
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
    for split in data.SPLITS:
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


def test_train_and_validation_carve_test_from_train(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(10), "validation": items(2, first_id=50)})
    result = fetch_splits(str(tmp_path / "d"), test_fraction=0.2)
    assert result.report["split_strategy"] == "test_from_train"
    assert len(result.splits["test"]) == 2 and len(result.splits["train"]) == 8
    assert result.splits["validation"]["id"].tolist() == [50, 51]


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
    assert single.report["kind"] == "saved_dataset" and single.report["split_strategy"] == "shuffled_single_split"
    assert all_ids(single) == list(range(20))


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


def test_revision_is_ignored_with_a_warning_for_local_sources(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    items(10).to_parquet(tmp_path / "items.parquet")
    with caplog.at_level(logging.WARNING, logger="pricer.data"):
        result = fetch_splits(str(tmp_path / "items.parquet"), revision="v1")
    assert result.report["revision"] == "v1" and result.report["resolved_revision"] is None
    assert "only Hub datasets have revisions" in caplog.text


# --------------------------------------------------------------------------------------------
# Splitting


def test_single_split_is_deterministic_in_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    items(200).to_parquet(path)
    first, second = fetch_splits(str(path), seed=1), fetch_splits(str(path), seed=1)
    other = fetch_splits(str(path), seed=2)
    for split in data.SPLITS:
        pd.testing.assert_frame_equal(first.splits[split], second.splits[split])
    assert first.report == second.report
    assert first.splits["test"]["id"].tolist() != other.splits["test"]["id"].tolist()
    id_sets = [set(first.splits[split]["id"]) for split in data.SPLITS]
    assert not (id_sets[0] & id_sets[1] or id_sets[0] & id_sets[2] or id_sets[1] & id_sets[2])
    # Shuffled, not the file's order: later stages read "the first N" rows of a split.
    assert first.splits["train"]["id"].tolist() != sorted(first.splits["train"]["id"])


def test_fractions_size_the_splits(tmp_path: Path) -> None:
    items(100).to_parquet(tmp_path / "items.parquet")
    result = fetch_splits(str(tmp_path / "items.parquet"), validation_fraction=0.2, test_fraction=0.05)
    assert [len(result.splits[s]) for s in data.SPLITS] == [75, 20, 5]


def test_max_train_items_keeps_the_first_validated_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = items(10)
    train.loc[0, "price"] = -1.0  # dropped by validation before the cap is applied
    hub_layout(tmp_path / "d", {"train": train, "validation": items(2, first_id=50), "test": items(2, first_id=60)})
    with caplog.at_level(logging.INFO, logger="pricer.data"):
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
    dd = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_pandas(items(4, first_id=10 * i))
            for i, name in enumerate(["train", "test", "extra"])
        }
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    result = fetch_splits(str(tmp_path / "saved"))
    assert result.report["split_strategy"] == "validation_from_train"
    assert result.report["source_splits"] == {"extra": 4, "test": 4, "train": 4}
    assert result.splits["test"]["id"].tolist() == [10, 11, 12, 13]


def test_an_empty_ignored_split_does_not_matter(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(5), "validation": items(2), "test": items(2), "unlabeled": items(0)})
    assert fetch_splits(str(tmp_path / "d")).report["split_strategy"] == "as_given"


def test_several_splits_without_train_is_an_error(tmp_path: Path) -> None:
    dd = datasets.DatasetDict({"validation": datasets.Dataset.from_pandas(items(4)),
                               "test": datasets.Dataset.from_pandas(items(4))})
    dd.save_to_disk(str(tmp_path / "saved"))
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


# --------------------------------------------------------------------------------------------
# Validation


def good_rows() -> pd.DataFrame:
    return pd.DataFrame({"summary": ["a lamp", "a drill", "a cable"], "price": [10.0, 20.5, 3.0], "id": [1, 2, 3]})


def with_bad_row(**bad: Any) -> pd.DataFrame:
    """Three good rows plus id 99, whose fields are ``bad`` (object columns where types mix)."""
    row = {"summary": "a guitar", "price": 5.0, "id": 99} | bad
    columns = {name: [*good_rows()[name].tolist(), row[name]] for name in ("summary", "price", "id")}
    return pd.DataFrame({name: pd.Series(values, dtype=_dtype_for(values)) for name, values in columns.items()})


def _dtype_for(values: list[Any]) -> Any:
    kinds = {type(v) for v in values if v is not None}
    return object if None in values or len(kinds) > 1 else None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"summary": None}, "missing_text"),
        ({"summary": ""}, "empty_text"),
        ({"summary": " \n\t "}, "empty_text"),
        ({"price": None}, "missing_price"),
        ({"price": "$12.99"}, "non_numeric_price"),
        ({"price": "twelve"}, "non_numeric_price"),
        ({"price": float("inf")}, "non_finite_price"),
        ({"price": float("-inf")}, "non_finite_price"),
        ({"price": float("nan")}, "non_finite_price"),
        ({"price": 0.0}, "non_positive_price"),
        ({"price": -4.5}, "non_positive_price"),
        ({"id": None}, "missing_id"),
        ({"id": 1}, "duplicate_id"),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
def test_each_drop_reason_is_counted(bad: dict[str, Any], reason: str) -> None:
    cleaned, counts = validate_split(with_bad_row(**bad), split="train", text_field="summary", source="t.parquet")
    assert counts == dict.fromkeys(DROP_REASONS, 0) | {reason: 1, "truncated_text": 0}
    assert cleaned["id"].tolist() == [1, 2, 3]
    assert cleaned["price"].tolist() == [10.0, 20.5, 3.0]
    assert (cleaned["price"].dtype, cleaned["summary"].dtype, cleaned["id"].dtype) == (np.float64, "str", np.int64)


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        (pd.array([10.0, 20.5, 3.0, None], dtype="Float64"), "missing_price"),
        (pd.Series(pa.array([10.0, 20.5, 3.0, None]), dtype=pd.ArrowDtype(pa.float64())), "missing_price"),
        (pd.Series(pa.array([10.0, 20.5, 3.0, float("nan")]), dtype=pd.ArrowDtype(pa.float64())), "non_finite_price"),
        (pd.Series(["10", "20.5", " 3.0 ", None], dtype="str"), "missing_price"),
        (pd.Series(["10", "20.5", "3", "nan"], dtype="str"), "non_finite_price"),
        (pd.Series(["10", "20.5", "3", "1,299.00"], dtype="str"), "non_numeric_price"),
    ],
    ids=["nullable-null", "arrow-null", "arrow-nan", "str-null", "str-nan", "str-thousands"],
)
def test_price_nulls_and_nans_by_dtype(price: Any, reason: str) -> None:
    frame = pd.DataFrame({"summary": ["a", "b", "c", "d"], "price": price, "id": [1, 2, 3, 99]})
    cleaned, counts = validate_split(frame, split="test", text_field="summary", source="s")
    assert counts[reason] == 1 and sum(counts[r] for r in DROP_REASONS) == 1
    assert cleaned["price"].tolist() == [10.0, 20.5, 3.0] and cleaned["price"].dtype == np.float64


def test_numeric_strings_become_float_prices() -> None:
    frame = pd.DataFrame({"summary": ["a", "b", "c"], "price": pd.Series(["12.99", " 5 ", "1e2"], dtype="str")})
    cleaned, _ = validate_split(frame, split="train", text_field="summary", source="s")
    assert cleaned["price"].tolist() == [12.99, 5.0, 100.0] and cleaned["price"].dtype == np.float64


def test_a_row_counts_under_its_first_reason_only() -> None:
    frame = pd.DataFrame(
        {
            "summary": pd.Series([None, "", "ok", "ok", "ok", "ok", "ok"], dtype=object),
            "price": pd.Series(["$1", -1.0, None, "$2", float("inf"), -3.0, 4.0], dtype=object),
            "id": [1, 2, 3, 4, 5, 6, 7],
        }
    )
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts == {
        "missing_text": 1, "empty_text": 1, "missing_price": 1, "non_numeric_price": 1,
        "non_finite_price": 1, "non_positive_price": 1, "missing_id": 0, "duplicate_id": 0, "truncated_text": 0,
    }
    assert cleaned["id"].tolist() == [7]


def test_duplicate_ids_keep_the_first_valid_copy() -> None:
    frame = pd.DataFrame({"summary": ["a", "b", "c", "d"], "price": [-1.0, 2.0, 3.0, 4.0], "id": [7, 7, 8, 7]})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert cleaned[["summary", "id"]].values.tolist() == [["b", 7], ["c", 8]]
    assert (counts["non_positive_price"], counts["duplicate_id"]) == (1, 1)


def test_long_texts_are_truncated_not_dropped_and_non_ascii_is_kept() -> None:
    non_ascii = "Café – 日本語 ギター 🎸 naïve"
    texts = ["x" * (MAX_TEXT_CHARS + 5), non_ascii, "y" * MAX_TEXT_CHARS]
    frame = pd.DataFrame({"summary": texts, "price": [1.0, 2.0, 3.0]})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts["truncated_text"] == 1 and len(cleaned) == 3
    assert cleaned["summary"].str.len().tolist() == [MAX_TEXT_CHARS, len(non_ascii), MAX_TEXT_CHARS]
    assert cleaned.loc[1, "summary"] == non_ascii


def test_missing_id_column_gets_row_numbers(caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.DataFrame({"summary": ["a", "b", "c"], "price": [1.0, 0.0, 3.0]})
    with caplog.at_level(logging.INFO, logger="pricer.data"):
        cleaned, _ = validate_split(frame, split="validation", text_field="summary", source="s")
    assert cleaned["id"].tolist() == [0, 2] and cleaned["id"].dtype == np.int64
    assert "s: split 'validation': no 'id' column; using row numbers as ids" in caplog.text


def test_string_ids_stay_strings_and_other_columns_pass_through() -> None:
    frame = pd.DataFrame(
        {
            "summary": ["a", "b"],
            "price": [1, 2],
            "id": ["B00X", "B00Y"],
            "category": ["Tools", None],
            "weight": [1.5, None],
        }
    )
    cleaned, _ = validate_split(frame, split="train", text_field="summary", source="s")
    assert cleaned["id"].tolist() == ["B00X", "B00Y"] and cleaned["id"].dtype == "str"
    assert cleaned["price"].dtype == np.float64  # int prices become float64
    assert list(cleaned.columns) == ["summary", "price", "id", "category", "weight"]


def test_validation_logs_one_line_per_split(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pricer.data"):
        validate_split(with_bad_row(price=-1.0), split="test", text_field="summary", source="items.parquet")
    lines = [r.getMessage() for r in caplog.records if "kept" in r.getMessage()]
    assert lines == [
        "items.parquet: split 'test': kept 3 of 4 rows; dropped 1 (non_positive_price=1); "
        "truncated 0 texts to 100000 characters"
    ]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"summary": ["a"]}), r"src\.parquet: split 'train': missing required column 'price'"),
        (pd.DataFrame({"price": [1.0]}), r"src\.parquet: split 'train': missing required column 'summary'"),
        (pd.DataFrame({"summary": [1, 2], "price": [1.0, 2.0]}),
         r"src\.parquet: split 'train': column 'summary' must hold text, but has dtype int64"),
        (pd.DataFrame({"summary": pd.Series(["a", 3], dtype=object), "price": [1.0, 2.0]}),
         r"split 'train': column 'summary' must hold text, but has dtype object"),
        (pd.DataFrame({"summary": ["a"], "price": [True]}),
         r"split 'train': column 'price' must hold numbers, but has dtype bool"),
        (pd.DataFrame({"summary": ["a"], "price": [1.0], "id": [1.5]}),
         r"split 'train': column 'id' must hold integers or strings"),
        (pd.DataFrame({"summary": pd.Series([], dtype="str"), "price": pd.Series([], dtype=float)}),
         r"src\.parquet: split 'train': no rows$"),
        (pd.DataFrame({"summary": ["", None], "price": [1.0, 2.0]}),
         r"src\.parquet: split 'train': no rows left after validation "
         r"\(dropped: \{'missing_text': 1, 'empty_text': 1\}\)"),
    ],
    ids=["no-price", "no-text", "int-text", "mixed-text", "bool-price", "fractional-id", "empty", "all-dropped"],
)
def test_validation_errors_name_source_split_and_column(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message):
        validate_split(frame, split="train", text_field="summary", source="src.parquet")


def test_validation_through_fetch_reports_counts(tmp_path: Path) -> None:
    train = items(20)
    train.loc[3, "summary"] = "   "
    train.loc[5, "id"] = 4
    hub_layout(tmp_path / "d", {"train": train, "validation": items(3), "test": items(3)})
    result = fetch_splits(str(tmp_path / "d"))
    report = result.report["splits"]["train"]
    assert report["rows_in"] == 20 and report["rows_out"] == 18
    assert report["dropped"] == dict.fromkeys(DROP_REASONS, 0) | {"empty_text": 1, "duplicate_id": 1}


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


def test_missing_text_field_through_fetch_names_source_and_split(tmp_path: Path) -> None:
    items(10).to_parquet(tmp_path / "items.parquet")
    with pytest.raises(DataError, match=r"items\.parquet: split 'train': missing required column 'prompt'"):
        fetch_splits(str(tmp_path / "items.parquet"), text_field="prompt")


def test_null_prices_in_parquet_count_as_missing_not_non_finite(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    prices = pa.array([None, None, float("nan"), *items(30)["price"][3:]], type=pa.float64())
    table = pa.Table.from_pandas(items(30), preserve_index=False)
    pq.write_table(table.set_column(table.schema.get_field_index("price"), "price", prices), tmp_path / "nulls.parquet")
    result = fetch_splits(str(tmp_path / "nulls.parquet"))
    assert dropped_in_all_splits(result) == dict.fromkeys(DROP_REASONS, 0) | {"missing_price": 2, "non_finite_price": 1}


# --------------------------------------------------------------------------------------------
# Corrupt inputs


def test_truncated_parquet_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    items(50).to_parquet(good)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    message = rf"{re.escape(str(broken))} is not a readable parquet file \(truncated or corrupt\?\)"
    with pytest.raises(DataError, match=message):
        fetch_splits(str(broken))


def test_parquet_with_corrupt_pages_in_a_directory_names_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    hub_layout(directory, {"train": items(300), "validation": items(3), "test": items(300)})
    test_file = directory / "data" / "test-00000-of-00001.parquet"
    raw = bytearray(test_file.read_bytes())
    raw[100 : len(raw) // 2] = b"\xab" * (len(raw) // 2 - 100)  # footer intact, pages garbage
    test_file.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"could not read {re.escape(str(test_file))}: corrupt parquet data"):
        fetch_splits(str(directory))


@pytest.mark.parametrize("name", ["empty.parquet", "empty.jsonl", "empty.json"])
def test_empty_files_are_named(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=rf"{re.escape(str(tmp_path / name))} is an empty file"):
        fetch_splits(str(tmp_path / name))


def test_whitespace_only_jsonl_is_empty(tmp_path: Path) -> None:
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    with pytest.raises(DataError, match=r"blank\.jsonl is an empty file \(no JSON records\)"):
        fetch_splits(str(tmp_path / "blank.jsonl"))


def test_jsonl_broken_line_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "broken.jsonl", items(5))
    lines = path.read_text().splitlines()
    lines[2] = '{"summary": "c", price'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"could not read {re.escape(str(path))}: line 3: invalid JSON"):
        fetch_splits(str(path))


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "list.jsonl", items(5))
    path.write_text(path.read_text() + "[1, 2]\n")
    with pytest.raises(DataError, match=r"list\.jsonl: line 6: expected a JSON object, got list"):
        fetch_splits(str(path))


def test_json_array_syntax_error_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"summary": "a", "price": 1.0},\n  {"summary": "b", "price": }\n]\n')
    with pytest.raises(DataError, match=r"broken\.json: line 3: invalid JSON"):
        fetch_splits(str(path))


def test_invalid_utf8_in_jsonl_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    # datasets 5.2 would load these bytes into its Arrow cache and fail later in to_pandas.
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"summary": "ok", "price": 1.0}\n{"summary": "caf\xe9", "price": 2.0}\n')
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 2: invalid UTF-8 .*re-encode the file as UTF-8"):
        fetch_splits(str(path))


def test_corrupt_saved_dataset_names_the_directory(tmp_path: Path) -> None:
    datasets.Dataset.from_pandas(items(10)).save_to_disk(str(tmp_path / "saved"))
    for arrow_file in (tmp_path / "saved").glob("*.arrow"):
        arrow_file.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"saved: not a readable datasets\.save_to_disk directory"):
        fetch_splits(str(tmp_path / "saved"))


# --------------------------------------------------------------------------------------------
# The Hub: plumbing with a stand-in for datasets, failure modes against loopback servers only


def fake_hub_datasets(
    monkeypatch: pytest.MonkeyPatch, splits: dict[str, pd.DataFrame], commit: str | None
) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def load_dataset(path: str, **kwargs: Any) -> datasets.DatasetDict:
        calls.append({"path": path, **kwargs})
        return datasets.DatasetDict({name: datasets.Dataset.from_pandas(frame) for name, frame in splits.items()})

    monkeypatch.setattr(data, "_resolve_hub_commit", lambda dataset_id, revision: commit)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_dataset_is_pinned_to_the_resolved_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    splits = {"train": items(10), "validation": items(2, first_id=10), "test": items(2, first_id=12)}
    calls = fake_hub_datasets(monkeypatch, splits, sha)
    result = fetch_splits("ed-donner/items_lite", revision="main")
    assert calls == [{"path": "ed-donner/items_lite", "revision": sha}]  # and never trust_remote_code
    report = result.report
    assert (report["kind"], report["revision"], report["resolved_revision"]) == ("hub", "main", sha)
    assert all_ids(result) == list(range(14))


def test_hub_dataset_without_train_split_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub_datasets(monkeypatch, {"validation": items(3), "test": items(3)}, None)
    with pytest.raises(DataError, match=r"ed-donner/items_lite: no 'train' split"):
        fetch_splits("ed-donner/items_lite")


def test_hub_not_found_from_datasets_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(path: str, **kwargs: Any) -> None:
        raise datasets.exceptions.DatasetNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    monkeypatch.setattr(data, "_resolve_hub_commit", lambda dataset_id, revision: None)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(DataError, match=r"someone/nothing: no such Hub dataset or revision 'v9'"):
        fetch_splits("someone/nothing", revision="v9")


def child_environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A clean environment for a child process: its own empty Hub cache, no proxies, no Hub
    settings from the caller (huggingface_hub reads them once, at import)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("HF_", "HUGGINGFACE_")) and not key.upper().endswith("_PROXY")
    }
    environment |= {
        "HF_HOME": str(tmp_path / "hf-home"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), environment.get("PYTHONPATH", "")]),
    }
    return environment | settings


CHILD = """
import json, sys
from pricer.data import DataError, fetch_splits
try:
    fetch_splits(sys.argv[1], revision=sys.argv[2] or None)
    print(json.dumps({"error": None}))
except DataError as error:
    print(json.dumps({"error": str(error)}))
"""


def fetch_in_child(
    environment: dict[str, str], source: str = "ed-donner/items_lite", revision: str = ""
) -> tuple[str, float]:
    """Run fetch_splits in a fresh interpreter (Hub settings are read at import); the error and
    the wall time, interpreter start included."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, source, revision],
        env=environment, capture_output=True, text=True, timeout=2 * HUB_ERROR_BUDGET_S, check=False,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    error = json.loads(completed.stdout.strip().splitlines()[-1])["error"]
    assert error is not None, "fetch_splits unexpectedly succeeded"
    return error, elapsed


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_explains_local_copy(message: str) -> None:
    assert message.startswith("ed-donner/items_lite: ")
    assert "hf download ed-donner/items_lite --repo-type dataset --local-dir items_lite" in message
    assert "dvc exp run -S data.source=items_lite" in message


def test_hub_at_a_closed_port_fails_fast_with_a_local_copy_hint(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_loopback_port()}"  # bound then released: nothing listens
    message, elapsed = fetch_in_child(child_environment(tmp_path, HF_ENDPOINT=endpoint))
    assert "could not reach the Hugging Face Hub" in message and "ConnectError" in message
    assert_explains_local_copy(message)
    assert elapsed < 10, f"took {elapsed:.1f}s"


@contextmanager
def silent_server(lifetime_s: float = 2 * HUB_ERROR_BUDGET_S) -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback server that accepts connections and never answers; it stops by itself after
    ``lifetime_s`` and at the end of the with-block."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept_until_stopped() -> None:
        deadline = time.monotonic() + lifetime_s
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            accepted.append(connection)
        for connection in accepted:
            connection.close()

    thread = threading.Thread(target=accept_until_stopped, name="silent-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_hub_that_never_answers_fails_within_the_budget(tmp_path: Path) -> None:
    with silent_server() as (endpoint, accepted):
        message, elapsed = fetch_in_child(child_environment(tmp_path, HF_ENDPOINT=endpoint))
        assert accepted, "the child never connected to the silent server"
    assert "could not reach the Hugging Face Hub" in message and "Timeout" in message
    assert_explains_local_copy(message)
    assert elapsed < HUB_ERROR_BUDGET_S, f"took {elapsed:.1f}s"


def test_hub_offline_mode_without_a_cache(tmp_path: Path) -> None:
    message, elapsed = fetch_in_child(child_environment(tmp_path, HF_HUB_OFFLINE="1"))
    assert "HF_HUB_OFFLINE is set and the dataset is not in the local Hub cache" in message
    assert_explains_local_copy(message)
    assert elapsed < 10, f"took {elapsed:.1f}s"


def test_unknown_hub_dataset_and_revision_are_named(tmp_path: Path) -> None:
    with not_found_hub() as endpoint:
        environment = child_environment(tmp_path, HF_ENDPOINT=endpoint)
        no_dataset, _ = fetch_in_child(environment, "someone/no-such-items")
        no_revision, _ = fetch_in_child(environment, "ed-donner/items_lite", "v999")
    assert no_dataset.startswith("someone/no-such-items: no such Hub dataset")
    assert no_revision == "ed-donner/items_lite: the Hub dataset has no revision 'v999'"


# --------------------------------------------------------------------------------------------
# The real sample (never copied into the repo)


@pytest.fixture
def real_sample() -> Path:
    if not REAL_SAMPLE.exists():
        pytest.skip(f"real data sample not present at {REAL_SAMPLE} (only on the team's machines)")
    return REAL_SAMPLE


def test_real_sample_loads_splits_and_validates(real_sample: Path) -> None:
    result = fetch_splits(str(real_sample))
    report = result.report
    assert report["kind"] == "local_file" and report["source_splits"] == {"train": 11_816}
    sizes = [len(result.splits[s]) for s in data.SPLITS]
    assert sizes == [9452, 1182, 1182]
    assert all(report["splits"][s]["dropped"] == dict.fromkeys(DROP_REASONS, 0) for s in data.SPLITS)
    import pyarrow.parquet as pq

    source_ids = pq.read_table(real_sample, columns=["id"]).column("id").to_pylist()
    assert all_ids(result) == sorted(source_ids)  # every row lands in exactly one split
    for frame in result.splits.values():
        assert frame["price"].dtype == np.float64 and (frame["price"] > 0).all()
        assert frame["summary"].dtype == "str" and frame["summary"].str.startswith("Title: ").all()
        assert frame["id"].dtype == np.int64
    again = fetch_splits(str(real_sample))
    pd.testing.assert_frame_equal(result.splits["test"], again.splits["test"])


def test_real_sample_with_the_full_text_field(real_sample: Path) -> None:
    result = fetch_splits(str(real_sample), text_field="full", seed=0, max_train_items=1000)
    assert len(result.splits["train"]) == 1000 and result.report["splits"]["train"]["capped"] == 9452 - 1000
    assert result.splits["train"]["full"].str.len().max() <= MAX_TEXT_CHARS
