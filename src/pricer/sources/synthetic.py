"""The ``synthetic`` source: a thin adapter over :func:`pricer.catalogue.generate_catalogue`."""

from __future__ import annotations

import importlib

import pandas as pd

from pricer.sources.errors import DataError


def load_synthetic(n_items: int, seed: int) -> dict[str, pd.DataFrame]:
    """One ``train`` split of ``n_items`` generated items."""
    # Imported here so the sources package works (and its tests run) without the catalogue module.
    try:
        catalogue = importlib.import_module("pricer.catalogue")
    except ImportError as error:
        raise DataError(f"synthetic: the catalogue generator is not available ({error})") from error
    return {"train": catalogue.generate_catalogue(n_items, seed)}
