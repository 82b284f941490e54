"""Tests for pricer.sources.validate: row validation and the drop counts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pricer.sources import DataError, fetch_splits
from pricer.sources.validate import DROP_REASONS, MAX_PRICE, MAX_TEXT_CHARS, first_non_text_value, validate_split

from .frames import hub_layout, items


def good_rows() -> pd.DataFrame:
    return pd.DataFrame({"summary": ["a lamp", "a drill", "a cable"], "price": [10.0, 20.5, 3.0], "id": [1, 2, 3]})


def with_bad_row(**bad: Any) -> pd.DataFrame:
    """Three good rows plus id 99, whose fields are ``bad`` (object columns where types mix)."""
    row = {"summary": "a guitar", "price": 5.0, "id": 99} | bad
    columns = {name: [*good_rows()[name].tolist(), row[name]] for name in ("summary", "price", "id")}
    return pd.DataFrame({name: pd.Series(values, dtype=_dtype_for(values)) for name, values in columns.items()})


def _dtype_for(values: list[Any]) -> Any:
    kinds = {type(value) for value in values if value is not None}
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
        ({"summary": "\x00\x1b\x7f"}, "empty_text"),
        ({"summary": "\u200b\ufeff \u00a0"}, "empty_text"),
        ({"price": 1e308}, "implausible_price"),
        ({"price": 2.5e9}, "implausible_price"),
        ({"price": "1e12"}, "implausible_price"),
        ({"price": True}, "non_numeric_price"),
        ({"price": "1,299.00"}, "non_numeric_price"),
        ({"price": "1e400"}, "non_finite_price"),
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
    frame = pd.DataFrame({"summary": ["lamp", "drill", "chair", "desk"], "price": price, "id": [1, 2, 3, 99]})
    cleaned, counts = validate_split(frame, split="test", text_field="summary", source="s")
    assert counts[reason] == 1 and sum(counts[other] for other in DROP_REASONS) == 1
    assert cleaned["price"].tolist() == [10.0, 20.5, 3.0] and cleaned["price"].dtype == np.float64


def test_numeric_strings_become_float_prices() -> None:
    frame = pd.DataFrame({"summary": ["lamp", "drill", "chair"],
                          "price": pd.Series(["12.99", " 5 ", "1e2"], dtype="str")})
    cleaned, _ = validate_split(frame, split="train", text_field="summary", source="s")
    assert cleaned["price"].tolist() == [12.99, 5.0, 100.0] and cleaned["price"].dtype == np.float64


def test_a_row_counts_under_its_first_reason_only() -> None:
    frame = pd.DataFrame(
        {
            "summary": pd.Series([None, "", "ok", "ok", "ok", "ok", "ok", "the"], dtype=object),
            "price": pd.Series(["$1", -1.0, None, "$2", float("inf"), -3.0, 4.0, None], dtype=object),
            "id": [1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts == {
        "missing_text": 1, "empty_text": 1, "no_words": 1, "missing_price": 1, "non_numeric_price": 1,
        "non_finite_price": 1, "non_positive_price": 1, "implausible_price": 0, "missing_id": 0, "duplicate_id": 0,
        "id_in_other_split": 0,
        "truncated_text": 0,
    }
    assert cleaned["id"].tolist() == [7]


def test_duplicate_ids_keep_the_first_valid_copy() -> None:
    frame = pd.DataFrame({"summary": ["lamp", "drill", "chair", "desk"], "price": [-1.0, 2.0, 3.0, 4.0],
                          "id": [7, 7, 8, 7]})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert cleaned[["summary", "id"]].values.tolist() == [["drill", 7], ["chair", 8]]
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
    frame = pd.DataFrame({"summary": ["lamp", "drill", "chair"], "price": [1.0, 0.0, 3.0]})
    with caplog.at_level(logging.INFO, logger="pricer.sources"):
        cleaned, _ = validate_split(frame, split="validation", text_field="summary", source="s")
    assert cleaned["id"].tolist() == [0, 2] and cleaned["id"].dtype == np.int64
    assert "s: split 'validation': no 'id' column; using row numbers as ids" in caplog.text


def test_string_ids_stay_strings_and_other_columns_pass_through() -> None:
    frame = pd.DataFrame(
        {
            "summary": ["lamp", "drill"],
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
    with caplog.at_level(logging.INFO, logger="pricer.sources"):
        validate_split(with_bad_row(price=-1.0), split="test", text_field="summary", source="items.parquet")
    lines = [record.getMessage() for record in caplog.records if "kept" in record.getMessage()]
    assert lines == [
        "items.parquet: split 'test': kept 3 of 4 rows; dropped 1 (non_positive_price=1); "
        "truncated 0 texts to 100000 characters"
    ]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"summary": ["lamp"]}), r"src\.parquet: split 'train': missing required column 'price'"),
        (pd.DataFrame({"price": [1.0]}), r"src\.parquet: split 'train': missing required column 'summary'"),
        (pd.DataFrame({"summary": [1, 2], "price": [1.0, 2.0]}),
         r"src\.parquet: split 'train': column 'summary' must hold text, but has dtype int64"),
        (pd.DataFrame({"summary": pd.Series(["a", 3], dtype=object), "price": [1.0, 2.0]}),
         r"split 'train': column 'summary' must hold text, but has dtype object"),
        (pd.DataFrame({"summary": ["lamp"], "price": [True]}),
         r"split 'train': column 'price' must hold numbers, but has dtype bool"),
        (pd.DataFrame({"summary": ["lamp"], "price": [1.0], "id": [1.5]}),
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
    hub_layout(tmp_path / "d", {"train": train, "validation": items(3, first_id=100), "test": items(3, first_id=200)})
    result = fetch_splits(str(tmp_path / "d"))
    report = result.report["splits"]["train"]
    assert report["rows_in"] == 20 and report["rows_out"] == 18
    assert report["dropped"] == dict.fromkeys(DROP_REASONS, 0) | {"empty_text": 1, "duplicate_id": 1}


def test_missing_text_field_through_fetch_names_source_and_split(tmp_path: Path) -> None:
    items(10).to_parquet(tmp_path / "items.parquet")
    with pytest.raises(DataError, match=r"items\.parquet: split 'train': missing required column 'prompt'"):
        fetch_splits(str(tmp_path / "items.parquet"), text_field="prompt")


def test_text_with_a_visible_character_among_controls_is_kept() -> None:
    frame = pd.DataFrame({"summary": ["\x00lamp", "\u200b-", "\t\u00e9"], "price": [1.0, 2.0, 3.0]})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts["empty_text"] == 0 and cleaned["summary"].tolist() == ["\x00lamp"]
    assert counts["no_words"] == 2  # visible, but not one word of two letters: they hash to no feature


def test_a_price_at_the_maximum_is_kept() -> None:
    frame = pd.DataFrame({"summary": ["lamp", "drill"], "price": [MAX_PRICE, 12.0]})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts["implausible_price"] == 0 and cleaned["price"].tolist() == [MAX_PRICE, 12.0]


def test_integer_and_string_spellings_of_one_id_are_duplicates() -> None:
    frame = pd.DataFrame(
        {"summary": ["lamp", "drill", "chair", "desk"], "price": [1.0, 2.0, 3.0, 4.0],
         "id": pd.Series([1, "1", 2, "007"], dtype=object)}
    )
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts["duplicate_id"] == 1
    assert cleaned["id"].tolist() == ["1", "2", "007"] and cleaned["id"].dtype == "str"


def test_a_float_spelling_of_an_integer_id_is_a_duplicate() -> None:
    ids = pd.Series([3, 3.0, 4], dtype=object)
    frame = pd.DataFrame({"summary": ["lamp", "drill", "chair"], "price": [1.0, 2.0, 3.0], "id": ids})
    cleaned, counts = validate_split(frame, split="train", text_field="summary", source="s")
    assert counts["duplicate_id"] == 1 and cleaned["id"].tolist() == [3, 4] and cleaned["id"].dtype == np.int64


def test_boolean_ids_are_an_error() -> None:
    frame = pd.DataFrame({"summary": ["lamp", "drill"], "price": [1.0, 2.0], "id": pd.Series([True, 1], dtype=object)})
    with pytest.raises(DataError, match=r"s: split 'train': column 'id' must hold integers or strings"):
        validate_split(frame, split="train", text_field="summary", source="s")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", None, 12, "b"], (2, 12)),
        (["a", float("nan"), ["x"]], (2, ["x"])),
        (["a", {"k": 1}], (1, {"k": 1})),
        (["a", True], (1, True)),
        (["a", None, "b"], None),
    ],
)
def test_first_non_text_value(values: list[Any], expected: tuple[int, Any] | None) -> None:
    assert first_non_text_value(pd.Series(values, dtype=object)) == expected
    assert first_non_text_value(pd.Series([1, 2])) is None  # a typed column is judged by its dtype
