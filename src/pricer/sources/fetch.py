"""The fetch stage's library entry point: load a source, arrange its splits, validate each.

Pure: returns data frames and a JSON-serialisable report; the stage script writes the files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pricer.layout import SPLITS
from pricer.params import check_split_fractions
from pricer.sources.diagnose import json_record_line
from pricer.sources.errors import DataError
from pricer.sources.hub import load_hub
from pricer.sources.local import load_hub_layout_dir, load_local_file, load_saved_dataset
from pricer.sources.resolve import ResolvedSource, resolve_source
from pricer.sources.split import arrange_splits, cap_train
from pricer.sources.synthetic import load_synthetic
from pricer.sources.validate import DROP_REASONS, first_non_text_value, validate_split, with_row_ids

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchResult:
    splits: dict[str, pd.DataFrame]  # exactly "train", "validation", "test"; index reset
    report: dict[str, Any]  # JSON-serialisable and free of timestamps, so DVC outputs reproduce


def fetch_splits(
    source: str,
    *,
    text_field: str = "summary",
    stop_words: str | None = "english",
    revision: str | None = None,
    seed: int = 42,
    synthetic_items: int = 60000,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_train_items: int | None = None,
) -> FetchResult:
    """Load ``source``, arrange train/validation/test, validate each split, report what happened.

    Split rules: a source with train/validation/test keeps them; train+test carves validation
    out of train (``validation_fraction``); train+validation carves test (``test_fraction``);
    a single split is shuffled with ``seed`` and cut by both fractions (same seed, same split).
    ``max_train_items`` then keeps the first N validated train rows. Raises DataError.
    """
    _check_arguments(validation_fraction, test_fraction, synthetic_items, max_train_items)
    resolved = resolve_source(source)
    source_splits, commit = _load(resolved, source, revision, synthetic_items, seed)
    source_splits = {name: with_row_ids(frame, f"{source}: split '{name}'") for name, frame in source_splits.items()}
    _check_text_values(resolved, source, source_splits, text_field)
    source_sizes = {name: len(frame) for name, frame in sorted(source_splits.items())}
    arranged, strategy = arrange_splits(
        source_splits, source=source, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
    )

    splits: dict[str, pd.DataFrame] = {}
    split_reports: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        cleaned, counts = validate_split(arranged[split], split=split, text_field=text_field, source=source,
                                         stop_words=stop_words)
        split_reports[split] = {
            "rows_in": len(arranged[split]),
            "rows_out": len(cleaned),
            "dropped": {reason: counts[reason] for reason in DROP_REASONS},
            "truncated_text": counts["truncated_text"],
        }
        splits[split] = cleaned
    splits["train"], split_reports["train"]["capped"] = cap_train(source, splits["train"], max_train_items)
    split_reports["train"]["rows_out"] = len(splits["train"])

    report = {
        "source": source,
        "kind": resolved.kind,
        "revision": revision,
        "resolved_revision": commit,
        "text_field": text_field,
        "split_strategy": strategy,
        "source_splits": source_sizes,
        "seed": seed,
        "max_train_items": max_train_items,
        "splits": split_reports,
    }
    return FetchResult(splits=splits, report=report)


def _check_arguments(
    validation_fraction: float, test_fraction: float, synthetic_items: int, max_train_items: int | None
) -> None:
    check_split_fractions(validation_fraction, test_fraction)
    if synthetic_items < 1:
        raise ValueError(f"synthetic_items must be >= 1, got {synthetic_items}")
    if max_train_items is not None and max_train_items < 1:
        raise ValueError(f"max_train_items must be None or >= 1, got {max_train_items}")


def _check_text_values(
    resolved: ResolvedSource, source: str, source_splits: dict[str, pd.DataFrame], text_field: str
) -> None:
    """A text cell holding a number, list, object or bool is an error naming its row (its line
    in a JSON Lines file): judged before the splits are shuffled, while rows are the source's."""
    for name, frame in source_splits.items():
        if text_field not in frame.columns:
            continue  # validation names the missing column
        found = first_non_text_value(frame[text_field])
        if found is None:
            continue
        row, value = found
        where = f"{source}: split '{name}' row {row}"
        if resolved.kind == "local_file" and resolved.file_format == "json":
            line = json_record_line(Path(resolved.location), row)
            where = f"{source}: {resolved.location} " + (f"line {line}" if line else f"record {row}")
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise DataError(f"{where}, column '{text_field}': expected text, got {type(value).__name__} {shown}")


def _load(
    resolved: ResolvedSource, source: str, revision: str | None, synthetic_items: int, seed: int
) -> tuple[dict[str, pd.DataFrame], str | None]:
    if revision is not None and resolved.kind != "hub":
        logger.warning("%s: revision %r ignored; only Hub datasets have revisions", source, revision)
    if resolved.kind == "synthetic":
        return load_synthetic(synthetic_items, seed), None
    if resolved.kind == "local_file":
        assert resolved.file_format is not None
        return load_local_file(source, Path(resolved.location), resolved.file_format), None
    if resolved.kind == "hub_layout_dir":
        return load_hub_layout_dir(source, Path(resolved.location)), None
    if resolved.kind == "saved_dataset":
        return load_saved_dataset(source, Path(resolved.location)), None
    return load_hub(resolved.location, revision)
