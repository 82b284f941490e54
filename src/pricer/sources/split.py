"""Which split each row goes to: a keyed hash of (``data.seed``, id), never the row's position.

Split rules: a source with train/validation/test keeps them; train+test carves validation out
of train; train+validation carves test; a single split is cut by both fractions. Where a split is
carved, a row's place is decided by ``unit_hash(seed, id)`` in [0, 1) against the fractions, so it
does not depend on the batching, the order of the rows or the engine that ran, and all rows of
one id go to the same split. Rows keep the source's order within their split.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from pricer.layout import SPLITS
from pricer.sources.errors import DataError

logger = logging.getLogger(__name__)

# When a source's own splits share an id, the row is kept in the first of these that holds it,
# so a test item is never also a training item.
PRECEDENCE = ("test", "validation", "train")


@dataclass(frozen=True)
class SplitPlan:
    """How the source's splits become train/validation/test."""

    strategy: str  # as_given | hashed_single_split | validation_from_train | test_from_train
    used: tuple[str, ...]  # the source splits read, in the order they are read (PRECEDENCE)
    seed: int
    validation_fraction: float
    test_fraction: float

    def route(self, source_split: str, keys: Iterable[object]) -> np.ndarray:
        """The output split (an index into SPLITS) of each row of ``source_split`` with these id keys."""
        keys = list(keys)
        kept_whole = self.strategy == "as_given" or (self.strategy != "hashed_single_split" and source_split != "train")
        if kept_whole:
            return np.full(len(keys), SPLITS.index(source_split), dtype=np.int8)
        unit = unit_hash(self.seed, keys)
        routed = np.zeros(len(keys), dtype=np.int8)  # train
        if self.strategy == "hashed_single_split":
            routed[unit < self.test_fraction + self.validation_fraction] = SPLITS.index("validation")
            routed[unit < self.test_fraction] = SPLITS.index("test")
        elif self.strategy == "validation_from_train":
            routed[unit < self.validation_fraction] = SPLITS.index("validation")
        else:
            routed[unit < self.test_fraction] = SPLITS.index("test")
        return routed


def unit_hash(seed: int, keys: Iterable[object]) -> np.ndarray:
    """Each key's place in [0, 1): blake2b keyed by ``seed`` over the key's text, its first 53
    bits as a fraction. (Rows with a missing id all land together, where validation drops them.)"""
    key = int(seed).to_bytes(16, "little", signed=True)
    digests = (
        int.from_bytes(hashlib.blake2b(_key_text(value).encode("utf-8"), key=key, digest_size=8).digest(), "little")
        >> 11
        for value in keys
    )
    return np.fromiter(digests, dtype=np.float64) * 2.0**-53


def _key_text(value: object) -> str:
    # "i:12" and "s:abc": an integer id and a text id never hash alike by accident.
    return f"i:{value}" if isinstance(value, int) else f"s:{value}"


def plan_splits(
    source: str, sizes: Mapping[str, int | None], *, seed: int, validation_fraction: float, test_fraction: float
) -> SplitPlan:
    """The plan for a source with these splits (name -> rows, None when unknown until read)."""
    names = set(sizes)
    used: tuple[str, ...]
    if names >= set(SPLITS):
        used, strategy = SPLITS, "as_given"
    elif len(names) == 1 or names & set(SPLITS) == {"train"}:
        used, strategy = ("train" if "train" in names else next(iter(names)),), "hashed_single_split"
    elif "train" not in names:
        raise DataError(f"{source}: no 'train' split (the source has {sorted(names)})")
    elif "test" in names:
        used, strategy = ("train", "test"), "validation_from_train"
    else:
        used, strategy = ("train", "validation"), "test_from_train"
    ignored = names - set(used)
    if ignored:
        logger.info("%s: ignoring source splits %s", source, sorted(ignored))
    for name in used:
        if sizes[name] == 0:
            raise DataError(f"{source}: split '{name}' is empty in the source")
    if strategy == "hashed_single_split" and (sizes[used[0]] or 3) < 3:
        raise DataError(f"{source}: split '{used[0]}' has {sizes[used[0]]} rows, too few to split into "
                        "train/validation/test")
    ordered = tuple(sorted(used, key=lambda name: PRECEDENCE.index(name) if name in PRECEDENCE else len(PRECEDENCE)))
    return SplitPlan(strategy, ordered, seed, validation_fraction, test_fraction)


def empty_split_message(source: str, plan: SplitPlan, split: str, rows_read: int) -> str:
    """Why a split received no rows at all (rows are routed by hash, so a tiny source can leave one empty)."""
    fraction = {"validation": "data.validation_fraction", "test": "data.test_fraction"}.get(split)
    if fraction is None or plan.strategy == "as_given":
        return f"{source}: split '{split}' received none of the {rows_read} rows read"
    return (f"{source}: split '{split}' received none of the {rows_read} rows read (each id goes to it with "
            f"probability {fraction}); add rows or raise {fraction}")
