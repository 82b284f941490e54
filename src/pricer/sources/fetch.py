"""The fetch stage's library entry point: read a source batch by batch, route each row to its
split, validate, deduplicate, and hand the kept rows to a writer.

Memory follows a batch, not the source: rows stream from the source through validation to the
writer (:func:`write_raw_splits` writes parquet with ``pyarrow.parquet.ParquetWriter``). Only the
ids kept so far are remembered, to drop repeats. The per-batch work (drawing the catalogue,
validating, hashing ids) is a pure function of the batch, run here or on a Dask cluster
(:mod:`pricer.engine`); the driver applies the batches' results in source order, so the output is
the same wherever it ran.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pricer.atomic import atomic_directory
from pricer.engine import ordered_map
from pricer.layout import SPLITS
from pricer.params import check_split_fractions
from pricer.sources.batches import SplitBatches
from pricer.sources.diagnose import json_record_line
from pricer.sources.errors import DataError
from pricer.sources.hub import load_hub
from pricer.sources.local import load_hub_layout_dir, load_local_file, load_saved_dataset
from pricer.sources.resolve import ResolvedSource, resolve_source
from pricer.sources.split import SplitPlan, empty_split_message, plan_splits
from pricer.sources.synthetic import load_synthetic
from pricer.sources.validate import (
    DROP_REASONS,
    check_columns,
    first_non_text_value,
    id_keys,
    validate_rows,
    with_row_ids,
)

logger = logging.getLogger(__name__)

Writer = Callable[[str, pd.DataFrame], None]


@dataclass(frozen=True)
class FetchResult:
    splits: dict[str, pd.DataFrame]  # exactly "train", "validation", "test"; index reset
    report: dict[str, Any]  # JSON-serialisable and free of timestamps, so DVC outputs reproduce


def fetch_splits(source: str, **options: Any) -> FetchResult:
    """:func:`stream_splits` into memory: for tests and small sources."""
    parts: dict[str, list[pd.DataFrame]] = {split: [] for split in SPLITS}
    report = stream_splits(source, write=lambda split, frame: parts[split].append(frame), **options)
    return FetchResult({split: pd.concat(frames, ignore_index=True) for split, frames in parts.items()}, report)


def write_raw_splits(directory: Path, source: str, **options: Any) -> dict[str, Any]:
    """:func:`stream_splits` into ``directory/<split>.parquet``, replacing ``directory`` only once
    every split is complete. Returns the report."""
    with atomic_directory(directory) as tmp, RawWriters(tmp, source) as writers:
        report = stream_splits(source, write=writers.write, **options)
        writers.close()
    return report


class RawWriters:
    """One ``ParquetWriter`` per split; a batch is one or more row groups."""

    def __init__(self, directory: Path, source: str) -> None:
        self.directory, self.source = Path(directory), source
        self._writers: dict[str, pq.ParquetWriter] = {}

    def write(self, split: str, frame: pd.DataFrame) -> None:
        writer = self._writers.get(split)
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False,
                                         schema=None if writer is None else writer.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            raise DataError(f"{self.source}: split '{split}': a column changes type between rows "
                            f"({writer.schema if writer else ''}): {error}") from None
        if writer is None:
            writer = self._writers[split] = pq.ParquetWriter(self.directory / f"{split}.parquet", table.schema)
        writer.write_table(table)

    def close(self) -> None:
        while self._writers:
            self._writers.popitem()[1].close()

    def __enter__(self) -> RawWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stream_splits(
    source: str,
    *,
    write: Writer,
    text_field: str = "summary",
    stop_words: str | None = "english",
    revision: str | None = None,
    seed: int = 42,
    synthetic_items: int = 60000,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_train_items: int | None = None,
) -> dict[str, Any]:
    """Read ``source``, route its rows to train/validation/test, validate and deduplicate them, and
    ``write(split, frame)`` the kept rows batch by batch, in source order. Returns the report.

    Split rules: a source with train/validation/test keeps them; train+test carves validation out
    of train (``validation_fraction``); train+validation carves test (``test_fraction``); a single
    split is cut by both fractions. Carved rows are placed by a keyed hash of (``seed``, id)
    (:mod:`pricer.sources.split`): same seed, same split, and one id is in one split only.
    Duplicate ids are dropped before splitting (the first valid row of an id is kept); an id that
    the source's own splits share is kept in test before validation before train, and counted.
    ``max_train_items`` then keeps the first N train rows; ``stop_words`` is ``vectorize.stop_words``
    (a text of only those hashes to no feature: ``no_words``). Raises DataError.
    """
    _check_arguments(validation_fraction, test_fraction, synthetic_items, max_train_items)
    resolved = resolve_source(source)
    source_splits, commit = _load(resolved, source, revision, synthetic_items, seed)
    source_sizes = {name: batches.rows for name, batches in sorted(source_splits.items())}
    plan = plan_splits(source, source_sizes, seed=seed, validation_fraction=validation_fraction,
                       test_fraction=test_fraction)
    tally = _Tally(max_train_items)
    json_file = Path(resolved.location) if resolved.kind == "local_file" and resolved.file_format == "json" else None
    with ordered_map() as run:
        for name in plan.used:
            batches = source_splits[name]
            rules = _BatchRules(source, name, text_field, stop_words, plan, json_file, batches.materialise)
            read = 0
            for outcome in run(rules.apply, batches.items()):
                read += outcome.rows
                tally.take(name, outcome, write)
            source_sizes[name] = read
    tally.check_complete(source, plan)
    capped = tally.counts["train"]["capped"]
    if capped:
        logger.info("%s: max_train_items=%d keeps the first %d of %d train rows", source, max_train_items,
                    max_train_items, max_train_items + capped)
    report = {
        "source": source,
        "kind": resolved.kind,
        "revision": revision,
        "resolved_revision": commit,
        "text_field": text_field,
        "split_strategy": plan.strategy,
        "split_rule": "blake2b(id, key=data.seed) in [0, 1) against the fractions" if plan.strategy != "as_given"
        else "as the source gives them",
        "source_splits": source_sizes,
        "source_shared_ids": dict(sorted(tally.shared.items())),
        "seed": seed,
        "max_train_items": max_train_items,
        "splits": tally.split_reports(),
    }
    if tally.shared:
        logger.warning("%s: the source's own splits share ids (%s); each was kept only in the first of test, "
                       "validation, train that holds it", source,
                       ", ".join(f"{pair}: {count}" for pair, count in sorted(tally.shared.items())))
    return report


@dataclass
class _Outcome:
    """One batch, validated: per output split, its kept rows, their id keys and the drop counts."""

    rows: int
    parts: dict[str, tuple[pd.DataFrame, list[Any], dict[str, int], int]]  # split -> (frame, keys, counts, rows in)


@dataclass(frozen=True)
class _BatchRules:
    """Everything the per-batch work needs: picklable, so it runs on a Dask worker as well."""

    source: str
    source_split: str
    text_field: str
    stop_words: str | None
    plan: SplitPlan
    json_file: Path | None
    materialise: Callable[[Any], pd.DataFrame]

    def apply(self, item: tuple[Any, int]) -> _Outcome:
        described, first_row = item
        frame = self.materialise(described).reset_index(drop=True)
        where = f"{self.source}: split '{self.source_split}'"
        check_columns(frame, where, self.text_field)
        # Row numbers stand in for missing ids, per source split: the same number in two splits
        # is two items, so they are never judged shared.
        numbered = "id" not in frame.columns
        frame = with_row_ids(frame, where, first_row)
        self._check_text_values(frame, first_row)
        routed = self.plan.route(self.source_split, id_keys(frame["id"]))
        parts = {}
        for index, split in enumerate(SPLITS):
            rows = np.flatnonzero(routed == index)
            if not len(rows):
                continue
            taken = frame if len(rows) == len(frame) else frame.iloc[rows]
            cleaned, counts = validate_rows(taken, where=f"{self.source}: split '{split}'", text_field=self.text_field,
                                            stop_words=self.stop_words)
            keys = [(self.source_split, key) for key in cleaned["id"]] if numbered else id_keys(cleaned["id"]).tolist()
            parts[split] = (cleaned, keys, counts, len(rows))
        return _Outcome(len(frame), parts)

    def _check_text_values(self, frame: pd.DataFrame, first_row: int) -> None:
        """A text cell holding a number, list, object or bool is an error naming its row (its line
        in a JSON Lines file), counted in the source's own order."""
        if self.text_field not in frame.columns:
            return
        found = first_non_text_value(frame[self.text_field])
        if found is None:
            return
        row, value = found
        row += first_row
        where = f"{self.source}: split '{self.source_split}' row {row}"
        if self.json_file is not None:
            line = json_record_line(self.json_file, row)
            where = f"{self.source}: {self.json_file} " + (f"line {line}" if line else f"record {row}")
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise DataError(f"{where}, column '{self.text_field}': expected text, got {type(value).__name__} {shown}")


@dataclass
class _Tally:
    """The driver's side: which ids are kept (and from which source split), what each split got."""

    max_train_items: int | None
    kept_ids: dict[Any, str] = field(default_factory=dict)  # id key -> the source split it was kept from
    shared: Counter = field(default_factory=Counter)  # "train & test" -> rows of train whose id test holds
    counts: dict[str, Counter] = field(default_factory=lambda: {split: Counter() for split in SPLITS})

    def take(self, source_split: str, outcome: _Outcome, write: Writer) -> None:
        for split, (frame, keys, counts, rows_in) in outcome.parts.items():
            tally = self.counts[split]
            tally.update(counts)
            tally["rows_in"] += rows_in
            keep = np.ones(len(keys), dtype=bool)
            for position, key in enumerate(keys):
                holder = self.kept_ids.get(key)
                if holder is None:
                    self.kept_ids[key] = source_split
                    continue
                keep[position] = False
                if holder == source_split:
                    tally["duplicate_id"] += 1
                else:
                    tally["id_in_other_split"] += 1
                    self.shared[f"{source_split} & {holder}"] += 1
            if split == "train" and self.max_train_items is not None:
                room = max(self.max_train_items - tally["rows_out"], 0)
                over = np.flatnonzero(keep)[room:]
                tally["capped"] += len(over)
                keep[over] = False
            if keep.any():
                kept = frame if keep.all() else frame[keep].reset_index(drop=True)
                tally["rows_out"] += len(kept)
                write(split, kept)

    def check_complete(self, source: str, plan: SplitPlan) -> None:
        for split in SPLITS:
            tally = self.counts[split]
            if tally["rows_out"]:
                continue
            if not tally["rows_in"]:
                rows_read = sum(counts["rows_in"] for counts in self.counts.values())
                raise DataError(empty_split_message(source, plan, split, rows_read))
            dropped = {reason: tally[reason] for reason in DROP_REASONS if tally[reason]}
            raise DataError(f"{source}: split '{split}': no rows left after validation (dropped: {dropped})")

    def split_reports(self) -> dict[str, dict[str, Any]]:
        reports = {}
        for split in SPLITS:
            tally = self.counts[split]
            reports[split] = {
                "rows_in": tally["rows_in"],
                "rows_out": tally["rows_out"],
                "dropped": {reason: tally[reason] for reason in DROP_REASONS},
                "truncated_text": tally["truncated_text"],
            }
            if split == "train":
                reports[split]["capped"] = tally["capped"]
            dropped = {reason: count for reason, count in reports[split]["dropped"].items() if count}
            logger.info("split '%s': kept %d of %d rows; dropped %s; truncated %d texts", split, tally["rows_out"],
                        tally["rows_in"], dropped or "none", tally["truncated_text"])
        return reports


def _check_arguments(
    validation_fraction: float, test_fraction: float, synthetic_items: int, max_train_items: int | None
) -> None:
    check_split_fractions(validation_fraction, test_fraction)
    if synthetic_items < 1:
        raise ValueError(f"synthetic_items must be >= 1, got {synthetic_items}")
    if max_train_items is not None and max_train_items < 1:
        raise ValueError(f"max_train_items must be None or >= 1, got {max_train_items}")


def _load(
    resolved: ResolvedSource, source: str, revision: str | None, synthetic_items: int, seed: int
) -> tuple[dict[str, SplitBatches], str | None]:
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


