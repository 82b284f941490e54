"""Row validation of one split: which rows are usable, and a count per reason for the others."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pricer.sources.errors import DataError
from pricer.text import MAX_TEXT_CHARS, is_blank, wordless

logger = logging.getLogger(__name__)

# Above anything a catalogue sells (cars and boats included); a 1e308 "price" would also
# overflow the models' float32 tensors to inf.
MAX_PRICE = 1e9
# Why rows are dropped, in the order they are checked: a row is counted under its first reason.
DROP_REASONS = (
    "missing_text",
    "empty_text",
    "no_words",  # only stop words, punctuation or one-letter words: the text hashes to no feature
    "missing_price",
    "non_numeric_price",
    "non_finite_price",
    "non_positive_price",
    "implausible_price",
    "missing_id",
    "duplicate_id",
    "id_in_other_split",  # fetch only: the id is already kept in another of the source's own splits
)


def validate_split(
    df: pd.DataFrame, *, split: str, text_field: str, source: str, stop_words: str | None = "english"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep the usable rows of one split and count the others.

    Returns the cleaned frame (index reset; ``price`` float64, ``text_field`` str, ``id`` int64
    or str, ids added from row numbers when absent) and counts: one entry per reason in
    :data:`DROP_REASONS` (a row counts under its first reason; ``duplicate_id`` keeps the first
    otherwise-valid row of each id) plus ``truncated_text``, rows kept with their text cut to
    :data:`MAX_TEXT_CHARS` characters. ``stop_words`` is ``vectorize.stop_words``: a text with no
    other word hashes to no feature (``no_words``). Raises DataError naming source, split and column.
    """
    where = f"{source}: split '{split}'"
    check_columns(df, where, text_field)
    if df.empty:
        raise DataError(f"{where}: no rows")
    cleaned, counts = validate_rows(with_row_ids(df.reset_index(drop=True), where), where=where,
                                    text_field=text_field, stop_words=stop_words)
    repeated = id_keys(cleaned["id"]).duplicated(keep="first").to_numpy() if len(cleaned) else np.zeros(0, bool)
    counts["duplicate_id"] = int(repeated.sum())
    if repeated.any():
        cleaned = cleaned[~repeated].reset_index(drop=True)
    if cleaned.empty:
        raise DataError(f"{where}: no rows left after validation (dropped: {_nonzero(counts)})")
    _log_validation(where, len(df), len(cleaned), counts)
    return cleaned, counts


def check_columns(df: pd.DataFrame, where: str, text_field: str) -> None:
    for column in ("price", text_field):
        if column not in df.columns:
            raise DataError(f"{where}: missing required column '{column}' (columns: {list(df.columns)})")


def validate_rows(
    frame: pd.DataFrame, *, where: str, text_field: str, stop_words: str | None = "english"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of ``frame`` (which has an ``id`` column) that pass every check but the duplicate
    one, and a count per reason (``duplicate_id`` and ``id_in_other_split`` 0: judging them needs
    the other rows, which the caller has). Ids come out normalised (:func:`id_keys` agrees)."""
    check_columns(frame, where, text_field)
    _require_text_column(frame[text_field], where, text_field)
    frame = frame.reset_index(drop=True)
    text = frame[text_field].astype("str")
    prices, price_problems = _classify_prices(frame["price"], where)
    missing, blank = text.isna().to_numpy(), _blank_texts(text)
    candidates = {
        "missing_text": missing,
        "empty_text": blank,
        "no_words": _wordless(text, ~missing & ~blank, stop_words),
        **price_problems,
        "missing_id": frame["id"].isna().to_numpy(),
    }
    dropped = np.zeros(len(frame), dtype=bool)
    counts: dict[str, int] = {}
    for reason, mask in candidates.items():
        hit = mask & ~dropped
        counts[reason] = int(hit.sum())
        dropped |= hit
    counts["duplicate_id"] = counts["id_in_other_split"] = 0
    keep = ~dropped
    if keep.all():  # the usual case: no copy of the text (at 800,000 rows it is gigabytes)
        cleaned, kept_text = frame, text
    else:
        cleaned, kept_text = frame[keep].reset_index(drop=True), text[keep].reset_index(drop=True)
    # Normalised on the valid rows only, so an invalid row's id cannot make the column text.
    ids = _normalised_ids(frame["id"][keep].reset_index(drop=True), where)
    cleaned["price"] = prices[keep]
    cleaned[text_field], counts["truncated_text"] = _truncate(kept_text)
    cleaned["id"] = ids
    return cleaned, counts


def id_keys(ids: pd.Series) -> pd.Series:
    """One key per id such that ids judged equal have equal keys: integers as ``int``, text as
    ``str``, and text spelling a plain integer ("12", not "012") as that integer (1 and "1" are
    one id, as :func:`validate_split` has always judged them). Missing ids: None."""
    return pd.Series([_id_key(value) for value in ids], index=ids.index, dtype=object)


def _id_key(value: Any) -> int | str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    text = str(value)
    spells_integer = text.isascii() and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit()))
    if spells_integer and str(int(text)) == text:
        return int(text)
    return text


def first_non_text_value(column: pd.Series) -> tuple[int, Any] | None:
    """Position and value of the first cell that is neither text nor null, in a column of
    Python objects (what a JSON field mixing strings with numbers, lists or objects becomes)."""
    if column.dtype != object:
        return None
    for position, value in enumerate(column):
        if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
            continue
        return position, value
    return None


def _blank_texts(text: pd.Series) -> np.ndarray:
    """Texts without a visible character (:func:`pricer.text.is_blank`, the rule every way of
    pricing applies too)."""
    has_word_character = text.str.contains(r"\w", regex=True).to_numpy(dtype=bool, na_value=True)
    blank = np.zeros(len(text), dtype=bool)
    for position in np.flatnonzero(~has_word_character):  # few rows: the rest have a letter or digit
        value = text.iloc[position]
        blank[position] = isinstance(value, str) and is_blank(value)
    return blank


def _wordless(text: pd.Series, present: np.ndarray, stop_words: str | None) -> np.ndarray:
    """Which of the ``present`` texts hash to no feature (pricer.text.wordless)."""
    found = np.zeros(len(text), dtype=bool)
    positions = np.flatnonzero(present)
    found[positions] = wordless(text.iloc[positions].tolist(), stop_words)
    return found


def _require_text_column(column: pd.Series, where: str, name: str) -> None:
    if pd.api.types.is_string_dtype(column):
        return
    # pandas 3 never calls an object column "string", even when it holds only str (or only nulls).
    if column.dtype == object and all(isinstance(value, str) for value in column.dropna()):
        return
    raise DataError(f"{where}: column '{name}' must hold text, but has dtype {column.dtype}")


def with_row_ids(frame: pd.DataFrame, where: str, first_row: int = 0) -> pd.DataFrame:
    """``frame`` with an ``id`` column: its own, or its rows' numbers in the source (the frame's
    first row being ``first_row``)."""
    if "id" in frame.columns:
        return frame
    if first_row == 0:
        logger.info("%s: no 'id' column; using row numbers as ids", where)
    return frame.assign(id=np.arange(first_row, first_row + len(frame), dtype=np.int64))


def _classify_prices(raw: pd.Series, where: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Prices as float64 and, per price-related drop reason, which rows it applies to."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise DataError(f"{where}: column 'price' must hold numbers, but has dtype {raw.dtype}")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        # Only extension dtypes (Arrow, nullable) can tell a null from a stored NaN.
        is_extension = isinstance(raw.dtype, pd.api.extensions.ExtensionDtype)
        missing = raw.isna().to_numpy() if is_extension else np.zeros(len(raw), dtype=bool)
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        non_numeric = np.zeros(len(raw), dtype=bool)
    elif pd.api.types.is_string_dtype(raw.dtype) or raw.dtype == object:
        missing = raw.isna().to_numpy()
        text = raw.astype("str").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        spelled_nan = text.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy(dtype=bool, na_value=False)
        non_numeric = ~missing & np.isnan(values) & ~spelled_nan  # e.g. "$12.99"
    else:
        raise DataError(f"{where}: column 'price' must hold numbers, but has dtype {raw.dtype}")
    with np.errstate(invalid="ignore"):
        non_finite = ~np.isfinite(values)
        non_positive = values <= 0
        implausible = values > MAX_PRICE
    return values, {
        "missing_price": missing,
        "non_numeric_price": non_numeric,
        "non_finite_price": non_finite,
        "non_positive_price": non_positive,
        "implausible_price": implausible & np.isfinite(values),
    }


def _truncate(text: pd.Series) -> tuple[pd.Series, int]:
    too_long = text.str.len().gt(MAX_TEXT_CHARS).to_numpy(dtype=bool, na_value=False)
    if too_long.any():
        text = text.copy()
        text[too_long] = text[too_long].str.slice(0, MAX_TEXT_CHARS)
    return text, int(too_long.sum())


def _normalised_ids(ids: pd.Series, where: str) -> pd.Series:
    """int64 for integer ids (also floats that only became floats through nulls), str for text ids."""
    kind = pd.api.types.infer_dtype(ids, skipna=True)
    if kind == "empty":  # every row was dropped: the caller reports that
        return ids
    if kind == "integer":
        return ids.astype("int64")
    if kind in ("floating", "mixed-integer-float"):
        values = ids.to_numpy(dtype="float64", na_value=np.nan)
        if np.all(np.isfinite(values) & (values == np.round(values))):
            return pd.Series(values.astype(np.int64), index=ids.index, name=ids.name)
    if kind == "string":
        return ids.astype("str")
    if kind == "mixed-integer" and all(_is_integer_or_text(value) for value in ids):
        # Only Python objects can mix them (pyarrow's JSON reader already makes "1" and 1 both 1):
        # as text, 1 and "1" stay one id and nothing is lost ("007" keeps its zeros).
        logger.info("%s: column 'id' mixes integers and strings; using them all as strings", where)
        return ids.map(str).astype("str")
    raise DataError(f"{where}: column 'id' must hold integers or strings, but has dtype {ids.dtype}")


def _is_integer_or_text(value: Any) -> bool:
    return isinstance(value, (int, np.integer, str)) and not isinstance(value, (bool, np.bool_))


def _nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {reason: count for reason, count in counts.items() if count}


def _log_validation(where: str, rows_in: int, rows_out: int, counts: Mapping[str, int]) -> None:
    dropped = {reason: counts[reason] for reason in DROP_REASONS if counts[reason]}
    reasons = ", ".join(f"{reason}={count}" for reason, count in dropped.items()) or "none"
    logger.info(
        "%s: kept %d of %d rows; dropped %d (%s); truncated %d texts to %d characters",
        where, rows_out, rows_in, sum(dropped.values()), reasons, counts["truncated_text"], MAX_TEXT_CHARS,
    )
