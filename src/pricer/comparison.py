"""Comparing predictors with confidence: bootstrap intervals of the test MAE.

Pure functions over numpy arrays of dollar prices, one entry per test item (the MAE itself is
:func:`pricer.metrics.mean_absolute_error`):

- :func:`mae_interval`: the MAE's percentile-bootstrap interval over test items;
- :func:`paired_difference`: two predictors on the same items; the MAE difference A - B with a
  paired bootstrap interval (both errors of an item are resampled together, so what the items
  share cancels out) and a verdict;
- :func:`seed_spread`: mean and standard deviation of a figure across runs that differ only in
  their seed.

Defaults: 2,000 resamples (:data:`DEFAULT_RESAMPLES`), seed 0, 95% intervals. The same
arguments always give the same interval: each call draws from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
RESAMPLES_PER_CHUNK = 100  # resampled indices are drawn this many rows at a time: memory ~ 100 x items
# Below this many test items a bootstrap interval describes the few items drawn, not the model (one
# item gives a zero-width interval): a paired comparison then gives no verdict.
MIN_ITEMS_FOR_VERDICT = 30
TOO_FEW_ITEMS = "too few test items"

Verdict = Literal["better", "worse", "no detectable difference", "too few test items"]


@dataclass(frozen=True)
class PairedComparison:
    """MAE(A) - MAE(B) on the same items and its interval: negative means A's errors are smaller."""

    diff: float
    low: float
    high: float
    verdict: Verdict  # A against B: "better" when the whole interval is below 0, "worse" above 0


def too_few_items(items: int) -> str:
    """What a comparison of ``items`` test items says instead of a verdict."""
    return f"{TOO_FEW_ITEMS} ({items} < {MIN_ITEMS_FOR_VERDICT})"


def _as_prices(name: str, values: Sequence[float] | np.ndarray, items: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array of prices, got shape {array.shape}")
    if items is not None and array.size != items:
        raise ValueError(f"{name}: {array.size} values for {items} items")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {int((~np.isfinite(array)).sum())} values are not finite")
    return array


def _bootstrap_means(per_item: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The mean of ``per_item`` over ``resamples`` resamples of the items, drawn with replacement."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, RESAMPLES_PER_CHUNK):
        rows = min(RESAMPLES_PER_CHUNK, resamples - start)
        picks = rng.integers(0, per_item.size, size=(rows, per_item.size))
        means[start:start + rows] = per_item[picks].mean(axis=1)
    return means


def _percentiles(means: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def mae_interval(
    actual: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float]:
    """The ``confidence`` percentile-bootstrap interval (low, high) of the MAE over the test items.

    ``resamples`` resamples of the items with replacement (default 2,000), drawn from
    ``numpy.random.default_rng(seed)`` (default seed 0): the same inputs give the same interval.
    """
    actual = _as_prices("actual", actual)
    errors = np.abs(_as_prices("predicted", predicted, actual.size) - actual)
    return _percentiles(_bootstrap_means(errors, resamples, seed), confidence)


def paired_difference(
    actual: Sequence[float] | np.ndarray,
    pred_a: Sequence[float] | np.ndarray,
    pred_b: Sequence[float] | np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedComparison:
    """MAE(A) - MAE(B) on the same items, with a paired percentile-bootstrap interval and a verdict.

    Each resample draws items with replacement and takes both predictors' errors on them
    (``resamples``, default 2,000, from ``numpy.random.default_rng(seed)``, default seed 0). The
    verdict says how A does against B: ``better`` when the interval lies below 0, ``worse`` when
    it lies above 0, ``no detectable difference`` when it contains 0, and ``too few test items``
    with fewer than :data:`MIN_ITEMS_FOR_VERDICT` items, whatever the interval.
    """
    actual = _as_prices("actual", actual)
    error_a = np.abs(_as_prices("pred_a", pred_a, actual.size) - actual)
    error_b = np.abs(_as_prices("pred_b", pred_b, actual.size) - actual)
    per_item = error_a - error_b
    low, high = _percentiles(_bootstrap_means(per_item, resamples, seed), confidence)
    verdict: Verdict = ("too few test items" if actual.size < MIN_ITEMS_FOR_VERDICT
                        else "better" if high < 0 else "worse" if low > 0 else "no detectable difference")
    return PairedComparison(float(per_item.mean()), low, high, verdict)


def seed_spread(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of a figure across runs, e.g. one per seed."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"a spread needs at least 2 runs, got {array.size}")
    return float(array.mean()), float(array.std(ddof=1))
