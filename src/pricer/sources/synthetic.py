"""The ``synthetic`` source: a thin adapter over the catalogue generator (:mod:`pricer.catalogue`)."""

from __future__ import annotations

import importlib

import pandas as pd

from pricer.sources.batches import SOURCE_BATCH_ROWS, SplitBatches
from pricer.sources.errors import DataError


def load_synthetic(n_items: int, seed: int) -> dict[str, SplitBatches]:
    """One ``train`` split of ``n_items`` generated items, generated batch by batch where it is read."""
    _catalogue()  # fail here, not in a worker, when the generator is missing

    def items():
        for start in range(0, n_items, SOURCE_BATCH_ROWS):
            yield (start, min(start + SOURCE_BATCH_ROWS, n_items), seed), start

    return {"train": SplitBatches(n_items, items, generate_rows)}


def generate_rows(rows: tuple[int, int, int]) -> pd.DataFrame:
    """The catalogue's items ``start`` to ``stop - 1`` for a seed: ``rows`` is ``(start, stop, seed)``."""
    start, stop, seed = rows
    return _catalogue().catalogue_rows(start, stop, seed)


def _catalogue():
    # Imported here so the sources package works (and its tests run) without the catalogue module.
    try:
        return importlib.import_module("pricer.catalogue")
    except ImportError as error:
        raise DataError(f"synthetic: the catalogue generator is not available ({error})") from error
