"""Arranging exactly train/validation/test from the source's splits, and the train cap.

Split rules: a source with train/validation/test keeps them; train+test carves validation out
of train; train+validation carves test; a single split is shuffled with the seed and cut by both
fractions (same seed, same split).
"""

from __future__ import annotations

import logging
import math
from collections.abc import MutableMapping

import numpy as np
import pandas as pd

from pricer.layout import SPLITS
from pricer.sources.errors import DataError

logger = logging.getLogger(__name__)


def arrange_splits(
    source_splits: MutableMapping[str, pd.DataFrame],
    *,
    source: str,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
) -> tuple[dict[str, pd.DataFrame], str]:
    """Exactly train/validation/test from whatever splits the source has, and how they were made.

    A single split that is shuffled is moved out of ``source_splits`` and taken apart column by
    column, so its text is held once and a column at a time twice (not the whole table twice:
    5.4 GB instead of ~3 GB at 820,000 catalogue rows, past the 4 GB a stage may use).
    """
    names = set(source_splits)
    used: tuple[str, ...]
    if names >= set(SPLITS):
        used, strategy = SPLITS, "as_given"
    elif len(names) == 1 or names & set(SPLITS) == {"train"}:
        used, strategy = ("train" if "train" in names else next(iter(names)),), "shuffled_single_split"
    elif "train" not in names:
        raise DataError(f"{source}: no 'train' split (the source has {sorted(names)})")
    elif "test" in names:
        used, strategy = ("train", "test"), "validation_from_train"
    else:
        used, strategy = ("train", "validation"), "test_from_train"
    _log_ignored_splits(source, names - set(used))
    for name in used:
        if source_splits[name].empty:
            raise DataError(f"{source}: split '{name}' is empty in the source")

    if strategy == "as_given":
        return {split: source_splits[split] for split in SPLITS}, strategy
    if strategy == "shuffled_single_split":
        only = used[0]
        return _shuffle_split(source, only, source_splits.pop(only), seed, validation_fraction, test_fraction), strategy
    if strategy == "validation_from_train":
        train, validation = _carve(source, source_splits["train"], validation_fraction, seed, "validation")
        return {"train": train, "validation": validation, "test": source_splits["test"]}, strategy
    train, test = _carve(source, source_splits["train"], test_fraction, seed, "test")
    return {"train": train, "validation": source_splits["validation"], "test": test}, strategy


def _log_ignored_splits(source: str, ignored: set[str]) -> None:
    if ignored:
        logger.info("%s: ignoring source splits %s", source, sorted(ignored))


def _portion(n_rows: int, fraction: float) -> int:
    # Rounded half up, and at least one row so no split is empty by construction.
    return max(1, math.floor(n_rows * fraction + 0.5))


def _shuffle_split(
    source: str, name: str, frame: pd.DataFrame, seed: int, validation_fraction: float, test_fraction: float
) -> dict[str, pd.DataFrame]:
    n_rows = len(frame)
    n_validation, n_test = _portion(n_rows, validation_fraction), _portion(n_rows, test_fraction)
    n_train = n_rows - n_validation - n_test
    if n_train < 1:
        raise DataError(f"{source}: split '{name}' has {n_rows} rows, too few to split into train/validation/test")
    # Shuffled order on purpose: files are often sorted (by category, by source), and later
    # stages read "the first N" rows of a split.
    order = np.random.default_rng(seed).permutation(n_rows)
    parts = {
        "train": order[:n_train],
        "validation": order[n_train : n_train + n_validation],
        "test": order[n_train + n_validation :],
    }
    sizes = {split: len(rows) for split, rows in parts.items()}
    logger.info("%s: one split of %d rows, shuffled with seed %d into %s", source, n_rows, seed, sizes)
    names = list(frame.columns)
    taken: dict[str, dict[str, pd.Series]] = {split: {} for split in parts}
    for column in names:
        values = frame.pop(column)  # the frame is this function's alone: each column freed once taken
        for split, rows in parts.items():
            taken[split][column] = values.iloc[rows].reset_index(drop=True)
        del values
    return {split: pd.DataFrame(columns, columns=names, copy=False) for split, columns in taken.items()}


def _carve(
    source: str, train: pd.DataFrame, fraction: float, seed: int, carved: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move a seeded random ``fraction`` of train into ``carved``; both keep the source order."""
    n_rows = len(train)
    n_carved = _portion(n_rows, fraction)
    if n_rows - n_carved < 1:
        raise DataError(f"{source}: split 'train' has {n_rows} rows, too few to carve a {carved} split from")
    taken = np.zeros(n_rows, dtype=bool)
    taken[np.random.default_rng(seed).permutation(n_rows)[:n_carved]] = True
    logger.info("%s: no %s split; took %d of %d train rows (seed %d)", source, carved, n_carved, n_rows, seed)
    return train[~taken].reset_index(drop=True), train[taken].reset_index(drop=True)


def cap_train(source: str, train: pd.DataFrame, max_train_items: int | None) -> tuple[pd.DataFrame, int]:
    if max_train_items is None or len(train) <= max_train_items:
        return train, 0
    logger.info(
        "%s: max_train_items=%d keeps the first %d of %d train rows",
        source, max_train_items, max_train_items, len(train),
    )
    return train.head(max_train_items).reset_index(drop=True), len(train) - max_train_items
