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

Items are drawn in blocks of :data:`BLOCK_ITEMS`, block ``b`` from its own
``numpy.random.default_rng([seed, b])`` in a fixed order, so the catalogue streams: any batch
size gives the same items, and memory follows the batch, not the catalogue. The strings are
assembled column-wise with Arrow kernels. The package does no I/O besides reading
its own vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator

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
    "BLOCK_ITEMS",
    "catalogue_batches",
    "catalogue_rows",
    "generate_catalogue",
]

#: Items drawn from one random stream (near-duplicates relist items of their own block). Part
#: of what defines the catalogue: changing it changes the items.
BLOCK_ITEMS = 10_000


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
    batches = list(catalogue_batches(n_items, seed))
    return batches[0] if len(batches) == 1 else pd.concat(batches, ignore_index=True)


def catalogue_batches(n_items: int, seed: int, batch_items: int = BLOCK_ITEMS) -> Iterator[pd.DataFrame]:
    """The rows of ``generate_catalogue(n_items, seed)`` as consecutive frames of at most
    ``batch_items`` rows: the same rows whatever ``batch_items``, and the first ``k`` items of
    any catalogue are the catalogue of ``k`` items."""
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)):
        raise TypeError(f"n_items must be an integer, got {type(n_items).__name__}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if batch_items < 1:
        raise ValueError(f"batch_items must be >= 1, got {batch_items}")
    for start in range(0, int(n_items), batch_items):
        yield catalogue_rows(start, min(start + batch_items, int(n_items)), seed)


def catalogue_rows(start: int, stop: int, seed: int) -> pd.DataFrame:
    """Items ``start`` to ``stop - 1`` of every catalogue drawn with ``seed`` (ids ``start``..)."""
    world = tables()
    parts = []
    for block in range(start // BLOCK_ITEMS, (stop - 1) // BLOCK_ITEMS + 1):
        first = block * BLOCK_ITEMS
        rows = np.arange(max(start, first), min(stop, first + BLOCK_ITEMS)) - first
        # The whole block is drawn (the draw is cheap; the text is not), only its wanted rows rendered.
        frame = render(world, draw_items(BLOCK_ITEMS, [seed, block], world).take(rows))
        frame["id"] = rows.astype(np.int64) + first
        parts.append(frame)
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
