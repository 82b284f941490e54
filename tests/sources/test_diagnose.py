"""Tests for pricer.sources.diagnose: corrupt local files are named, with the line where known."""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import pytest

from pricer.sources import DataError, fetch_splits

from .frames import hub_layout, items, write_jsonl


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
