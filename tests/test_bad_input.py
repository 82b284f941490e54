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
directory (in this process, or in a child where the interpreter's start is under test); Hub
cases run in a child interpreter (huggingface_hub reads its settings at import) against loopback
servers or a Hub cache built on disk, never the network.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import select
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
import helpers
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from helpers import deep_merge, not_found_hub, spawn_ranks

from pricer import tracking
from pricer.digests import directory_md5
from pricer.features import ArtifactError, load_features, save_features
from pricer.params import ParamsError, params_from_dict
from pricer.predictor import ModelLoadError, PricePredictor
from pricer.sources import DataError, FetchResult, fetch_splits, hub
from pricer.sources.split import SPLITS
from pricer.sources.validate import DROP_REASONS, MAX_PRICE, MAX_TEXT_CHARS, validate_split
from pricer.text import NO_WORDS, TextError

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
               lambda path=path: fetch_splits(str(path)))


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


@case("unknown-source",
      "`data.source` is none of synthetic / a path / `owner/name` (e.g. `nonsense`, `a/b/c`, `table.csv`)",
      "error listing the accepted kinds; the fetch stage exits 1 and writes nothing")
def check_unknown_source(tmp_path: Path) -> None:
    raises(r"'a/b/c': not a known data source; expected 'synthetic'", lambda: fetch_splits("a/b/c"))
    (tmp_path / "table.csv").write_text("summary,price\na,1\n")
    raises(r"table\.csv: unsupported file type '\.csv'", lambda: fetch_splits(str(tmp_path / "table.csv")))
    project = stage_dir(tmp_path / "project", {"data": {"source": "nonsense"}})
    done = run_stage_here(project, "fetch.py")
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
        raises(rf"{re.escape(str(tmp_path / name))} is an empty file$",
               lambda name=name: fetch_splits(str(tmp_path / name)))
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


@case("hub-missing-split",
      "a Hub dataset without a `train` split (a missing validation/test split is carved from train)",
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
    ("interval-level-one", {"evaluate": {"interval_level": 1.0}}, "evaluate.interval_level"),
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


@case("params-yaml-1-1-values", "a value YAML 1.1 reads otherwise than YAML 1.2: `lr: 1:30` (1.1: base-60 90; what "
      "`dvc exp run -S lr=1:30` writes), `resume: yes` or `on`, `lr: '0.5'` in quotes; also `1e-3`, `0o17`",
      "read as DVC reads params.yaml (ruamel.yaml, YAML 1.2), so what trains is what DVC records: `1:30`, `yes`, "
      "`'0.5'` are text, refused naming the key (`lr must be a number (this is text in YAML 1.2, as DVC reads it), "
      "got '1:30'`); `1e-3` and `0o17` are the numbers DVC records")
def check_params_yaml_11_forms(tmp_path: Path) -> None:
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import load_yaml

    from pricer.params import load_params

    path = tmp_path / "params.yaml"
    for override, key, recorded in [("lr=1:30", "lr", "1:30"), ("train.resume=yes", "train.resume", "yes"),
                                    ("train.resume=on", "train.resume", "on"), ("lr='0.5'", "lr", "0.5")]:
        path.write_text("lr: 0.001\ntrain:\n  resume: false\n")
        apply_overrides(path, [override])  # what `dvc exp run -S` does to params.yaml
        section, _, name = key.rpartition(".")
        dvc_reads = load_yaml(path)
        assert (dvc_reads[section] if section else dvc_reads)[name] == recorded  # DVC records text
        raises(rf"params.yaml: {re.escape(key)} must be .*, got '{re.escape(recorded)}'", lambda: load_params(path),
               ParamsError)
    path.write_text("lr: 1e-3\nseed: 0o17\n")
    read = load_params(path)
    assert (read.lr, read.seed) == (load_yaml(path)["lr"], load_yaml(path)["seed"]) == (0.001, 15)


@case("params-alias-bomb", "a YAML alias bomb in params.yaml (lists of ten aliases of the list before, 8 deep: "
      "10^8 values in 10 lines), or an alias that contains itself",
      "`ParamsError` naming the key in well under a second, in bounded memory (the value is never expanded, nor "
      "written out in the message)")
def check_params_alias_bomb(tmp_path: Path) -> None:
    import tracemalloc

    from pricer.params import load_params

    levels = ["  n0: &n0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"  n{i}: &n{i} [{', '.join([f'*n{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "params.yaml"
    path.write_text("lr: 0.001\n")
    load_params(path)  # the YAML library imported before the clock starts
    for text, key in [("mlp:\n" + "\n".join(levels[:-1]) + "\n  hidden_layers: *n7\n", "mlp.n3"),
                      ("seed: &loop [*loop]\n", "seed")]:
        path.write_text(text)
        tracemalloc.start()
        started = time.monotonic()
        message = raises(rf"params.yaml: {re.escape(key)} stands for more than 10,000 values",
                         lambda: load_params(path), ParamsError)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # (the unbounded expansion took 50 s and 3 GB; a loaded machine gets a generous bound)
        assert time.monotonic() - started < 5.0 and peak < 20 * 2**20 and len(message) < 300


@case("params-workers-above-cores", "`vectorize.n_jobs` (processes) or `train.threads` above the CPU cores this "
      "process may use (its affinity), e.g. `vectorize.n_jobs: 24` on 2 cores",
      "`ParamsError` naming the key and the cores before any worker starts: the stage exits 1 and writes nothing "
      "(`train.processes`: `processes-more-than-cores`)")
def check_params_workers_above_cores(tmp_path: Path, features_dir: Path) -> None:
    from pricer.cores import available_cores

    cores = available_cores()
    for script, overrides, key in [("vectorize.py", {"vectorize": {"n_jobs": cores + 1}}, "vectorize.n_jobs"),
                                   ("train.py", {"train": {"threads": cores + 1}}, "train.threads")]:
        project = stage_dir(tmp_path / script, overrides, features=features_dir if script == "train.py" else None)
        before = listing(project)
        done = run_stage_here(project, script, *(["mlp"] if script == "train.py" else []))
        assert done.returncode == 1, done.stderr
        expected = (f"params.yaml: {key} is {cores + 1} but this machine has {cores} CPU core"
                    f"{'s' if cores != 1 else ''}; use at most {cores}")
        assert expected in done.stderr and done.stderr.count(" ERROR ") == 1 and "Traceback" not in done.stderr
        assert listing(project) == before


@case("device-unavailable", "`train.device: cuda` on a machine without CUDA",
      "the train stage exits 1 naming the key; writes nothing")
def check_device_unavailable(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    project = stage_dir(tmp_path / "project", {"train": {"device": "cuda"}})
    done = run_stage_here(project, "train.py", "resnet")
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
    done = run_stage_here(project, "train.py", "resnet")
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


@case("features-exceed-memory", "hashed train and validation features larger than the memory available to "
      "train on (e.g. 10,000,000 catalogue items on a small machine)",
      "the train stage exits 1 before loading, naming the GiB needed, the GiB available and `train.nodes`, instead "
      "of an out-of-memory kill with no message")
def check_features_exceed_memory(features_dir: Path) -> None:
    from pricer.training.runner import FeaturesExceedMemoryError, check_features_fit_in_memory

    manifests = [json.loads((features_dir / split / "manifest.json").read_text()) for split in ("train", "validation")]
    need = sum(m["nnz"] * 8 + m["rows"] * 24 for m in manifests)  # the lower bound the check computes
    check_features_fit_in_memory(features_dir, available=need)
    raises(r"features: the train and validation features need at least 0\.0 GiB in memory for this process "
           r"\([\d,]+ non-zeros\), but 0\.0 GiB is available; free memory, or spread the rows over machines with "
           r"train\.nodes", lambda: check_features_fit_in_memory(features_dir, available=need - 1),
           FeaturesExceedMemoryError)
    # two machines of two ranks each: each machine holds half the rows
    check_features_fit_in_memory(features_dir, processes=2, world_size=4, available=need // 2 + 1)
    raises("this machine's 2 of 4 ranks", lambda: check_features_fit_in_memory(
        features_dir, processes=2, world_size=4, available=need // 2 - 100), FeaturesExceedMemoryError)


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
    (tmp_path / "model.json").write_text(
        json.dumps({**config, "architecture": {**config["architecture"], "hidden": 8}}))
    raises(r"weights\.pt: weights do not fit the architecture", lambda: PricePredictor.load(tmp_path), ModelLoadError)
    shutil.rmtree(tmp_path / "gone", ignore_errors=True)
    raises(r"gone: not a pricer model directory", lambda: PricePredictor.load(tmp_path / "gone"), ModelLoadError)


@case("calibration-corrupt", "a model's `calibration.json` (its price ranges) is damaged or from another "
      "band layout", "`ModelLoadError` naming the file, also for `pricer predict` (one line)")
def check_calibration_corrupt(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    path = tmp_path / "model" / "calibration.json"
    path.write_text(path.read_text()[:100])
    raises(r"calibration\.json: not a pricer calibration", lambda: PricePredictor.load(tmp_path / "model"),
           ModelLoadError)
    path.write_text(json.dumps({"bands": [{"band": "<$5", "scores": [0.1]}]}))
    raises(r"calibration\.json: not a pricer calibration", lambda: PricePredictor.load(tmp_path / "model"),
           ModelLoadError)
    status, _, err = predict_cli(tmp_path / "model", capsys, "a lamp")
    assert_one_line_error(status, err, r"calibration\.json: not a pricer calibration")


@case("model-without-calibration", "a model directory saved before price ranges existed (no `calibration.json`)",
      "priced as before; `pricer predict` warns once and leaves its `_low`/`_high` columns empty; "
      "`predict_range` and the evaluate stage stop with an error saying to retrain")
def check_model_without_calibration(tmp_path: Path, predictor: PricePredictor,
                                    capsys: pytest.CaptureFixture) -> None:
    predictor.calibration = None
    predictor.save(tmp_path / "model")
    status, out, err = predict_cli(tmp_path / "model", capsys, "-f", "csv", "a lamp")
    assert status == 0 and err.count("saved without a calibration") == 1
    row = out.splitlines()[1].split(",")
    assert out.splitlines()[0].split(",")[1:4] == ["resnet", "resnet_low", "resnet_high"]
    assert float(row[1]) > 0 and row[2:4] == ["", ""]
    raises("without a calibration", lambda: PricePredictor.load(tmp_path / "model").predict_range(["a lamp"]),
           ModelLoadError)


@case("predict-level-outside", "`pricer predict --level 1.5` (or 0, or not a number)",
      "usage error naming `--level` (exit 2)")
def check_predict_level_outside(capsys: pytest.CaptureFixture) -> None:
    from pricer.cli import main

    for level in ("1.5", "0", "eighty"):
        with pytest.raises(SystemExit) as done:
            main(["predict", "--level", level, "a lamp"])
        assert done.value.code == 2
        assert "argument --level" in capsys.readouterr().err


@case("checkpoint-other-config", "with `train.resume: true`, a checkpoint written for other params or data, or "
      "another `train.processes` "
      "(more: tests/training/test_loop.py::test_checkpoint_of_another_configuration_is_ignored)",
      "ignored with a warning naming it and the first key that differs, with both values; training starts from "
      "epoch 1")
def check_checkpoint_other_config(tmp_path: Path, catalogue_features, caplog: pytest.LogCaptureFixture) -> None:
    from pricer.batching import CSRTensors
    from pricer.models import build_model
    from pricer.target import TargetTransform
    from pricer.training import Recipe, fit
    from pricer.training.checkpoint import Checkpointing

    _, train_x, train_y, val_x, val_y, _ = catalogue_features
    target = TargetTransform.fit("standardized_log", train_y)
    recipe = Recipe(optimizer="adamw", lr=0.003, loss="l1", batch_size=256, epochs=2)
    checkpoint = tmp_path / "resnet.pt"

    def train(key: dict) -> int:
        model = build_model({"kind": "resnet", "n_features": 512, "hidden": 8, "layers": 2, "dropout": 0.0})
        result = fit(model, CSRTensors.from_scipy(train_x, target.encode(train_y)),
                     CSRTensors.from_scipy(val_x, target.encode(val_y)), val_y, target, recipe,
                     device=torch.device("cpu"), model_name="resnet",
                     checkpoint=Checkpointing(checkpoint, key, resume=True))
        return len(result.history)

    assert train({"train_rows": 1000, "train.processes": 2}) == 2
    assert train({"train_rows": 1000, "train.processes": 1}) == 2  # not resumed: trained both epochs again
    assert f"checkpoint {checkpoint} ignored: train.processes differs (2 vs 1); training from epoch 1" in caplog.text


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
    assert (f"checkpoint {checkpoint} ignored: features_md5.data/features/train.npz differs ('binary-features' vs "
            "'count-features')") in caplog.text


def _train_tiny_mlp(checkpoint: Path, catalogue_features: Any, *, killed_in_epoch: int | None = None) -> list[float]:
    """Train a tiny 2-epoch MLP through the train stage's runner with ``train.resume``; its
    validation MAEs. ``killed_in_epoch`` stops it there, as a kill would (the checkpoint stays)."""
    from pricer.training.distributed import Processes
    from pricer.training.runner import TrainingData, plan_training, run_training

    _, train_x, train_y, val_x, val_y, _ = catalogue_features
    params = params_from_dict({"mlp": {"epochs": 2, "hidden_layers": [8]}, "vectorize": {"n_features": 512}})
    data = TrainingData(train_x, train_y, val_x, val_y, {"data/features/train.npz": "md5"})
    plan = plan_training(params, "mlp", data, torch.device("cpu"))

    def kill(record: Any) -> None:
        if record.epoch == killed_in_epoch:
            raise KeyboardInterrupt

    fitted = run_training(plan, data, Processes(torch.device("cpu")), on_epoch=kill, checkpoint_path=checkpoint,
                          resume=True).fit
    return [record.val_mae for record in fitted.history]


@case("checkpoint-code-changed", "with `train.resume: true`, pricer's code changed since the checkpoint was written "
      "(e.g. the loss in `training/loop.py`: DVC reruns the stage)",
      "ignored, naming `code`: the checkpoint's identity holds the md5 of pricer's source files; training starts "
      "from epoch 1")
def check_checkpoint_code_changed(tmp_path: Path, catalogue_features, caplog: pytest.LogCaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from pricer.training import runner

    checkpoint = tmp_path / "mlp.pt"
    with pytest.raises(KeyboardInterrupt):
        _train_tiny_mlp(checkpoint, catalogue_features, killed_in_epoch=2)  # leaves the epoch-1 checkpoint
    monkeypatch.setattr(runner, "package_source_md5", lambda: "edited-source")
    with caplog.at_level("INFO", logger="pricer"):
        history = _train_tiny_mlp(checkpoint, catalogue_features)
    assert len(history) == 2 and "resuming" not in caplog.text
    assert re.search(r"checkpoint .* ignored: code differs \('[0-9a-f]{32}' vs 'edited-source'\)", caplog.text)


@case("checkpoint-complete", "with `train.resume: true`, a checkpoint whose run is complete (the stage reruns all "
      "the same: `dvc repro --force`, other library versions, outputs removed)",
      "not resumed with zero epochs: logged as a complete run, not an interrupted one, and trained afresh from "
      "epoch 1 (to the same weights on CPU)")
def check_checkpoint_complete(tmp_path: Path, catalogue_features, caplog: pytest.LogCaptureFixture) -> None:
    checkpoint = tmp_path / "mlp.pt"
    first = _train_tiny_mlp(checkpoint, catalogue_features)
    with caplog.at_level("INFO", logger="pricer"):
        again = _train_tiny_mlp(checkpoint, catalogue_features)
    assert again == first and len(again) == 2
    assert "resuming" not in caplog.text
    assert (f"checkpoint {checkpoint} holds a complete run (2 of 2 epochs), not an interrupted one; training afresh "
            "from epoch 1") in caplog.text


@case("checkpoint-corrupt", "with `train.resume: true`, a truncated `checkpoints/<model>.pt`",
      "the train stage warns, naming it, and trains from epoch 1")
def check_checkpoint_corrupt(tmp_path: Path, features_dir: Path) -> None:
    project = stage_dir(tmp_path / "project", {"train": {"resume": True}}, features=features_dir)
    (project / "checkpoints").mkdir()
    (project / "checkpoints/resnet.pt").write_bytes(b"PK\x03\x04 cut short")
    done = run_stage_here(project, "train.py", "resnet")
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


@case("loads-never-run-code", "any model, checkpoint or feature file", "loaded by pricer as data only: every "
      "`torch.load` passes `weights_only=True`, no `allow_pickle=True`, no `trust_remote_code` (`mlflow.pyfunc."
      "load_model` and `mlflow models serve` run the code logged with a model: `logged-model-swapped`)")
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
        ready, _, _ = select.select([holder.stdout], [], [], 60)
        assert ready, f"waited 60 s for the process locking {database} to say it holds the lock"
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        try:
            holder.wait(timeout=10)
        finally:
            holder.kill()  # a no-op once it has exited


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
        raises(r"mlflow\.db\?timeout=1 cannot be used: OperationalError: "
               r".*database is locked.*tracking\.busy_timeout_s",
               lambda: tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=project,
                                          busy_timeout_s=1), tracking.TrackingError)
        assert time.monotonic() - started < 10
        done = run_stage_here(project, "train.py", "resnet")
    assert done.returncode == 1 and "database is locked" in done.stderr and "Traceback" not in done.stderr
    assert_no_training(project, done)


@case("store-corrupt", "`mlflow.db` is random bytes", "`TrackingError` (not an SQLite database) before training; "
      "the train stage exits 1, writes no model")
def check_store_corrupt(tmp_path: Path, features_dir: Path) -> None:
    project = tracked_project(tmp_path, features_dir, "corrupt")
    raises(r"mlflow\.db.* cannot be used: \w+: .*file is not a database.*move it away",
           lambda: tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=project),
           tracking.TrackingError)
    done = run_stage_here(project, "train.py", "resnet")
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
    done = run_stage_here(project, "train.py", "resnet", env={"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 1 and "is unreachable" in done.stderr and "Traceback" not in done.stderr
    assert_no_training(project, done)


def registry_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, float, str]:
    """``pricer argv...`` in-process (in the current directory): its status, seconds and stderr."""
    from pricer.cli import main

    started = time.monotonic()
    status = main(list(argv))
    return status, time.monotonic() - started, capsys.readouterr().err


REGISTRY_COMMANDS = (("promote", "resnet", "--version", "1"),
                     ("predict", "-m", "models:/pricer-resnet@champion", "Title: a lamp"))


@case("registry-store-damaged", "`pricer promote` or `pricer predict -m models:/...` on an `mlflow.db` that is "
      "random bytes, or whose pages are overwritten",
      "one line naming the store (no traceback), exit 1; the file is left as it was")
def check_registry_store_damaged(tmp_path: Path, capsys: pytest.CaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=tmp_path).finish()
    capsys.readouterr()  # MLflow's own lines from creating the store
    pages = bytearray(store.read_bytes())
    for start in range(8192, len(pages) - 4096, 4096 * 3):
        pages[start + 100 : start + 400] = b"\xff" * 300
    for damage in (np.random.default_rng(0).bytes(64 * 1024), bytes(pages)):
        store.write_bytes(damage)
        for argv in REGISTRY_COMMANDS:
            status, _, err = registry_cli(capsys, *argv)
            assert_one_line_error(status, err, r"MLflow store .*mlflow\.db.*(damaged|not a database|cannot be used)")
        assert store.read_bytes() == damage


@case("registry-server-unreachable", "`pricer promote` or `pricer predict -m models:/...` with "
      "`MLFLOW_TRACKING_URI=http://127.0.0.1:<closed port>`",
      "one line naming the server within 10 s (MLflow alone retries for minutes, printing tracebacks), exit 1")
def check_registry_server_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for argv in REGISTRY_COMMANDS:
        status, seconds, err = registry_cli(capsys, *argv)
        assert_one_line_error(status, err, rf"MLflow tracking server {re.escape(uri)} is unreachable")
        assert seconds < 10


@contextmanager
def refusing_server(status: int, body: str) -> Iterator[str]:
    """A loopback HTTP server that is healthy and answers every API call with ``status`` (the
    way MLflow's basic-auth app answers a wrong login, or a user without permission)."""
    import http.server
    import threading

    class Refusing(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            code, text = (200, "OK") if self.path == "/health" else (status, body)
            payload = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json" if text.startswith("{") else "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@case("server-login-refused", "`pricer promote`, `pricer predict -m models:/...` or a train stage against an MLflow "
      "server with logins (basic-auth), with a wrong or missing `MLFLOW_TRACKING_PASSWORD`",
      "one line naming the server and the login (never the password), exit 1, before any training")
def check_server_login_refused(tmp_path: Path, features_dir: Path, capsys: pytest.CaptureFixture,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    password = "not-the-Password-31"
    with refusing_server(401, "You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/"
                              "index.html#authenticating-to-mlflow on how to authenticate.") as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        for login in ({"MLFLOW_TRACKING_PASSWORD": password}, {}):
            monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
            for name, value in login.items():
                monkeypatch.setenv(name, value)
            wanted = "refused the login 'alice'" if login else "asks for a login .*password is unset"
            for argv in REGISTRY_COMMANDS:
                status, seconds, err = registry_cli(capsys, *argv)
                assert_one_line_error(status, err, rf"MLflow tracking server {re.escape(uri)} {wanted}")
                assert password not in err and seconds < 10
        project = tracked_project(tmp_path, features_dir, "server")
        done = run_stage(project, "train.py", "resnet", env={"MLFLOW_TRACKING_URI": uri,
                                                              "MLFLOW_TRACKING_USERNAME": "alice",
                                                              "MLFLOW_TRACKING_PASSWORD": password})
    assert done.returncode == 1 and "refused the login 'alice'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and password not in done.stderr
    assert_no_training(project, done)


@case("server-permission-denied", "`pricer promote` by a login the MLflow server lets read but not manage the "
      "registered model (HTTP 403)", "one line naming the server, the login and the missing permission, exit 1")
def check_server_permission_denied(tmp_path: Path, capsys: pytest.CaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with refusing_server(403, json.dumps({"error_code": "PERMISSION_DENIED", "message": "Permission denied"})) as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "reader-Password-77")
        status, seconds, err = registry_cli(capsys, *REGISTRY_COMMANDS[0])
    assert_one_line_error(status, err, rf"MLflow tracking server {re.escape(uri)}: the login 'reader' may not .*403")
    assert "reader-Password-77" not in err and seconds < 10


@case("tracking-disabled", "`-S tracking.enabled=false` (here with a corrupt store present)",
      "trains and writes the model without touching the store")
def check_tracking_disabled(tmp_path: Path, features_dir: Path) -> None:
    project = tracked_project(tmp_path, features_dir, "corrupt")
    project_params = yaml.safe_load((project / "params.yaml").read_text())
    project_params["tracking"]["enabled"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(project_params))
    before = (project / "mlflow.db").read_bytes()
    done = run_stage_here(project, "train.py", "resnet")
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
    status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "cut.json"),
                                 "-o", str(tmp_path / "p.csv"))
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
        status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / name),
                                     "-o", str(tmp_path / "p.csv"))
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


@case("predict-format-mismatch",
      "`-f csv -o prices.json`, or `--input-format csv` (or a `.csv` name) on a parquet file",
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


@case("blank-text-every-way", "an empty, blank, NUL-only or zero-width-only text, or a non-text value, priced "
      "through the Python API (`pricer.load_model().predict`), the pyfunc model or `mlflow models serve`",
      "refused as `pricer predict` and training refuse it (one set of text rules, `pricer.text`), naming the row "
      "and the reason: `TextError` from the API, HTTP 400 with that line from the server; never a price")
def check_blank_text_every_way(logged_model: Any, predictor: PricePredictor, capsys: pytest.CaptureFixture,
                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    from pricer.text import TextError

    blank = ["", "   \n", "\x00\x00", "\u200b\ufeff"]
    for text in blank:
        with pytest.raises(TextError, match=r"^1 of 2 texts cannot be priced: texts\[1\]: empty text$"):
            predictor.predict(["Title: Desk lamp", text])
    raises(r"texts\[0\]: missing text; texts\[1\]: text is not a string \(got int: '3'\)",
           lambda: predictor.predict([None, 3]), TextError)
    predictor.save(tmp_path / "model")
    status, _, err = predict_cli(tmp_path / "model", capsys, "-f", "csv", "\x00\x00")
    assert status == 1 and "row 1: empty text" in err  # the CLI: the same rule, the same words

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.resolve_tracking_uri(logged_model.root))
    served = mlflow.pyfunc.load_model(f"runs:/{logged_model.run_id}/model")
    schema = served.metadata.get_input_schema()
    for text in blank:
        body = json.dumps({"dataframe_records": [{"summary": "Title: Desk lamp"}, {"summary": text}]})
        with pytest.raises(MlflowException) as refused:  # what the server's /invocations answers with
            scoring_server.invocations(body, "application/json", served, schema)
        assert refused.value.get_http_status_code() == 400
        assert "column 'summary': 1 of 2 texts cannot be priced: row 1: empty text" in refused.value.message
    fine = scoring_server.invocations(json.dumps({"dataframe_records": [{"summary": "Title: Desk lamp"}]}),
                                      "application/json", served, schema)
    assert fine.status == 200 and json.loads(fine.response)["predictions"][0]["price"] > 0


def _logged_model_files(logged_model: Any) -> Path:
    """The logged model's copy of the model directory in the store's artifact root."""
    (weights,) = (logged_model.root / "mlartifacts").rglob("artifacts/resnet/weights.pt")
    return weights.parent


@case("logged-model-swapped", "a logged model whose files were swapped or edited in the artifact store (e.g. "
      "`artifacts/resnet` holding another model's weights)",
      "refused in one line: the files' digest is not the training run's `pricer.model_digest` tag (`pricer "
      "predict -m runs:/…`, `pricer.load_model`) nor the digest logged with the model (`mlflow.pyfunc.load_model`, "
      "`mlflow models serve`)")
def check_logged_model_swapped(logged_model: Any, predictor: PricePredictor, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from pricer.tracking import registry

    files = _logged_model_files(logged_model)
    original = (files / "weights.pt").read_bytes()
    with torch.no_grad():  # same architecture, other weights: it would price "fine"
        next(predictor.model.parameters()).add_(0.5)
    predictor.save(tmp_path / "other")
    uri = f"runs:/{logged_model.run_id}/model"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.resolve_tracking_uri(logged_model.root))
    try:
        (files / "weights.pt").write_bytes((tmp_path / "other" / "weights.pt").read_bytes())
        message = raises(rf"^{re.escape(uri)}: these model files \(digest [0-9a-f]{{32}}\) are not the ones their "
                         rf"training run logged \(pricer.model_digest [0-9a-f]{{32}}, the tag of run "
                         rf"{logged_model.run_id}\); refusing to price with them$",
                         lambda: registry.load_predictor(uri, root=logged_model.root), ModelLoadError)
        assert "\n" not in message
        raises(r"are not the ones their training run logged .*the digest logged with the model",
               lambda: mlflow.pyfunc.load_model(uri), ModelLoadError)
    finally:
        (files / "weights.pt").write_bytes(original)
    assert registry.load_predictor(uri, root=logged_model.root).predict(["Title: Desk lamp"])[0] > 0


@case("model-uri-without-version", "`-m models:/pricer-resnet` (a registered model with neither a version nor an "
      "alias)",
      "one line saying how to name one: `models:/pricer-resnet@champion` or `models:/pricer-resnet/<version>`")
def check_model_uri_without_version(capsys: pytest.CaptureFixture) -> None:
    status, _, err = predict_cli(Path("models:/pricer-resnet"), capsys, "a lamp")
    assert_one_line_error(status, err, r"models:/pricer-resnet names no version: use "
                                       r"models:/pricer-resnet@champion \(the version `pricer promote` chose\) or "
                                       r"models:/pricer-resnet/<version number>")


@case("model-of-deleted-run", "`-m runs:/<id>/model` whose run was deleted (`mlflow runs delete`), or a registered "
      "version whose run was", "`runs:/`: refused in one line naming the run and `mlflow runs restore`; "
      "`models:/`: priced, with a one-line warning saying so (the registered version stands on its own)")
def check_model_of_deleted_run(logged_model: Any, caplog: pytest.LogCaptureFixture) -> None:
    from pricer.tracking import registry

    client = registry.registry_client(logged_model.root)
    run_id = logged_model.run_id
    client.delete_run(run_id)
    try:
        raises(rf"^runs:/{run_id}/model: run {run_id} is deleted; restore it with `mlflow runs restore --run-id "
               rf"{run_id}` to price with its model$",
               lambda: registry.load_predictor(f"runs:/{run_id}/model", root=logged_model.root), ModelLoadError)
        with caplog.at_level("WARNING", logger="pricer.tracking.registry"):
            version = registry.load_predictor(f"models:/pricer-resnet/{logged_model.version}", root=logged_model.root)
        assert version.predict(["Title: Desk lamp"])[0] > 0
        assert f"the run that trained this version ({run_id}) is deleted" in caplog.text
    finally:
        client.restore_run(run_id)


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
    done = run_stage_here(project, "train.py", "mlp")
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


@case("nodes-indivisible-batch", "`train.nodes: 3` with the default batch size 64",
      "`ParamsError` naming `mlp.batch_size`, `train.nodes` and `train.processes` before any work")
def check_nodes_indivisible_batch(tmp_path: Path) -> None:
    raises(r"mlp.batch_size \(64\) must divide evenly among train.nodes x train.processes \(3 x 1 = 3\)",
           lambda: params_from_dict({"train": {"nodes": 3}}), ParamsError)


@case("nodes-without-rendezvous", "`train.nodes: 2` without `PRICER_RENDEZVOUS=host:port` (or with a malformed "
      "one, or a `PRICER_NODE_RANK` outside 0..nodes-1)",
      "`DistributedError` naming the variable and what it must be, before any worker starts")
def check_nodes_without_rendezvous(tmp_path: Path) -> None:
    from pricer.training.distributed import DistributedError, relaunch_under_torchrun

    train = params_from_dict({"train": {"nodes": 2, "device": "cpu"}}).train
    relaunch = lambda environ: lambda: relaunch_under_torchrun("stages/train.py", ["mlp"], train,  # noqa: E731
                                                               environ=environ)
    raises(r"train.nodes is 2: set PRICER_RENDEZVOUS=host:port on every node .*; it is not set",
           relaunch({}), DistributedError)
    raises(r"PRICER_RENDEZVOUS=host:port .*; got 'node0'", relaunch({"PRICER_RENDEZVOUS": "node0"}), DistributedError)
    raises(r"PRICER_NODE_RANK is 2 but params.yaml: train.nodes is 2: use 1..1 on the other nodes",
           relaunch({"PRICER_RENDEZVOUS": "127.0.0.1:29400", "PRICER_NODE_RANK": "2"}), DistributedError)


@case("node-never-arrives", "`train.nodes: 2` and the other node never joins `PRICER_RENDEZVOUS` (more: "
      "tests/e2e/test_nodes.py, both ways round)",
      "after `PRICER_RENDEZVOUS_TIMEOUT_S` (default 300), exit 1 with one line naming the address and who "
      "is missing; no traceback")
def check_node_never_arrives(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "noop.py").write_text("")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pricer.training.launcher", "--nnodes=2", "--nproc_per_node=1",
                           "--node_rank=0", "--rdzv_backend=static", "--master_addr=127.0.0.1",
                           f"--master_port={port}", "--rdzv_conf=timeout=3", str(tmp_path / "noop.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert time.monotonic() - started < 60
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert f"node 0 waited 3 s at PRICER_RENDEZVOUS=127.0.0.1:{port} for the other 1 node(s)" in done.stderr


def _fingerprint_rank(rank: int, rendezvous: str, inputs: list[tuple[str, dict, dict]], out: str) -> None:
    import torch.distributed as dist

    from pricer.training import distributed

    commit, params, feature_md5s = inputs[rank]
    distributed.checkout_commit = lambda: commit  # each "node" its own checkout
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        distributed.check_same_run(distributed.Processes(torch.device("cpu"), rank, 2, node=rank), params,
                                   feature_md5s)
        Path(out, f"rank{rank}").write_text("")
    except distributed.DistributedError as error:
        Path(out, f"rank{rank}").write_text(str(error))
    finally:
        dist.destroy_process_group()


@case("node-differs", "a node's checkout differs from node 0's in commit, params or feature files",
      "every rank refuses before the first step with one line naming the node and what differs (more: "
      "tests/e2e/test_nodes.py)")
def check_node_differs(tmp_path: Path) -> None:
    node0 = ("a" * 40, {"mlp": {"lr": 0.01}}, {"data/features/train.npz": "0f"})
    node1 = ("b" * 40, {"mlp": {"lr": 0.5}}, {"data/features/train.npz": "1e"})
    spawn_ranks(_fingerprint_rank, 2, (str(tmp_path / "rendezvous"), [node0, node1], str(tmp_path)))
    for rank in range(2):
        message = (tmp_path / f"rank{rank}").read_text()
        assert message == ("node 1 (rank 1) is not training what node 0 trains: commit bbbbbbbbbbbb vs aaaaaaaaaaaa; "
                           "params mlp.lr: 0.5 vs 0.01; feature file data/features/train.npz: '1e' vs '0f' (node 0's "
                           "last); every node needs the same commit, params.yaml and features"), message


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
# Runs, names, outputs and evidence (issue 21)


@case("evaluate-in-another-experiments-run", "`dvc exp run -n hit1 -S evaluate.hit_dollars=1` reruns only evaluate, "
      "on models a run of another experiment trained (also: a rerun with other evaluate params, a second evaluation) "
      "(e2e: tests/e2e/test_reliability.py::test_an_evaluate_only_experiment_records_its_own_run)",
      "the test figures go to a new run of this experiment, tagged with the training run and taking its logged model "
      "as input; the training run is not written to")
def check_evaluate_in_another_experiments_run(tmp_path: Path, predictor: PricePredictor,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    params = params_from_dict({})
    predictor.save(tmp_path / "models" / "resnet")
    with tracking.start_run(enabled=True, experiment="pricer", run_name="resnet-workspace",
                            tags=tracking.run_tags("resnet", "synthetic")) as trained:
        trained.log_params({"params": params.as_dict()})
        trained.log_model_directory(tmp_path / "models" / "resnet", {"best_val_mae": 20.0})
    digest = directory_md5(tmp_path / "models" / "resnet")
    client = trained.client
    same_run = {"data_source": "synthetic", "params": params.as_dict()}
    # `dvc repro`: training then evaluate in the same experiment with the same params: the training run
    tracking.log_test_figures(params.tracking, "resnet", digest, {"test_mae": 30.0}, **same_run)
    assert client.get_metric_history(trained.run_id, "test_mae")[0].value == 30.0
    hit1 = params_from_dict({"evaluate": {"hit_dollars": 1}})
    monkeypatch.setenv("DVC_EXP_NAME", "hit1")
    tracking.log_test_figures(params.tracking, "resnet", digest, {"test_mae": 30.0, "test_hit_rate": 0.1},
                              data_source="synthetic", params=hit1.as_dict())
    monkeypatch.delenv("DVC_EXP_NAME")
    tracking.log_test_figures(params.tracking, "resnet", digest, {"test_mae": 30.0, "test_hit_rate": 0.2},
                              data_source="synthetic", params=hit1.as_dict())  # the workspace, other params
    assert [m.value for m in client.get_metric_history(trained.run_id, "test_mae")] == [30.0]
    assert "test_hit_rate" not in client.get_run(trained.run_id).data.metrics
    runs = {run.data.tags["dvc_exp_name"]: run for run in client.search_runs(
        [trained.experiment_id], filter_string="tags.stage = 'evaluate'")}
    assert set(runs) == {"hit1", "workspace"}
    assert runs["hit1"].data.metrics["test_hit_rate"] == 0.1 and runs["workspace"].data.metrics["test_hit_rate"] == 0.2
    assert runs["hit1"].info.run_name == "resnet-hit1-evaluate"
    assert runs["hit1"].data.params["params.evaluate.hit_dollars"] == "1.0"
    assert runs["hit1"].data.tags[tracking.TRAINING_RUN_TAG] == trained.run_id
    logged = client.search_logged_models([trained.experiment_id], filter_string=f"source_run_id = '{trained.run_id}'")
    model_inputs = client.get_run(runs["hit1"].info.run_id).inputs.model_inputs
    assert [model.model_id for model in model_inputs] == [logged[0].model_id]


def git_in(root: Path, *args: str) -> str:
    environment = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=root, env=environment, capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def commit_predictions(root: Path, offset: float) -> str:
    prices = np.round(np.random.default_rng(0).lognormal(3.5, 1.0, size=100), 2)
    (root / "metrics").mkdir(exist_ok=True)
    pd.DataFrame({"id": np.arange(100), "price": prices, "mlp": np.round(prices + offset, 2)}).to_csv(
        root / "metrics" / "predictions.csv", index=False)
    git_in(root, "add", "-A")
    git_in(root, "commit", "-q", "-m", f"offset {offset}")
    return git_in(root, "rev-parse", "HEAD")


@case("name-shadows-git-revision", "`dvc exp run -n HEAD` (or a branch's, a tag's or a commit's name, or "
      "`workspace`) then `pricer compare`", "with no name given: git's HEAD; a name that is both an experiment and a "
      "git revision: one-line error naming both commits and `dvc exp rename`")
def check_name_shadows_git_revision(tmp_path: Path, capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pricer.cli import main

    root = tmp_path / "project"
    root.mkdir()
    git_in(root, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, timeout=120)
    old = commit_predictions(root, 9.0)
    head = commit_predictions(root, 1.0)
    git_in(root, "tag", "v1")
    for name in ("HEAD", "main", "v1", head[:7], "workspace"):  # experiments on the old commit, named like revisions
        git_in(root, "update-ref", f"refs/exps/{old[:2]}/{old[2:]}/{name}", old)
    monkeypatch.chdir(root)
    assert main(["compare", "--json"]) == 0  # workspace against git's HEAD, not the experiment called HEAD
    report = json.loads(capsys.readouterr().out)
    assert [entry["rev"] for entry in report["runs"]] == [None, head]
    for name in ("HEAD", "main", "v1", head[:7]):
        assert main(["compare", name, old]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{name}: is both a DVC experiment ({old[:7]}) and a git revision" in err, err
        assert "dvc exp rename" in err
    assert main(["compare", "workspace", old]) == 1
    assert "workspace: means the working tree here, but is also the name of a DVC experiment" in capsys.readouterr().err


@case("output-outside-project", "`models` (or `data`, `metrics`, `checkpoints`) is a symbolic link into another "
      "project, so an output resolves outside this one", "every stage refuses before writing anything, in one line "
      "naming the output and where it leads; the other project's files are untouched")
def check_output_outside_project(tmp_path: Path, features_dir: Path) -> None:
    other = tmp_path / "other"
    (other / "models" / "mlp").mkdir(parents=True)
    (other / "models" / "mlp" / "weights.pt").write_bytes(b"the other project's model")
    (other / "data").mkdir()
    before = {path: path.read_bytes() for path in other.rglob("*") if path.is_file()}
    project = stage_dir(tmp_path / "project", features=features_dir)
    (project / "models").symlink_to(other / "models")
    done = run_stage_here(project, "train.py", "mlp")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert re.search(rf"models/mlp: resolves to {re.escape(str(other))}/models/mlp, outside the project", done.stderr)
    assert "epoch 1/" not in done.stderr and not (project / "checkpoints").exists()
    (project / "data" / "raw").symlink_to(other / "data")
    done = run_stage_here(project, "fetch.py")
    assert done.returncode == 1 and "data/raw: resolves to" in done.stderr and "Traceback" not in done.stderr
    assert {path: path.read_bytes() for path in other.rglob("*") if path.is_file()} == before


@case("too-few-test-items", "a test split of fewer than 30 items (here 1) when the models are compared "
      "(`metrics/comparison.json`, `pricer compare`)", "`too few test items (1 < 30)` instead of a verdict, with "
      "the count and the minimum")
def check_too_few_test_items(tmp_path: Path, predictor: PricePredictor) -> None:
    from pricer.cli.compare import compare_runs
    from pricer.cli.experiments import Run
    from pricer.evaluation import evaluate

    test = pd.DataFrame({"id": [1], "price": [25.0], "summary": ["Title: a steel lamp"]})
    result = evaluate(test, {"mlp": predictor, "resnet": predictor}, np.array([10.0, 30.0]),
                      params_from_dict({}).evaluate)
    pair = result.comparison["resnet_vs_mlp"]
    assert pair["verdict"] == "too few test items (1 < 30)" and (pair["items"], pair["min_items"]) == (1, 30)
    runs = [Run(name, None, pd.DataFrame({"id": [1], "price": [25.0], "mlp": [price]}), {}) for name, price in
            (("a", 20.0), ("b", 29.0))]
    report = compare_runs(runs, resamples=200, seed=0, sort_by=None)
    assert report["paired"][0]["verdict"] == "too few test items (1 < 30)" and report["min_items"] == 30


@case("predict-deep-json", "`pricer predict -i deep.json` (arrays nested 100,000 deep); the same in one line of a "
      "JSONL file; a JSONL line over 16 MiB; bytes that are not UTF-8 in a parquet text column",
      "the JSON document: one-line error naming the file; a JSONL line or a parquet row: that row's error, every "
      "other row priced")
def check_predict_deep_json(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    predictor.save(tmp_path / "model")
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    status, _, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "deep.json"))
    assert_one_line_error(status, err, r"deep\.json: JSON nested too deeply to read")
    lines = ['{"id": 1, "summary": "Title: lamp"}', '{"id": 2, "summary": ' + deep + '}',
             '{"id": 3, "summary": "' + "x" * (16 * 2**20 + 10) + '"}', '{"id": 4, "summary": "Title: drill"}']
    (tmp_path / "deep.jsonl").write_text("\n".join(lines) + "\n")
    status, out, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "deep.jsonl"), "-f", "csv")
    rows = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert status == 0 and "Traceback" not in err and rows["id"].tolist() == ["1", "", "", "4"]
    too_long = f"line of {len(lines[2]):,} characters, longer than a row may be (16,777,216)"
    assert rows["error"].tolist() == ["", "JSON nested too deeply to read", too_long, ""]
    texts = pa.array([b"Title: lamp", b"caf\xe9", b"Title: drill"], type=pa.binary())
    strings = pa.Array.from_buffers(pa.string(), 3, texts.buffers())  # a string column holding bytes that are not UTF-8
    pq.write_table(pa.table({"id": [1, 2, 3], "summary": strings}), tmp_path / "bad.parquet")
    status, out, err = predict_cli(tmp_path / "model", capsys, "-i", str(tmp_path / "bad.parquet"), "-f", "csv")
    rows = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert status == 0 and rows["id"].tolist() == [1, 2, 3]
    assert rows["error"].tolist() == ["", "text is not valid UTF-8 (byte 0xe9 at character 4)", ""]


@case("source-json-too-deep", "a JSONL or JSON `data.source` with arrays or objects nested thousands deep (pyarrow's "
      "reader under `datasets` crashes the process on it)", "error naming the file (and the line), before the file "
      "is handed to `datasets`")
def check_source_json_too_deep(tmp_path: Path) -> None:
    path = write_source(tmp_path, items(), "jsonl")
    lines = path.read_text().splitlines()
    lines[5] = lines[5][:-1] + ', "extra": ' + "[" * 20_000 + "]" * 20_000 + "}"
    path.write_text("\n".join(lines) + "\n")
    raises(rf"{re.escape(str(path))} line 6: JSON nested too deeply to read", lambda: fetch_splits(str(path)))
    document = tmp_path / "items.json"
    document.write_text('[{"id": 1, "summary": "x", "price": 2, "extra":\n' + "[\n" * 5_000 + "]\n" * 5_000 + "}]\n")
    raises(rf"{re.escape(str(document))}: JSON nested too deeply to read", lambda: fetch_splits(str(document)))


@case("text-no-words", "a text of stop words, punctuation or one-letter words only (`The and of it`, `!!! -- ?`, "
      "`a b c`), which hashes to no feature", "training: row dropped, counted as `no_words`; `pricer predict`: that "
      "row's error, every other row priced; `pricer.load_model().predict` (and so the pyfunc model and `mlflow "
      "models serve`): `TextError` naming the row (the models never learn nor quote the price of an empty input)")
def check_text_no_words(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture) -> None:
    assert_one_row_dropped(tmp_path, with_values(items(), 7, summary="The and of it"), "no_words")
    assert_one_row_dropped(tmp_path, with_values(items(), 7, summary="!!! -- ? a b c"), "no_words", "jsonl")
    predictor.save(tmp_path / "model")
    status, out, err = predict_cli(tmp_path / "model", capsys, "-f", "csv", "Title: a lamp", "The and of it", "!!! ?")
    rows = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert status == 0 and rows["error"].tolist() == ["", NO_WORDS, NO_WORDS]
    assert rows["resnet"].tolist()[1:] == ["", ""]
    assert "priced 1 of 3 rows" in err
    with pytest.raises(TextError, match=rf"1 of 2 texts cannot be priced: texts\[1\]: {re.escape(NO_WORDS)}"):
        predictor.predict(["Title: a lamp", "The and of it"])


@case("command-in-subdirectory", "`pricer predict`, `models`, `compare` or `promote` run from a subdirectory of the "
      "project (or outside any project)", "they use the project's models, store and runs (the nearest directory "
      "above holding `.dvc/`); outside a project: one line saying where they looked")
def check_command_in_subdirectory(tmp_path: Path, predictor: PricePredictor, capsys: pytest.CaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from pricer.cli import main

    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    predictor.save(project / "models" / "resnet")
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "deep")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["predict", "-f", "jsonl", "Title: a lamp"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["prices"]["resnet"] > 0 and f"{project}/models/mlp: not found" in captured.err
    assert main(["promote", "resnet", "--version", "1"]) == 1  # the project's store, not one in src/deep
    assert f"no MLflow store at {project / 'mlflow.db'}" in capsys.readouterr().err
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    status, err = main(["predict", "Title: a lamp"]), capsys.readouterr().err
    assert_one_line_error(status, err.splitlines()[-1] + "\n", rf"no trained models found in models/ \(no DVC project, "
                          rf"a directory with \.dvc/, at or above {re.escape(str(outside))}\)")


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


def run_stage_here(project: Path, script: str, *args: str, env: dict[str, str] | None = None
                   ) -> subprocess.CompletedProcess:
    """``run_stage`` in this process, which has pricer, torch and MLflow imported already (a child
    spends seconds importing them): helpers.run_stage_here with the child's environment. Cases
    where the interpreter itself is under test (its start-up time, settings read at import) use
    ``run_stage``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    return helpers.run_stage_here(project, REPO_ROOT / "stages" / script, *args,
                                  environment=environment | {"CI": "true"} | (env or {}))


def listing(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*")}


def assert_nothing_written(project: Path) -> None:
    written = {p for p in listing(project) - {"params.yaml", "data"} if not p.startswith("data/features")}
    assert not written, sorted(written)


def assert_no_training(project: Path, done: subprocess.CompletedProcess) -> None:
    assert "epoch 1/" not in done.stderr  # failed before the first epoch
    assert not any(p.startswith(("models", "metrics", "checkpoints")) for p in listing(project)), \
        sorted(listing(project))


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
    from pricer.intervals import Calibration
    from pricer.models import build_model
    from pricer.target import TargetTransform

    settings, _, train_y, held_out_x, held_out_y, _ = catalogue_features
    arch = {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2}
    torch.manual_seed(0)
    predictor = PricePredictor("resnet", build_model(arch).eval(), arch, settings,
                               TargetTransform.fit("standardized_log", train_y))
    predictor.calibration = Calibration.fit(held_out_y, predictor.predict_matrix(held_out_x))  # as training does
    return predictor


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
