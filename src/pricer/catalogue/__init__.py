"""Embedded product catalogue: a synthetic stand-in for the Hub's ``items_lite`` data.

The pipeline's real data source (the Hugging Face datasets ``ed-donner/items_lite`` /
``items_full``) is not always reachable, so the project ships a generator that produces rows
with the same columns and text shape, calibrated against real products' statistics (price
quantiles, text length, hashed non-zeros per row, a long tail of categories; see
``docs/catalogue.md``). Its prices carry the structure real ones have and a log-linear model
misses: effects that depend on category, brand and product, accessories that name dearer
products, bundles, heavy-tailed noise and near-duplicate relistings.

* ``vocabulary.yaml``: the world (categories, products, brands, words, price effects), as data;
* :mod:`.vocabulary`: its schema and its flattened tables;
* :mod:`.generator`: the random draw and the prices;
* :mod:`.render`: the text columns.

Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order, and the
strings are assembled column-wise with Arrow kernels. The package does no I/O besides reading
its own vocabulary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricer.catalogue.generator import MAX_PRICE, MIN_PRICE, draw_items
from pricer.catalogue.render import CATALOGUE_COLUMNS, PROMPT_PREFIX, PROMPT_SUFFIX, render
from pricer.catalogue.vocabulary import tables

__all__ = [
    "CATALOGUE_COLUMNS",
    "MAX_PRICE",
    "MIN_PRICE",
    "PROMPT_PREFIX",
    "PROMPT_SUFFIX",
    "generate_catalogue",
]


def generate_catalogue(n_items: int, seed: int) -> pd.DataFrame:
    """Generate ``n_items`` synthetic products shaped like the Hub's ``items_lite`` rows.

    Deterministic: the same ``(n_items, seed)`` always yields an identical frame, so the DVC
    stage that calls it is reproducible from ``params.yaml``'s ``seed`` alone.

    Args:
        n_items: number of rows, at least 1.
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        A frame with columns ``title, category, price, full, weight, summary, prompt, id``
        (``str`` text, ``float64`` price in dollars and weight in pounds, ``int64`` id
        ``0..n_items-1``). ``category`` is empty for some items, as on the Hub.

    Raises:
        TypeError: if ``n_items`` is not an integer.
        ValueError: if ``n_items`` is smaller than 1.
    """
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)):
        raise TypeError(f"n_items must be an integer, got {type(n_items).__name__}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    world = tables()
    return render(world, draw_items(int(n_items), seed, world))
