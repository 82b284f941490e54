"""Bad input, in one table: every case, what pricer does with it, and a check that it does.

Each entry of ``CASES`` is a row of the bad-input table in docs/guarantees.md (a test keeps the
two in step). An outcome is one of:

- a clear error that names the problem (file, split, row, column, params key, store), raised
  before anything is written: stage scripts exit non-zero and leave no output behind;
- a counted drop: the row is left out, counted under its reason in ``data/fetch_report.json``,
  and every other row is kept.

Several cases are tested in more depth elsewhere (tests/sources/, test_params.py,
test_predictor.py, test_training.py); here they call the same functions once more, so the table
is complete in one place. Stage-level cases run the real ``stages/*.py`` scripts in a scratch
directory; Hub cases run in a child interpreter (huggingface_hub reads its settings at import)
against loopback servers or a Hub cache built on disk, never the network.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from helpers import deep_merge, not_found_hub
from pricer import tracking
from pricer.sources import DataError, FetchResult, fetch_splits, hub
from pricer.sources.split import SPLITS
from pricer.sources.validate import DROP_REASONS, MAX_PRICE, MAX_TEXT_CHARS, validate_split
from pricer.params import ParamsError, params_from_dict
from pricer.features import ArtifactError, load_features, save_features
from pricer.predictor import ModelLoadError, PricePredictor

REPO_ROOT = Path(__file__).resolve().parents[1]
GUARANTEES = REPO_ROOT / "docs" / "guarantees.md"
HUB_ERROR_BUDGET_S = 30.0  # "Hub unreachable" must be a clear error within this many seconds
STAGE_FAILS_WITHIN_S = 30.0  # a stage rejecting its input exits within this (imports included)
SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Case:
    name: str
    problem: str
    outcome: str
    check: Callable[..., None]


CASES: list[Case] = []


def case(name: str, problem: str, outcome: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(check: Callable[..., None]) -> Callable[..., None]:
        CASES.append(Case(name, problem, outcome, check))
        return check

    return register


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


# --------------------------------------------------------------------------------------------
# Data helpers


def items(n: int = 30, first_id: int = 0) -> pd.DataFrame:
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return pd.DataFrame(
        {"id": ids, "summary": [f"Title: Item {i}\nCategory: Tools" for i in ids], "price": (ids + 1) * 1.25}
    )


def with_values(frame: pd.DataFrame, row: int, **values: Any) -> pd.DataFrame:
    """``frame`` with ``values`` in row ``row`` (object columns where the types now mix)."""
    frame = frame.copy()
    for column, value in values.items():
        cells = frame[column].tolist()
        cells[row] = value
        kinds = {type(cell) for cell in cells if cell is not None}
        frame[column] = pd.Series(cells, dtype=object if None in cells or len(kinds) > 1 else None)
    return frame


def write_source(tmp_path: Path, frame: pd.DataFrame, fmt: str = "parquet") -> Path:
    path = tmp_path / f"items.{fmt}"
    if fmt == "parquet":
        # Not frame.to_parquet: pandas would store a NaN price as null (that is `price-missing`).
        columns = {name: pa.array(frame[name].to_numpy(), from_pandas=False) for name in frame.columns}
        pq.write_table(pa.table(columns), path)
    else:
        records = frame.to_dict(orient="records")
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def dropped(result: FetchResult) -> dict[str, int]:
    splits = result.report["splits"]
    totals = {reason: sum(splits[s]["dropped"][reason] for s in SPLITS) for reason in DROP_REASONS}
    return {reason: count for reason, count in totals.items() if count}


def kept_ids(result: FetchResult) -> list[int]:
    return sorted(int(i) for split in SPLITS for i in result.splits[split]["id"])


def assert_one_row_dropped(tmp_path: Path, frame: pd.DataFrame, reason: str, fmt: str = "parquet") -> None:
    """Row 7 of ``frame`` is bad: it alone is dropped, counted under ``reason``; all else is kept."""
    result = fetch_splits(str(write_source(tmp_path, frame, fmt)))
    assert dropped(result) == {reason: 1}
    assert kept_ids(result) == [i for i in range(len(frame)) if i != 7]


def raises(pattern: str, call: Callable[[], Any], error: type[Exception] = DataError) -> str:
    with pytest.raises(error, match=pattern) as caught:
        call()
    return str(caught.value)


# --------------------------------------------------------------------------------------------
# Data: columns and values


@case("missing-column", "the source has no `price` (or no text) column",
      "error naming file, split and column")
def check_missing_column(tmp_path: Path) -> None:
    path = write_source(tmp_path, items().drop(columns="price"))
    raises(rf"{re.escape(str(path))}: split 'train': missing required column 'price'",
           lambda: fetch_splits(str(path)))


@case("wrong-column-type", "the text column holds numbers, or `price` holds booleans",
      "error naming file, split, column and dtype")
def check_wrong_column_type(tmp_path: Path) -> None:
    path = write_source(tmp_path, items().assign(summary=np.arange(30)))
    raises(r"items\.parquet: split 'train': column 'summary' must hold text, but has dtype int64",
           lambda: fetch_splits(str(path)))
    path = write_source(tmp_path, items().assign(price=True))
    raises(r"items\.parquet: split 'train': column 'price' must hold numbers, but has dtype bool",
           lambda: fetch_splits(str(path)))


@case("price-nan", "a price is NaN", "row dropped, counted as `non_finite_price`")
def check_price_nan(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=float("nan")), "non_finite_price")


@case("price-inf", "a price is +inf or -inf", "row dropped, counted as `non_finite_price`")
def check_price_inf(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=float("inf")), "non_finite_price")
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=float("-inf")), "non_finite_price")


@case("price-negative", "a price is negative", "row dropped, counted as `non_positive_price`")
def check_price_negative(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=-12.5), "non_positive_price")


@case("price-zero", "a price is 0", "row dropped, counted as `non_positive_price`")
def check_price_zero(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=0.0), "non_positive_price")


@case("price-string", 'a price is a string such as "$12.99" or "1,299.00" (numeric strings like "12.99" are parsed)',
      "row dropped, counted as `non_numeric_price`")
def check_price_string(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price="$12.99"), "non_numeric_price", "jsonl")
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price="1,299.00"), "non_numeric_price", "jsonl")
    result = fetch_splits(str(write_source(tmp_path, with_values(items(), 7, price="12.99"), "jsonl")))
    assert dropped(result) == {} and 12.99 in pd.concat(result.splits.values())["price"].tolist()


@case("price-missing", "a price is null", "row dropped, counted as `missing_price`")
def check_price_missing(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=None), "missing_price", "jsonl")


@case("text-empty", "the text is empty or only whitespace", "row dropped, counted as `empty_text`")
def check_text_empty(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, summary=""), "empty_text")
    assert_one_row_dropped(tmp_path, with_values(items(), 7, summary=" \n\t "), "empty_text")


@case("text-missing", "the text is null", "row dropped, counted as `missing_text`")
def check_text_missing(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, summary=None), "missing_text", "jsonl")


@case("text-1mb", "a text of 1 MB", f"row kept, text cut to {MAX_TEXT_CHARS:,} characters, counted as `truncated_text`")
def check_text_1mb(tmp_path: Path) -> None:
    result = fetch_splits(str(write_source(tmp_path, with_values(items(), 7, summary="lamp " * 200_000))))
    assert dropped(result) == {} and len(kept_ids(result)) == 30
    assert sum(result.report["splits"][s]["truncated_text"] for s in SPLITS) == 1
    texts = pd.concat(result.splits.values()).set_index("id")["summary"]
    assert len(texts[7]) == MAX_TEXT_CHARS and texts.drop(7).str.len().max() < 100


@case("text-non-ascii", "non-ASCII text (accents, CJK, emoji)", "kept exactly as written")
def check_text_non_ascii(tmp_path: Path) -> None:
    text = "Café – 日本語 ギター 🎸 naïve"
    for fmt in ("parquet", "jsonl"):
        result = fetch_splits(str(write_source(tmp_path, with_values(items(), 7, summary=text), fmt)))
        assert dropped(result) == {} and pd.concat(result.splits.values()).set_index("id")["summary"][7] == text


@case("text-invalid-utf8", "text bytes that are not valid UTF-8 (JSONL line, or a parquet string column)",
      "error naming file and line (JSONL) or file, split, row and column (parquet)")
def check_text_invalid_utf8(tmp_path: Path) -> None:
    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"summary": "ok", "price": 1.0}\n{"summary": "caf\xe9", "price": 2.0}\n')
    raises(rf"{re.escape(str(jsonl))} line 2: invalid UTF-8 .*re-encode", lambda: fetch_splits(str(jsonl)))

    texts = [t.encode() for t in items()["summary"]]
    texts[7] = b"caf\xe9 lamp"  # a writer that skipped validation; pyarrow itself would refuse
    offsets = np.cumsum([0] + [len(t) for t in texts]).astype(np.int32)
    column = pa.Array.from_buffers(pa.string(), len(texts), [None, pa.py_buffer(offsets.tobytes()),
                                                             pa.py_buffer(b"".join(texts))])
    path = tmp_path / "bad-utf8.parquet"
    pq.write_table(pa.table({"id": np.arange(30), "summary": column, "price": items()["price"]}), path)
    raises(rf"{re.escape(str(path))}: split 'train' row 7, column 'summary': invalid UTF-8",
           lambda: fetch_splits(str(path)))


def hub_layout(directory: Path, splits: dict[str, pd.DataFrame]) -> Path:
    (directory / "data").mkdir(parents=True)
    for split, frame in splits.items():
        frame.to_parquet(directory / "data" / f"{split}-00000-of-00001.parquet", index=False)
    return directory


@case("duplicate-id", "two rows of a split share an id",
      "the first valid row is kept; the other counted as `duplicate_id` (judged before splitting: one id, one split)")
def check_duplicate_id(tmp_path: Path) -> None:
    source = hub_layout(tmp_path / "d", {"train": with_values(items(), 7, id=3), "validation": items(3, 100),
                                         "test": items(3, 200)})
    result = fetch_splits(str(source))
    assert dropped(result) == {"duplicate_id": 1}
    train = result.splits["train"]
    assert train[train["id"] == 3]["summary"].tolist() == ["Title: Item 3\nCategory: Tools"]
    assert len(train) == 29


@case("duplicate-id-single-file", "a single-file source with 600 duplicated rows (same id, another price)",
      "duplicates dropped before the split, each counted once as `duplicate_id`; no test item is a training item")
def check_duplicate_id_single_file(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": np.arange(3000), "summary": [f"item {i}" for i in range(3000)],
                          "price": np.arange(1.0, 3001.0)})
    repeats = frame.sample(600, random_state=1).assign(price=lambda f: f["price"] + 0.5)
    result = fetch_splits(str(write_source(tmp_path, pd.concat([frame, repeats], ignore_index=True))))
    ids = [set(result.splits[split]["id"]) for split in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and sum(map(len, ids)) == 3000
    assert dropped(result) == {"duplicate_id": 600}
    assert all((result.splits[split]["price"] % 1 == 0).all() for split in SPLITS)  # the first copies kept


@case("ids-shared-across-source-splits", "the source's own train/validation/test splits share ids",
      "kept in test, then validation, then train only; each other copy counted as `id_in_other_split`, and the "
      "report's `source_shared_ids` counts them per pair of splits")
def check_ids_shared_across_source_splits(tmp_path: Path) -> None:
    source = hub_layout(tmp_path / "d", {"train": items(), "validation": items(3, 100),
                                         "test": items(4, 0)})  # test holds train's ids 0-3
    result = fetch_splits(str(source))
    assert result.report["source_shared_ids"] == {"train & test": 4}
    assert dropped(result) == {"id_in_other_split": 4}
    assert not set(result.splits["train"]["id"]) & set(result.splits["test"]["id"])


@case("split-gets-no-rows", "a source so small (or a fraction so low) that no id hashes into one split",
      "error naming the split, the rows read and the fraction to raise; nothing written")
def check_split_gets_no_rows(tmp_path: Path) -> None:
    path = write_source(tmp_path, items(3))
    raises(r"split '(validation|test)' received none of the 3 rows read .*raise data\.(validation|test)_fraction",
           lambda: fetch_splits(str(path), validation_fraction=0.01, test_fraction=0.01))


@case("all-rows-invalid", "every row of a split is invalid", "error naming split and the counts per reason")
def check_all_rows_invalid(tmp_path: Path) -> None:
    path = write_source(tmp_path, items().assign(price=-1.0))
    raises(r"split 'train': no rows left after validation \(dropped: \{'non_positive_price': \d+\}\)",
           lambda: fetch_splits(str(path)))


@case("empty-split", "a split of the source has no rows", "error naming source and split")
def check_empty_split(tmp_path: Path) -> None:
    hub_layout(tmp_path / "d", {"train": items(), "validation": items(3, 100), "test": items(0)})
    raises(r"/d: split 'test' is empty in the source", lambda: fetch_splits(str(tmp_path / "d")))


@case("text-not-text", "a JSONL row whose text is a number, list, object or bool (the other rows hold text)",
      "error naming the file, line and column, and what the value is")
def check_text_not_text(tmp_path: Path) -> None:
    for value, shown in ((12, "int 12"), ([1, 2], "list [1, 2]"), ({"a": 1}, "dict {'a': 1}"), (True, "bool True")):
        path = write_source(tmp_path, with_values(items(), 7, summary=value), "jsonl")
        raises(rf"{re.escape(str(path))} line 8, column 'summary': expected text, got {re.escape(shown)}$",
               lambda: fetch_splits(str(path)))


@case("text-invisible", "the text is only control or format characters (NUL, escape, zero-width space, a BOM)",
      "row dropped, counted as `empty_text`")
def check_text_invisible(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, summary="\x00\x1b\x7f"), "empty_text")
    assert_one_row_dropped(tmp_path, with_values(items(), 7, summary="\u200b\ufeff\u00a0"), "empty_text", "jsonl")


@case("price-huge", f"a price above {MAX_PRICE:,.0f} (e.g. 1e308, or 2**62 in an integer column)",
      "row dropped, counted as `implausible_price`")
def check_price_huge(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=1e308), "implausible_price")
    assert_one_row_dropped(tmp_path, items().assign(price=np.arange(1, 31)).pipe(with_values, 7, price=2**62),
                           "implausible_price")
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price="1e12"), "implausible_price", "jsonl")


@case("price-bool", "one price is `true` among numbers (a whole boolean column: `wrong-column-type`)",
      "row dropped, counted as `non_numeric_price` (never read as 1.0)")
def check_price_bool(tmp_path: Path) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, price=True), "non_numeric_price", "jsonl")


@case("duplicate-id-types", 'two rows of a split whose ids are 1 and "1" (or 3 and 3.0)',
      "one id: the first row kept, the other counted as `duplicate_id`")
def check_duplicate_id_types(tmp_path: Path) -> None:
    ids = pd.Series([*range(10), "3"], dtype=object)
    frame = pd.DataFrame({"id": ids, "summary": [f"item {i}" for i in range(11)], "price": np.arange(1.0, 12.0)})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts["duplicate_id"] == 1 and cleaned["id"].tolist() == [str(i) for i in range(10)]
    frame = frame.assign(id=pd.Series([*range(10), 3.0], dtype=object))
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts["duplicate_id"] == 1 and cleaned["id"].tolist() == list(range(10))
    # In a JSONL file the reader already makes "3" the integer 3: never two rows of id 3 in one split.
    result = fetch_splits(str(write_source(tmp_path, with_values(items(), 7, id="3"), "jsonl")))
    assert len(kept_ids(result)) + dropped(result).get("duplicate_id", 0) == 30
    for split in SPLITS:
        assert result.splits[split]["id"].dtype == np.int64 and result.splits[split]["id"].is_unique


# --------------------------------------------------------------------------------------------
# Data: files


@case("parquet-truncated", "a parquet file cut short", "error naming the file")
def check_parquet_truncated(tmp_path: Path) -> None:
    good = write_source(tmp_path, items(50))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    raises(rf"{re.escape(str(broken))} is not a readable parquet file \(truncated or corrupt\?\)",
           lambda: fetch_splits(str(broken)))


@case("parquet-corrupt", "a parquet file with garbage pages (footer intact), or 0 bytes", "error naming the file")
def check_parquet_corrupt(tmp_path: Path) -> None:
    path = write_source(tmp_path, items(300))
    raw = bytearray(path.read_bytes())
    raw[100 : len(raw) // 2] = b"\xab" * (len(raw) // 2 - 100)
    path.write_bytes(bytes(raw))
    raises(rf"could not read {re.escape(str(path))}: corrupt parquet data", lambda: fetch_splits(str(path)))
    path.write_bytes(b"")
    raises(rf"{re.escape(str(path))} is an empty file", lambda: fetch_splits(str(path)))


@case("file-missing", "`data.source` names a file that does not exist", "error naming the path")
def check_file_missing(tmp_path: Path) -> None:
    raises(rf"{re.escape(str(tmp_path))}/missing\.parquet: no such file or directory",
           lambda: fetch_splits(str(tmp_path / "missing.parquet")))


@case("dir-without-parquet", "`data.source` is a directory with no parquet files (other files only, or empty)",
      "error naming the directory")
def check_dir_without_parquet(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no data here")
    raises(r"notes: directory has no parquet files and is not a datasets\.save_to_disk directory",
           lambda: fetch_splits(str(tmp_path / "notes")))
    (tmp_path / "empty").mkdir()
    raises(r"empty: directory has no parquet files", lambda: fetch_splits(str(tmp_path / "empty")))


@case("unknown-source", "`data.source` is none of synthetic / a path / `owner/name` (e.g. `nonsense`, `a/b/c`, `table.csv`)",
      "error listing the accepted kinds; the fetch stage exits 1 and writes nothing")
def check_unknown_source(tmp_path: Path) -> None:
    raises(r"'a/b/c': not a known data source; expected 'synthetic'", lambda: fetch_splits("a/b/c"))
    (tmp_path / "table.csv").write_text("summary,price\na,1\n")
    raises(r"table\.csv: unsupported file type '\.csv'", lambda: fetch_splits(str(tmp_path / "table.csv")))
    project = stage_dir(tmp_path / "project", {"data": {"source": "nonsense"}})
    done = run_stage(project, "fetch.py")
    assert done.returncode == 1 and "'nonsense': not a known data source" in done.stderr
    assert_nothing_written(project)


@case("shards-columns-differ", "the parquet files of a Hub-layout directory disagree on columns (names, or types "
      "that cannot be cast to one another)", "error naming the file and the columns that differ")
def check_shards_columns_differ(tmp_path: Path) -> None:
    source = hub_layout(tmp_path / "d", {"train": items(), "test": items(5, 100).rename(columns={"summary": "text"})})
    test_file = source / "data" / "test-00000-of-00001.parquet"
    raises(rf"{re.escape(str(test_file))} has other columns than .*train-00000-of-00001\.parquet: "
           r"it lacks \['summary'\]; has \['text'\] in addition$", lambda: fetch_splits(str(source)))
    shards = tmp_path / "shards" / "data"
    shards.mkdir(parents=True)
    items().to_parquet(shards / "train-00000-of-00002.parquet")
    items(5, 100).assign(summary=[[1], [2], [3], [4], [5]]).to_parquet(shards / "train-00001-of-00002.parquet")
    raises(r"could not read .*train-00001-of-00002\.parquet: column 'summary' is list<element: int64> here but "
           r"(large_)?string in .*train-00000-of-00002\.parquet$", lambda: fetch_splits(str(shards.parent)))


@case("file-not-its-format", "a `.parquet` that is CSV, JSON or gzip; a `.jsonl` that is gzip-compressed or parquet",
      "error naming the file and what it holds")
def check_file_not_its_format(tmp_path: Path) -> None:
    csv = tmp_path / "items.parquet"
    csv.write_text("id,summary,price\n1,a lamp,2.0\n")
    raises(rf"{re.escape(str(csv))} is not a parquet file: it holds text \(CSV or JSON\?\)",
           lambda: fetch_splits(str(csv)))
    lines = write_source(tmp_path, items(), "jsonl").read_bytes()
    csv.write_bytes(gzip.compress(lines))
    raises(r"items\.parquet is not a parquet file: it holds gzip-compressed data", lambda: fetch_splits(str(csv)))
    packed = tmp_path / "packed.jsonl"
    packed.write_bytes(gzip.compress(lines))
    raises(rf"{re.escape(str(packed))} is gzip-compressed data, not JSON text; unpack it",
           lambda: fetch_splits(str(packed)))
    misnamed = tmp_path / "table.jsonl"
    misnamed.write_bytes(write_source(tmp_path, items()).read_bytes())
    raises(r"table\.jsonl is a parquet file, not JSON text; give it a \.parquet name",
           lambda: fetch_splits(str(misnamed)))


@case("jsonl-bom-line-endings", "a JSONL file with a UTF-8 byte-order mark, Windows (CRLF), old-Mac (CR) or mixed "
      "line endings, or no final newline", "read as written: every row, texts without stray `\\r` or BOM")
def check_jsonl_bom_line_endings(tmp_path: Path) -> None:
    text = write_source(tmp_path, items(), "jsonl").read_text(encoding="utf-8")
    variants = {"bom": "\ufeff" + text, "crlf": text.replace("\n", "\r\n"), "cr": text.replace("\n", "\r"),
                "mixed": text.replace("\n", "\r\n", 10).replace("\n", "\r", 5), "no-final-newline": text.rstrip("\n")}
    for name, content in variants.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(content.encode("utf-8"))
        result = fetch_splits(str(path))
        assert kept_ids(result) == list(range(30)), name
        texts = pd.concat(result.splits.values()).set_index("id")["summary"]
        assert texts.sort_index().tolist() == items()["summary"].tolist(), name


@case("file-empty", "a 0-byte `.jsonl` or `.json`, or a JSONL of blank lines (a 0-byte parquet: `parquet-corrupt`)",
      "error naming the file")
def check_file_empty(tmp_path: Path) -> None:
    for name in ("empty.jsonl", "empty.json"):
        (tmp_path / name).write_bytes(b"")
        raises(rf"{re.escape(str(tmp_path / name))} is an empty file$", lambda: fetch_splits(str(tmp_path / name)))
    (tmp_path / "blank.jsonl").write_text("\n  \r\n\n")
    raises(r"blank\.jsonl is an empty file \(no JSON records\)", lambda: fetch_splits(str(tmp_path / "blank.jsonl")))


@case("symlink-broken", "`data.source` is a symbolic link that loops (to itself, or a cycle) or whose target is gone; "
      "a link inside a Hub-layout directory that points back up", "error naming the link and what is wrong with it; "
      "a loop inside a directory is not followed (each file read once)")
def check_symlink_broken(tmp_path: Path) -> None:
    (tmp_path / "self.parquet").symlink_to("self.parquet")
    raises(r"self\.parquet: a symbolic link that loops back on itself",
           lambda: fetch_splits(str(tmp_path / "self.parquet")))
    (tmp_path / "a.jsonl").symlink_to("b.jsonl")
    (tmp_path / "b.jsonl").symlink_to("a.jsonl")
    raises(r"a\.jsonl: a symbolic link that loops back on itself", lambda: fetch_splits(str(tmp_path / "a.jsonl")))
    (tmp_path / "gone.parquet").symlink_to(tmp_path / "moved.parquet")
    raises(rf"gone\.parquet: a symbolic link to {re.escape(str(tmp_path / 'moved.parquet'))}, which does not exist",
           lambda: fetch_splits(str(tmp_path / "gone.parquet")))
    source = hub_layout(tmp_path / "d", {"train": items(), "validation": items(3, 100), "test": items(3, 200)})
    (source / "data" / "up").symlink_to("..")
    result = fetch_splits(str(source))
    assert result.report["source_splits"] == {"test": 3, "train": 30, "validation": 3}


@case("saved-missing-arrow", "a `datasets.save_to_disk` directory with one of its `.arrow` files deleted",
      "error naming the directory and the missing file")
def check_saved_missing_arrow(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_pandas(items()),
                          "test": datasets.Dataset.from_pandas(items(5, 100))}).save_to_disk(str(saved))
    arrow_file = next((saved / "test").glob("*.arrow"))
    arrow_file.unlink()
    raises(rf"saved: not a readable datasets\.save_to_disk directory: {re.escape(str(arrow_file))} is missing$",
           lambda: fetch_splits(str(saved)))


# --------------------------------------------------------------------------------------------
# The Hugging Face Hub (child interpreters; loopback servers and an on-disk Hub cache only)


CHILD = """
import json, sys
from pricer.sources import DataError, fetch_splits
try:
    result = fetch_splits(sys.argv[1], revision=sys.argv[2] or None)
    print(json.dumps({"error": None, "report": result.report}))
except DataError as error:
    print(json.dumps({"error": str(error)}))
"""


def hub_environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items()
        if not key.upper().startswith(("HF_", "HUGGINGFACE_", "MLFLOW_", "DVC_")) and not key.upper().endswith("_PROXY")
    }
    return environment | {"HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "127.0.0.1,localhost",
                          "no_proxy": "127.0.0.1,localhost"} | settings


def fetch_in_child(environment: dict[str, str], source: str, revision: str = "") -> tuple[dict, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", CHILD, source, revision], env=environment,
                          capture_output=True, text=True, timeout=2 * HUB_ERROR_BUDGET_S, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


def cache_hub_dataset(hf_home: Path, dataset_id: str, splits: dict[str, pd.DataFrame], sha: str = SHA) -> Path:
    """The Hub cache as `hf download` (or an online `load_dataset`) leaves it."""
    repo = hf_home / "hub" / f"datasets--{dataset_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / sha
    (snapshot / "data").mkdir(parents=True)
    for split, frame in splits.items():
        frame.to_parquet(snapshot / "data" / f"{split}-00000-of-00001.parquet", index=False)
    (snapshot / "README.md").write_text("---\nlicense: mit\n---\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return snapshot


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@case("hub-unknown-dataset", "a Hub dataset id that does not exist", "error naming the id")
def check_hub_unknown_dataset(tmp_path: Path) -> None:
    with not_found_hub() as endpoint:
        answer, _ = fetch_in_child(hub_environment(tmp_path, HF_ENDPOINT=endpoint), "someone/no-such-items")
    assert answer["error"].startswith("someone/no-such-items: no such Hub dataset")


@case("hub-unknown-revision", "`data.revision` that the dataset does not have", "error naming id and revision")
def check_hub_unknown_revision(tmp_path: Path) -> None:
    with not_found_hub() as endpoint:
        answer, _ = fetch_in_child(hub_environment(tmp_path, HF_ENDPOINT=endpoint), "owner/items", "v999")
    assert answer["error"] == "owner/items: the Hub dataset has no revision 'v999'"


@case("hub-missing-split", "a Hub dataset without a `train` split (a missing validation/test split is carved from train)",
      "error naming the dataset and the splits it has")
def check_hub_missing_split(tmp_path: Path) -> None:
    cache_hub_dataset(tmp_path / "hf-home", "owner/items", {"validation": items(5), "test": items(5, 10)})
    answer, _ = fetch_in_child(hub_environment(tmp_path, HF_HUB_OFFLINE="1"), "owner/items")
    assert answer["error"] == "owner/items: no 'train' split (the source has ['test', 'validation'])"


@case("hub-unreachable", "the Hub cannot be reached (connection refused; a server that never answers: "
      "tests/sources/test_hub.py::test_hub_that_never_answers_fails_within_the_budget)",
      f"error within {HUB_ERROR_BUDGET_S:.0f} s saying how to download a local copy and use it")
def check_hub_unreachable(tmp_path: Path) -> None:
    environment = hub_environment(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    answer, elapsed = fetch_in_child(environment, "ed-donner/items_lite")
    message = answer["error"]
    assert message.startswith("ed-donner/items_lite: could not reach the Hugging Face Hub")
    assert "hf download ed-donner/items_lite --repo-type dataset --local-dir items_lite" in message
    assert "dvc exp run -S data.source=items_lite" in message
    assert elapsed < HUB_ERROR_BUDGET_S, f"took {elapsed:.1f}s"


@case("hub-offline-cached", "`HF_HUB_OFFLINE=1` with the dataset in the Hub cache",
      "works: read from the cached snapshot; the report keeps its commit sha")
def check_hub_offline_cached(tmp_path: Path) -> None:
    splits = {"train": items(40), "validation": items(5, 100), "test": items(5, 200)}
    cache_hub_dataset(tmp_path / "hf-home", "owner/items", splits)
    environment = hub_environment(tmp_path, HF_HUB_OFFLINE="1")
    answer, _ = fetch_in_child(environment, "owner/items")
    assert answer["error"] is None
    report = answer["report"]
    assert (report["kind"], report["resolved_revision"], report["split_strategy"]) == ("hub", SHA, "as_given")
    assert report["source_splits"] == {"test": 5, "train": 40, "validation": 5}
    # and through the real fetch stage: the sha lands in data/fetch_report.json (then in MLflow)
    project = stage_dir(tmp_path / "project", {"data": {"source": "owner/items"}})
    done = run_stage(project, "fetch.py", env=environment)
    assert done.returncode == 0, done.stderr
    assert json.loads((project / "data/fetch_report.json").read_text())["resolved_revision"] == SHA
    assert len(pd.read_parquet(project / "data/raw/train.parquet")) == 40


@case("hub-offline-not-cached", "`HF_HUB_OFFLINE=1` and the dataset (or that revision) is not cached",
      "error saying so, with how to download a local copy")
def check_hub_offline_not_cached(tmp_path: Path) -> None:
    cache_hub_dataset(tmp_path / "hf-home", "owner/items", {"train": items(40)})
    environment = hub_environment(tmp_path, HF_HUB_OFFLINE="1")
    for source, revision in (("owner/other", ""), ("owner/items", "v2")):
        answer, _ = fetch_in_child(environment, source, revision)
        assert "HF_HUB_OFFLINE is set and the dataset is not in the local Hub cache" in answer["error"]
        assert f"hf download {source} --repo-type dataset" in answer["error"]


@case("no-remote-code", "a Hub dataset that ships a loading script",
      "never run: `datasets` is never asked to trust remote code (and datasets 5 refuses scripts)")
def check_no_remote_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []

    def load_dataset(path: str, **kwargs: Any) -> datasets.DatasetDict:
        calls.append({"path": path, **kwargs})
        return datasets.DatasetDict({"train": datasets.Dataset.from_pandas(items())})

    monkeypatch.setattr(hub, "resolve_hub_commit", lambda dataset_id, revision: SHA)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    fetch_splits("owner/items")
    fetch_splits(str(write_source(tmp_path, items(), "jsonl")))
    assert calls and all(not call.get("trust_remote_code") for call in calls)
    for path in source_files():
        assert not re.search(r"trust_remote_code\s*=\s*True", path.read_text()), path


# --------------------------------------------------------------------------------------------
# Params: rejected by the params loader before any stage does work


PARAMS_CASES = [
    ("lr-negative", {"lr": -0.1}, "lr"),
    ("lr-zero", {"lr": 0}, "lr"),
    ("mlp-lr-zero", {"mlp": {"lr": 0.0}}, "mlp.lr"),
    ("batch-size-zero", {"resnet": {"batch_size": 0}}, "resnet.batch_size"),
    ("n-features-zero", {"vectorize": {"n_features": 0}}, "vectorize.n_features"),
    ("unknown-device", {"train": {"device": "tpu"}}, "train.device"),
    ("wrong-type", {"mlp": {"epochs": "ten"}}, "mlp.epochs"),
    ("empty-source", {"data": {"source": " "}}, "data.source"),
    ("unknown-key", {"resnet": {"size": 3}}, "resnet.size"),
    ("busy-timeout-zero", {"tracking": {"busy_timeout_s": 0}}, "tracking.busy_timeout_s"),
]

for _name, _raw, _key in PARAMS_CASES:
    @case(f"params-{_name}", f"`{yaml.safe_dump(_raw, default_flow_style=True).strip()}`",
          f"`ParamsError` naming `{_key}`")
    def check_params_case(tmp_path: Path, raw: dict = _raw, key: str = _key) -> None:
        raises(re.escape(key), lambda: params_from_dict(raw), ParamsError)


@case("params-through-stage", "a bad `params.yaml` (e.g. `lr: -1`) when `python stages/train.py resnet` runs",
      "exits 1 in seconds naming the key and file; writes nothing")
def check_params_through_stage(tmp_path: Path) -> None:
    project = stage_dir(tmp_path / "project", {"lr": -1})
    started = time.monotonic()
    done = run_stage(project, "train.py", "resnet")
    assert done.returncode == 1 and "params.yaml: lr must be a positive number, got -1" in done.stderr
    assert time.monotonic() - started < STAGE_FAILS_WITHIN_S
    assert_nothing_written(project)


@case("device-unavailable", "`train.device: cuda` on a machine without CUDA", "the train stage exits 1 naming the key; writes nothing")
def check_device_unavailable(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    project = stage_dir(tmp_path / "project", {"train": {"device": "cuda"}})
    done = run_stage(project, "train.py", "resnet")
    assert done.returncode == 1 and "train.device is 'cuda' but no CUDA device is available" in done.stderr
    assert "Traceback" not in done.stderr
    assert_nothing_written(project)


# --------------------------------------------------------------------------------------------
# Artifacts


@case("features-truncated", "a truncated part of `data/features/train/` (CSR parts with a manifest)",
      "the train stage exits 1 naming the file and the command to rebuild it; writes no model")
def check_features_truncated(tmp_path: Path, features_dir: Path) -> None:
    project = stage_dir(tmp_path / "project", features=features_dir)
    part = project / "data/features/train/part-00000.npz"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    raises(r"part-00000\.npz: not a readable sparse matrix",
           lambda: load_features(project / "data/features", "train"), ArtifactError)
    done = run_stage(project, "train.py", "resnet")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "data/features/train/part-00000.npz: not a readable sparse matrix" in done.stderr
    assert "dvc repro -f vectorize" in done.stderr
    assert_nothing_written(project)


@case("features-missing", "a missing `data/features/validation/` (or its manifest, or one of its parts)",
      "error naming the file and `dvc repro vectorize`")
def check_features_missing(tmp_path: Path, features_dir: Path) -> None:
    project = stage_dir(tmp_path / "project", features=features_dir)
    (project / "data/features/train/part-00000.npz").unlink()
    raises(r"train/part-00000\.npz: missing; rerun `dvc repro -f vectorize`",
           lambda: load_features(project / "data/features", "train"), ArtifactError)
    shutil.rmtree(project / "data/features/validation")
    raises(r"validation: missing \(no manifest\.json\); run `dvc repro vectorize`",
           lambda: load_features(project / "data/features", "validation"), ArtifactError)


@case("dask-scheduler-unreachable", "`PRICER_DASK_SCHEDULER` names an address where no scheduler answers",
      "fetch and vectorize exit 1 within the connect timeout, naming the variable and address; nothing written")
def check_dask_scheduler_unreachable(tmp_path: Path) -> None:
    project = stage_dir(tmp_path / "project")
    done = run_stage(project, "fetch.py", env={"PRICER_DASK_SCHEDULER": "tcp://127.0.0.1:9"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "PRICER_DASK_SCHEDULER=tcp://127.0.0.1:9: cannot reach the Dask scheduler" in done.stderr
    assert not (project / "data/raw").exists() and not (project / "data/fetch_report.json").exists()


@case("model-incompatible", "a model directory from another format version or whose weights do not fit its "
      "`model.json` (more: tests/test_predictor.py::test_incompatible_config)", "`ModelLoadError` naming the file")
def check_model_incompatible(tmp_path: Path, predictor: PricePredictor) -> None:
    predictor.save(tmp_path)
    config = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**config, "format_version": 99}))
    raises(r"model\.json: model format 99 is not supported", lambda: PricePredictor.load(tmp_path), ModelLoadError)
    (tmp_path / "model.json").write_text(json.dumps({**config, "architecture": {**config["architecture"], "hidden": 8}}))
    raises(r"weights\.pt: weights do not fit the architecture", lambda: PricePredictor.load(tmp_path), ModelLoadError)
    shutil.rmtree(tmp_path / "gone", ignore_errors=True)
    raises(r"gone: not a pricer model directory", lambda: PricePredictor.load(tmp_path / "gone"), ModelLoadError)


@case("checkpoint-other-config", "with `train.resume: true`, a checkpoint written for other params or data "
      "(more: tests/test_training.py::test_checkpoint_of_another_configuration_is_ignored)",
      "ignored with a warning naming it; training starts from epoch 1")
def check_checkpoint_other_config(tmp_path: Path, catalogue_features, caplog: pytest.LogCaptureFixture) -> None:
    from pricer.batching import CSRTensors
    from pricer.models import build_model
    from pricer.target import TargetTransform
    from pricer.training import Recipe, fit

    _, train_x, train_y, val_x, val_y, _ = catalogue_features
    target = TargetTransform.fit("standardized_log", train_y)
    recipe = Recipe(optimizer="adamw", lr=0.003, loss="l1", batch_size=256, epochs=2)
    checkpoint = tmp_path / "resnet.pt"

    def train(key: dict) -> int:
        model = build_model({"kind": "resnet", "n_features": 512, "hidden": 8, "layers": 2, "dropout": 0.0})
        result = fit(model, CSRTensors.from_scipy(train_x, target.encode(train_y)),
                     CSRTensors.from_scipy(val_x, target.encode(val_y)), val_y, target, recipe,
                     device=torch.device("cpu"), model_name="resnet", checkpoint_path=checkpoint,
                     checkpoint_key=key, resume=True)
        return len(result.history)

    assert train({"train_rows": 1000}) == 2
    assert train({"train_rows": 999}) == 2  # not resumed after epoch 2: trained both epochs again
    assert f"checkpoint {checkpoint} is from another configuration; starting afresh" in caplog.text


@case("checkpoint-other-features", "with `train.resume: true`, a checkpoint from features with the same rows and "
      "non-zeros but other values (e.g. after changing `vectorize.binary`)",
      "ignored: the checkpoint's identity holds the md5 of every feature file, so training starts from epoch 1")
def check_checkpoint_other_features(tmp_path: Path, catalogue_features, caplog: pytest.LogCaptureFixture) -> None:
    from pricer.training.distributed import Processes
    from pricer.training.runner import TrainingData, plan_training, run_training

    _, train_x, train_y, val_x, val_y, _ = catalogue_features
    params = params_from_dict({"mlp": {"epochs": 2, "hidden_layers": [8]}, "vectorize": {"n_features": 512}})
    checkpoint = tmp_path / "mlp.pt"

    def train(scale: float, md5: str) -> int:
        data = TrainingData(train_x * scale, train_y, val_x * scale, val_y, {"data/features/train.npz": md5})
        plan = plan_training(params, "mlp", data, torch.device("cpu"))
        return len(run_training(plan, data, Processes(torch.device("cpu")), checkpoint_path=checkpoint,
                                resume=True).fit.history)

    assert train(1.0, "binary-features") == 2
    caplog.clear()
    assert train(3.0, "count-features") == 2  # the same shapes and non-zeros: only the md5 tells them apart
    assert f"checkpoint {checkpoint} is from another configuration; starting afresh" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="pricer"):
        train(3.0, "count-features")  # the same data again: resumed after its last epoch, nothing retrained
    assert "resuming after epoch 2" in caplog.text


@case("checkpoint-corrupt", "with `train.resume: true`, a truncated `checkpoints/<model>.pt`",
      "the train stage warns, naming it, and trains from epoch 1")
def check_checkpoint_corrupt(tmp_path: Path, features_dir: Path) -> None:
    project = stage_dir(tmp_path / "project", {"train": {"resume": True}}, features=features_dir)
    (project / "checkpoints").mkdir()
    (project / "checkpoints/resnet.pt").write_bytes(b"PK\x03\x04 cut short")
    done = run_stage(project, "train.py", "resnet")
    assert done.returncode == 0, done.stderr
    assert "checkpoints/resnet.pt is not a readable checkpoint (truncated?); training from epoch 1" in done.stderr
    assert "resnet epoch 1/1" in done.stderr
    assert torch.load(project / "checkpoints/resnet.pt", weights_only=True)["history"]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@case("model-not-a-model", "`weights.pt` is garbage, truncated, or a pickle that would run code "
      "(more: tests/test_predictor.py::test_weights_that_are_not_a_model_never_run_code)",
      "`ModelLoadError` naming the file; the pickle's code never runs")
def check_model_not_a_model(tmp_path: Path, predictor: PricePredictor) -> None:
    predictor.save(tmp_path)
    weights = tmp_path / "weights.pt"
    good = weights.read_bytes()
    marker = tmp_path / "code-was-run"
    for payload in (pickle.dumps({"x": _Exploit(marker)}), b"not a model", good[: len(good) // 2]):
        weights.write_bytes(payload)
        raises(r"weights\.pt: not a readable weights file", lambda: PricePredictor.load(tmp_path), ModelLoadError)
    assert not marker.exists()


@case("loads-never-run-code", "any model, checkpoint or feature file", "loaded as data only: every `torch.load` "
      "passes `weights_only=True`, no `allow_pickle=True`, no `trust_remote_code`")
def check_loads_never_run_code(tmp_path: Path) -> None:
    loads = 0
    for path in source_files():
        text = path.read_text()
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            loads += 1
            assert "weights_only=True" in call, f"{path}: {call}"
        assert "allow_pickle=True" not in text and not re.search(r"trust_remote_code\s*=\s*True", text), path
    assert loads >= 2  # the predictor's weights and the training checkpoint


# --------------------------------------------------------------------------------------------
# The MLflow store: unusable stores fail before training starts


@contextmanager
def exclusive_lock(database: Path) -> Iterator[None]:
    """Another process holding an exclusive SQLite lock on ``database``."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\nsys.stdin.read()", str(database)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def tracked_project(tmp_path: Path, features_dir: Path, store: str, **tracking_params: Any) -> Path:
    """A stage directory whose MLflow store is ``store``: "locked", "corrupt" or "unreachable"."""
    project = stage_dir(tmp_path / "project", {"tracking": {"enabled": True, **tracking_params}}, features=features_dir)
    if store == "locked":
        tracking.connect(tracking.resolve_tracking_uri(project, environ={}), "pricer", project)  # a healthy store
    if store == "corrupt":
        (project / "mlflow.db").write_bytes(np.random.default_rng(0).bytes(64 * 1024))
    return project


@case("store-locked", "the SQLite store is locked by another process (`BEGIN EXCLUSIVE`) for longer than "
      "`tracking.busy_timeout_s` (default 60 s)",
      "`TrackingError` (database is locked) before training; the train stage exits 1, writes no model")
def check_store_locked(tmp_path: Path, features_dir: Path) -> None:
    project = tracked_project(tmp_path, features_dir, "locked", busy_timeout_s=1)
    with exclusive_lock(project / "mlflow.db"):
        started = time.monotonic()
        raises(r"mlflow\.db\?timeout=1 cannot be used: OperationalError: .*database is locked.*tracking\.busy_timeout_s",
               lambda: tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=project,
                                          busy_timeout_s=1), tracking.TrackingError)
        assert time.monotonic() - started < 10
        done = run_stage(project, "train.py", "resnet")
    assert done.returncode == 1 and "database is locked" in done.stderr and "Traceback" not in done.stderr
    assert_no_training(project, done)


@case("store-corrupt", "`mlflow.db` is random bytes", "`TrackingError` (not an SQLite database) before training; "
      "the train stage exits 1, writes no model")
def check_store_corrupt(tmp_path: Path, features_dir: Path) -> None:
    project = tracked_project(tmp_path, features_dir, "corrupt")
    raises(r"mlflow\.db.* cannot be used: \w+: .*file is not a database.*move it away",
           lambda: tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=project),
           tracking.TrackingError)
    done = run_stage(project, "train.py", "resnet")
    assert done.returncode == 1 and "file is not a database" in done.stderr and "Traceback" not in done.stderr
    assert_no_training(project, done)


@case("store-unreachable", "`MLFLOW_TRACKING_URI=http://127.0.0.1:<closed port>`",
      "`TrackingError` (server unreachable) in seconds, before training; the train stage exits 1, writes no model")
def check_store_unreachable(tmp_path: Path, features_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tracked_project(tmp_path, features_dir, "unreachable")
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    raises(rf"MLflow tracking server {re.escape(uri)} is unreachable",
           lambda: tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=project),
           tracking.TrackingError)
    assert time.monotonic() - started < 10
    done = run_stage(project, "train.py", "resnet", env={"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 1 and "is unreachable" in done.stderr and "Traceback" not in done.stderr
    assert_no_training(project, done)


@case("tracking-disabled", "`-S tracking.enabled=false` (here with a corrupt store present)",
      "trains and writes the model without touching the store")
def check_tracking_disabled(tmp_path: Path, features_dir: Path) -> None:
    project = tracked_project(tmp_path, features_dir, "corrupt")
    project_params = yaml.safe_load((project / "params.yaml").read_text())
    project_params["tracking"]["enabled"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(project_params))
    before = (project / "mlflow.db").read_bytes()
    done = run_stage(project, "train.py", "resnet")
    assert done.returncode == 0, done.stderr
    assert PricePredictor.load(project / "models/resnet").predict(["Title: a lamp"]).shape == (1,)
    assert not (project / "models/resnet/run.json").exists()  # no run-specific file in a DVC output
    assert (project / "mlflow.db").read_bytes() == before


# --------------------------------------------------------------------------------------------
# `pricer predict` (more: tests/cli/): one-line errors, exit 1, and -o written whole or not at all


def predict_cli(model_dir: Path, capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``pricer predict -m model_dir argv...`` in-process: its status, stdout and stderr."""
    from pricer.cli import main

    status = main(["predict", "-m", str(model_dir), *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, err: str, pattern: str) -> None:
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err


@case("predict-output-is-input", "`pricer predict -i x.csv -o x.csv` (also through a symlink)",
      "refused before reading: error naming `-o`; the input is untouched")
def check_predict_output_is_input(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    items_csv = tmp_path / "x.csv"
    items_csv.write_text("summary\nTitle: a lamp\n")
    status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(items_csv), "-f", "csv", "-o", str(items_csv))
    assert_one_line_error(status, err, r"-o .*x\.csv: is the input file")
    assert items_csv.read_text() == "summary\nTitle: a lamp\n"


@case("predict-output-unwritable", "`-o` in a missing directory, `-o` a directory, or a file the system refuses",
      "error naming `-o` and the reason, before any model is loaded; nothing written")
def check_predict_output_unwritable(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    for output, reason in ((tmp_path / "nowhere" / "p.csv", "does not exist"), (tmp_path / "model", "is a directory")):
        status, _, err = predict_cli(tmp_path / "model", capsys, "-o", str(output), "a lamp")
        assert_one_line_error(status, err, rf"-o {re.escape(str(output))}: .*{reason}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@case("predict-interrupted", "an error, Ctrl-C, SIGTERM or SIGKILL while `-o` is being written "
      "(more: tests/cli/test_app.py, tests/cli/test_writers.py)",
      "the old `-o` is kept; the hidden temporary `.<name>.<random>.tmp<ext>` is removed (SIGKILL: left, never read)")
def check_predict_interrupted(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    (tmp_path / "cut.json").write_text('[{"summary": "Title: a lamp"}, ')
    (tmp_path / "p.csv").write_text("old\n")
    status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "cut.json"), "-o", str(tmp_path / "p.csv"))
    assert_one_line_error(status, err, r"cut\.json: not valid JSON")
    assert (tmp_path / "p.csv").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.json", "model", "p.csv"]


@case("predict-unknown-device", "`pricer predict --device gpu` (or `cuda` where there is none)",
      "usage error naming `--device` (exit 2)")
def check_predict_unknown_device(capsys: pytest.CaptureFixture) -> None:
    from pricer.cli import main

    with pytest.raises(SystemExit) as done:
        main(["predict", "--device", "gpu", "a lamp"])
    assert done.value.code == 2
    assert "argument --device: 'gpu' is not a torch device" in capsys.readouterr().err


@case("predict-model-unusable", "`-m DIR` missing, or whose `model.json` and `weights.pt` disagree",
      "one-line error naming the file and what disagrees")
def check_predict_model_unusable(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    status, _, err = predict_cli(tmp_path / "gone", capsys, "a lamp")
    assert_one_line_error(status, err, r"gone: not a pricer model directory")
    predictor.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "model.json").read_text())
    config["architecture"]["hidden"] = 8
    (tmp_path / "model" / "model.json").write_text(json.dumps(config))
    status, _, err = predict_cli(tmp_path / "model", capsys, "a lamp")
    assert_one_line_error(status, err, r"weights\.pt: weights do not fit the architecture in model\.json")


@case("predict-no-rows", "an empty input file, or a CSV or parquet file with a header and no rows",
      "error naming the file; nothing written")
def check_predict_no_rows(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    for name, content in (("empty.txt", ""), ("header.csv", "id,summary\n")):
        (tmp_path / name).write_text(content)
        status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / name), "-o", str(tmp_path / "p.csv"))
        assert_one_line_error(status, err, rf"{name}: no rows to price")
    assert not (tmp_path / "p.csv").exists()


@case("predict-no-text-column", "the input file has no `summary` column (nor `--text-column`)",
      "error naming the file and the columns it has")
def check_predict_no_text_column(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    (tmp_path / "x.csv").write_text("id,title\n1,lamp\n")
    status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "x.csv"))
    assert_one_line_error(status, err, r"x\.csv: no column 'summary' \(columns: id, title\)")


@case("predict-bad-rows", "rows with missing, empty or non-string text, bytes that are not UTF-8, an unreadable "
      "JSON line, a CSV row with the wrong number of fields", "that row gets its reason in the `error` column and "
      "on stderr; every other row is priced")
def check_predict_bad_rows(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    (tmp_path / "x.csv").write_bytes(b"id,summary\n1,Title: lamp\n2,\n3,caf\xe9\n4,a,b\n5,Title: drill\n")
    status, out, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "x.csv"), "-f", "csv")
    rows = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert status == 0 and rows["id"].tolist() == [1, 2, 3, 4, 5]
    assert rows["error"].tolist() == ["", "empty text", "text is not valid UTF-8 (byte 0xe9 at character 4)",
                                      "row has 3 fields, the header has 2", ""]
    assert "priced 2 of 5 rows" in err


@case("predict-huge-line", "a single input line of 2 MB", "priced on its first 100,000 characters, as in training, "
      "with a warning naming the row")
def check_predict_huge_line(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    huge = "Title: steel lamp " * 120_000
    (tmp_path / "huge.txt").write_text(huge + "\n")
    status, out, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "huge.txt"), "-f", "jsonl")
    assert status == 0 and f"row 1: text of {len(huge):,} characters cut to {MAX_TEXT_CHARS:,}" in err
    assert json.loads(out)["prices"]["resnet"] == pytest.approx(
        round(float(predictor.predict([huge[:MAX_TEXT_CHARS]])[0]), 2))


@case("predict-format-mismatch", "`-f csv -o prices.json`, or `--input-format csv` (or a `.csv` name) on a parquet file",
      "error naming the file and the format to pass; nothing written")
def check_predict_format_mismatch(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    status, _, err = predict_cli(tmp_path / "model", capsys, "-f", "csv", "-o", str(tmp_path / "p.json"), "a lamp")
    assert_one_line_error(status, err, r"p\.json: the extension says json, -f says csv")
    write_source(tmp_path, items(3))
    (tmp_path / "items.parquet").rename(tmp_path / "items.csv")
    status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "items.csv"))
    assert_one_line_error(status, err, r"items\.csv: is a parquet file, not csv; pass --input-format parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv", "model"]


# --------------------------------------------------------------------------------------------
# Outputs, processes and copies of the project


@case("output-disk-full", "the disk fills up (`ENOSPC`) while a checkpoint, a model or a metrics file is written",
      "`OutputError` naming the file; the previous version stays intact and no temporary is left")
def check_output_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import torch

    from pricer.atomic import OutputError
    from pricer.training.checkpoint import save_checkpoint

    checkpoint = tmp_path / "checkpoints" / "mlp.pt"
    save_checkpoint(checkpoint, {"epoch": 1})
    before = checkpoint.read_bytes()

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    raises(r"checkpoints/mlp.pt: cannot write it \(No space left on device\)",
           lambda: save_checkpoint(checkpoint, {"epoch": 2}), OutputError)
    assert checkpoint.read_bytes() == before and sorted(p.name for p in checkpoint.parent.iterdir()) == ["mlp.pt"]


@case("output-path-blocked", "a file stands where an output directory should be (`metrics` is a file)",
      "`OutputError` naming the output, not a traceback from `mkdir`")
def check_output_path_blocked(tmp_path: Path) -> None:
    from pricer.atomic import OutputError, write_json

    (tmp_path / "metrics").write_text("not a directory")
    raises(r"metrics/mlp.json: cannot write it", lambda: write_json(tmp_path / "metrics" / "mlp.json", {}), OutputError)


@case("fetch-report-corrupt", "`data/fetch_report.json` is damaged when a train stage reads it",
      "the train stage exits 1 naming the file and `dvc repro -f fetch`; writes no model")
def check_fetch_report_corrupt(tmp_path: Path, features_dir: Path) -> None:
    project = stage_dir(tmp_path / "project", features=features_dir)
    (project / "data" / "fetch_report.json").write_text('{"kind": "synth')
    done = run_stage(project, "train.py", "mlp")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "data/fetch_report.json: not valid JSON" in done.stderr and "dvc repro -f fetch" in done.stderr
    assert_no_training(project, done)


@case("processes-indivisible-batch", "`train.processes: 3` with the default batch size 64",
      "`ParamsError` naming `mlp.batch_size` and `train.processes` before any work")
def check_processes_indivisible_batch(tmp_path: Path) -> None:
    raises(r"mlp.batch_size \(64\) must divide evenly among train.processes \(3\)",
           lambda: params_from_dict({"train": {"processes": 3}}), ParamsError)


@case("processes-more-than-cores", "`train.processes: 64` on a machine with fewer CPU cores",
      "`DistributedError` naming the key and the cores, before any worker starts")
def check_processes_more_than_cores(tmp_path: Path) -> None:
    from pricer.training.distributed import DistributedError, relaunch_under_torchrun

    train = params_from_dict({"train": {"processes": 64, "device": "cpu"}}).train
    if (os.cpu_count() or 1) >= 64:
        pytest.skip("this machine has 64 cores or more")
    raises(r"train.processes is 64 but this machine has \d+ CPU cores", lambda: relaunch_under_torchrun(
        "stages/train.py", ["mlp"], train), DistributedError)


@case("store-damaged-pages", "pages inside `mlflow.db` are overwritten (a damaged disk, a torn copy)",
      "`TrackingError` (damaged, or cannot be used) before training, not at the first epoch's log")
def check_store_damaged_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=tmp_path)
    tracker.finish()
    store = tmp_path / "mlflow.db"
    data = bytearray(store.read_bytes())
    for start in range(8192, len(data) - 4096, 4096 * 3):
        data[start + 100 : start + 400] = b"\xff" * 300
    store.write_bytes(bytes(data))
    raises(r"mlflow.db is damaged|cannot be used", lambda: tracking.start_run(
        enabled=True, experiment="pricer", run_name="y", tags={}, root=tmp_path), tracking.TrackingError)


@case("store-of-another-project", "the project was copied with `cp -a`: its `mlflow.db` keeps artifacts in the "
      "original's `mlartifacts`", "`TrackingError` naming both places and the ways out; nothing is written "
      "into the original")
def check_store_of_another_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    original, copy = tmp_path / "original", tmp_path / "copy"
    tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=original).finish()
    shutil.copytree(original, copy)
    raises(r"outside this project .*tracking.experiment", lambda: tracking.start_run(
        enabled=True, experiment="pricer", run_name="y", tags={}, root=copy), tracking.TrackingError)
    assert not (original / "mlartifacts").exists() or not any((original / "mlartifacts").rglob("*"))


@case("source-untracked-in-temp-run", "`dvc exp run --temp -S data.source=<a directory git and DVC do not "
      "track>`", "`DataError` saying that temporary and queued runs see only tracked files, and what to do")
def check_source_untracked_in_temp_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp_copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12"
    temp_copy.mkdir(parents=True)
    monkeypatch.chdir(temp_copy)
    raises(r"queued experiment, whose copy of the project holds only the files git or DVC track",
           lambda: fetch_splits("items_lite"))


# --------------------------------------------------------------------------------------------
# Stage-level plumbing


TINY = {
    "data": {"synthetic_items": 300},
    "vectorize": {"n_features": 256, "n_jobs": 1},
    "mlp": {"hidden_layers": [16, 8], "epochs": 1},
    "resnet": {"hidden": 16, "layers": 2, "epochs": 1},
    "train": {"progress": False},
    "tracking": {"enabled": False},
}


def stage_dir(root: Path, overrides: dict | None = None, *, features: Path | None = None) -> Path:
    """A directory a stage script can run in: params.yaml (tiny) and, optionally, features."""
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(deep_merge(TINY, overrides or {})))
    if features is not None:
        shutil.copytree(features, root / "data" / "features")
    return root


def run_stage(project: Path, script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``stages/<script>`` in ``project``; ``env`` adds to (or, with HF_HOME, replaces) the environment."""
    base = env if env and "HF_HOME" in env else {**os.environ, **(env or {})}
    environment = {k: v for k, v in base.items() if not k.startswith(("MLFLOW_", "DVC_"))} | {"CI": "true"}
    environment |= {k: v for k, v in (env or {}).items() if k.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, str(REPO_ROOT / "stages" / script), *args], cwd=project,
                          env=environment, capture_output=True, text=True, timeout=300, check=False)


def listing(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*")}


def assert_nothing_written(project: Path) -> None:
    written = {p for p in listing(project) - {"params.yaml", "data"} if not p.startswith("data/features")}
    assert not written, sorted(written)


def assert_no_training(project: Path, done: subprocess.CompletedProcess) -> None:
    assert "epoch 1/" not in done.stderr  # failed before the first epoch
    assert not any(p.startswith(("models", "metrics", "checkpoints")) for p in listing(project)), sorted(listing(project))


def source_files() -> list[Path]:
    return sorted([*(REPO_ROOT / "src" / "pricer").rglob("*.py"), *(REPO_ROOT / "stages").glob("*.py")])


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/features for train and validation, hashed from the catalogue with TINY's settings."""
    from pricer.catalogue import generate_catalogue
    from pricer.features import VectorizerSettings, vectorize_texts

    directory = tmp_path_factory.mktemp("features") / "features"
    frame = generate_catalogue(300, seed=0)
    matrix = vectorize_texts(frame["summary"].tolist(), VectorizerSettings(n_features=256))
    labels = frame[["id", "price"]]
    save_features(directory, "train", matrix[:250], labels.iloc[:250].reset_index(drop=True))
    save_features(directory, "validation", matrix[250:], labels.iloc[250:].reset_index(drop=True))
    return directory


@pytest.fixture
def predictor(catalogue_features) -> PricePredictor:
    from pricer.models import build_model
    from pricer.target import TargetTransform

    settings, _, train_y, *_ = catalogue_features
    arch = {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2}
    torch.manual_seed(0)
    return PricePredictor("resnet", build_model(arch).eval(), arch, settings,
                          TargetTransform.fit("standardized_log", train_y))


# --------------------------------------------------------------------------------------------
# The table


@pytest.mark.parametrize("bad_input", CASES, ids=[c.name for c in CASES])
def test_bad_input(bad_input: Case, request: pytest.FixtureRequest) -> None:
    import inspect

    wanted = inspect.signature(bad_input.check).parameters
    fixtures = {name: request.getfixturevalue(name) for name in wanted if name not in ("raw", "key")}
    bad_input.check(**fixtures)


def test_cases_have_unique_names() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


def test_docs_table_lists_every_case() -> None:
    """docs/guarantees.md's bad-input table has one row per case here, by name."""
    rows = set(re.findall(r"^\| `([a-z0-9-]+)` \|", GUARANTEES.read_text(encoding="utf-8"), flags=re.M))
    names = {c.name for c in CASES}
    assert names <= rows, f"cases missing from {GUARANTEES.name}: {sorted(names - rows)}"
    assert rows <= names, f"rows of {GUARANTEES.name} without a case: {sorted(rows - names)}"


def markdown_table() -> str:
    """The table for docs/guarantees.md: ``python tests/test_bad_input.py``."""
    lines = ["| case | bad input | what pricer does |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.problem} | {c.outcome} |" for c in CASES]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
