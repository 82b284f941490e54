"""Tests for pricer.sources.diagnose: corrupt local files are named, with the line where known."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import datasets
import pytest

from pricer.sources import DataError, fetch_splits
from pricer.sources.diagnose import check_parquet_header, check_same_columns, json_record_line, sniffed_content

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


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (gzip.compress(b'{"a": 1}\n', mtime=0), "gzip-compressed data"),
        (b"PK\x03\x04rest", "a zip archive"),
        (b"BZh91AY", "bzip2-compressed data"),
        (b"\xfd7zXZ\x00\x00", "xz-compressed data"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd-compressed data"),
        (b"PAR1\x15\x04", "a parquet file"),
        (b'{"summary": "a"}\n', None),
        (b"id,summary,price\n", None),
    ],
)
def test_sniffed_content(tmp_path: Path, content: bytes, what: str | None) -> None:
    path = tmp_path / "file"
    path.write_bytes(content)
    assert sniffed_content(path) == what


@pytest.mark.parametrize(
    ("content", "holds"),
    [
        (b"id,summary,price\n1,a,2\n", r"text \(CSV or JSON\?\)"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "unrecognised binary data"),
        (b"\x1f\x8b\x08\x00", "gzip-compressed data"),
    ],
)
def test_a_parquet_name_on_other_content_says_what_it_holds(tmp_path: Path, content: bytes, holds: str) -> None:
    path = tmp_path / "items.parquet"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^src: {re.escape(str(path))} is not a parquet file: it holds {holds}"):
        check_parquet_header("src", path)


def test_check_same_columns_ignores_order() -> None:
    check_same_columns("src", {Path("a"): ["id", "summary", "price"], Path("b"): ["price", "summary", "id"]})
    with pytest.raises(DataError, match=r"^src: b has other columns than a: it lacks \['price'\]$"):
        check_same_columns("src", {Path("a"): ["id", "price"], Path("b"): ["id"]})


def test_json_record_line_skips_blank_lines_and_counts_every_line_break(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 0}\r\n\n{"a": 1}\r{"a": "\xe2\x80\xa8"}\n\n{"a": 3}')
    assert [json_record_line(path, record) for record in range(5)] == [1, 3, 4, 6, None]
    array = tmp_path / "items.json"
    array.write_text('[{"a": 0},\n {"a": 1}]')
    assert json_record_line(array, 1) is None


def test_a_non_text_value_in_a_json_array_names_the_record(tmp_path: Path) -> None:
    frame = items(20)
    records = frame.to_dict(orient="records")
    records[4]["summary"] = 3.5
    path = tmp_path / "items.json"
    path.write_text(json.dumps(records))
    message = rf"{re.escape(str(path))} record 4, column 'summary': expected text, got float 3\.5$"
    with pytest.raises(DataError, match=message):
        fetch_splits(str(path))


def test_a_long_non_text_value_is_shortened_in_the_message(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", items(20))
    lines = path.read_text().splitlines()
    record = json.loads(lines[2]) | {"summary": list(range(100))}
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    message = r"line 3, column 'summary': expected text, got list \[0, 1, 2, .{20,30}\.\.\.$"
    with pytest.raises(DataError, match=message):
        fetch_splits(str(path))
