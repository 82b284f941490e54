"""Calibrated price ranges: split conformal prediction on log-price residuals, per price band.

After training, each model prices the validation split (data it never trained on) and keeps, for
each band of *actual* price (:data:`pricer.metrics.PRICE_BANDS`: a Mondrian split on the label,
so a $5 cable and a $900 laptop each get the spread of their own kind of product), the sorted
scores ``|log1p(price) - log1p(predicted)|``. For a new prediction ``p`` and level ``a``, each
band ``b`` gives the prices of that band within ``expm1(log1p(p) -+ q_b)``, with ``q_b`` the
``ceil((n + 1) a)``-th smallest of band ``b``'s ``n`` scores (split conformal's finite-sample
quantile); the range runs from the lowest to the highest of those prices. Whatever band a new
item's true price is in, that band's piece covers it with probability at least ``a``, so each
band is covered at the level, not only the items on average: a model that prices cheap items
too high (regression to the mean) would otherwise leave the <$10 band far below it, however
the bands were split by predicted price. A band with fewer than :data:`MIN_BAND_SCORES`
validation items uses every band's scores together (too few scores make the quantile noisy).

Every sorted score is kept (``calibration.json`` beside the model), so any level is a lookup at
prediction time: changing the level never retrains or recalibrates. MAPIE and crepes do the same
quantile but want a fitted scikit-learn-style estimator or the whole residual machinery around
it; the calibration itself is the few lines below, over predictions the model already makes on
sparse features.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pricer.atomic import write_json
from pricer.errors import PricerError
from pricer.metrics import PRICE_BANDS

CALIBRATION_FILE = "calibration.json"
DEFAULT_LEVEL = 0.80
MIN_BAND_SCORES = 100
METHOD = "split conformal, Mondrian by actual-price band, score |log1p(price) - log1p(predicted)|"


class CalibrationError(PricerError, ValueError):
    """A level outside (0, 1), or a calibration file that cannot be read."""


def check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0 < level < 1:
        raise CalibrationError(f"interval level must be a number between 0 and 1 (e.g. 0.8), got {level!r}")
    return float(level)


@dataclass(frozen=True)
class PriceRange:
    """Prices with their ranges at ``level``: three arrays of dollars, one entry per item."""

    price: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


def band_index(prices: np.ndarray) -> np.ndarray:
    """The position in PRICE_BANDS of each price's band."""
    edges = [low for _, low, _ in PRICE_BANDS[1:]]
    return np.searchsorted(np.asarray(edges), np.asarray(prices, dtype=np.float64), side="right")


def conformity_scores(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return np.abs(np.log1p(np.asarray(actual, dtype=np.float64)) -
                  np.log1p(np.clip(np.asarray(predicted, dtype=np.float64), 0.0, None)))


def conformal_quantile(sorted_scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) level)-th smallest score; infinite where n is too small for the level."""
    rank = math.ceil((sorted_scores.size + 1) * level)
    return float(sorted_scores[rank - 1]) if rank <= sorted_scores.size else math.inf


@dataclass(frozen=True)
class Calibration:
    """The sorted validation scores of each actual-price band (PRICE_BANDS order)."""

    band_scores: tuple[np.ndarray, ...]

    @classmethod
    def fit(cls, actual: np.ndarray, predicted: np.ndarray) -> Calibration:
        actual, predicted = np.asarray(actual, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
        if actual.shape != predicted.shape or actual.size == 0:
            raise CalibrationError(f"calibration needs as many predictions as prices, and some: got "
                                   f"{predicted.size} predictions for {actual.size} prices")
        scores, bands = conformity_scores(actual, predicted), band_index(actual)
        return cls(tuple(np.sort(scores[bands == band]) for band in range(len(PRICE_BANDS))))

    def half_widths(self, level: float) -> np.ndarray:
        """Each band's log-space half-width ``q_b`` at ``level`` (PRICE_BANDS order)."""
        level = check_level(level)
        pooled = conformal_quantile(np.sort(np.concatenate(self.band_scores)), level)
        return np.array([conformal_quantile(scores, level) if scores.size >= MIN_BAND_SCORES else pooled
                         for scores in self.band_scores])

    def ranges(self, predicted: np.ndarray, level: float = DEFAULT_LEVEL) -> PriceRange:
        predicted = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, None)
        logs = np.log1p(predicted)
        low, high = np.full(predicted.shape, np.inf), np.full(predicted.shape, -np.inf)
        for half, (_, band_low, band_high) in zip(self.half_widths(level), PRICE_BANDS, strict=False):
            piece_low = np.maximum(np.expm1(logs - half), band_low)
            piece_high = np.minimum(np.expm1(logs + half), band_high)
            some = piece_low <= piece_high
            low, high = (np.where(some, np.minimum(low, piece_low), low),
                         np.where(some, np.maximum(high, piece_high), high))
        return PriceRange(predicted, np.clip(low, 0.0, None), high, level)

    def to_dict(self) -> dict[str, Any]:
        return {"method": METHOD, "split": "validation", "min_band_scores": MIN_BAND_SCORES,
                "bands": [{"band": label, "low": low, "high": None if math.isinf(high) else high,
                           "scores": [round(float(score), 6) for score in scores]}
                          for (label, low, high), scores in zip(PRICE_BANDS, self.band_scores, strict=False)]}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Calibration:
        bands = payload["bands"]
        labels = [band["band"] for band in bands]
        if labels != [label for label, _, _ in PRICE_BANDS]:
            raise ValueError(f"bands {labels} are not pricer's {[label for label, _, _ in PRICE_BANDS]}")
        return cls(tuple(np.sort(np.asarray(band["scores"], dtype=np.float64)) for band in bands))

    def save(self, directory: Path) -> None:
        write_json(Path(directory) / CALIBRATION_FILE, self.to_dict())

    @classmethod
    def load(cls, directory: Path) -> Calibration | None:
        """The calibration saved in a model directory; None for a model saved without one."""
        path = Path(directory) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"{path}: not a pricer calibration: {error}") from None


def coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """The fraction of items whose price lies inside their range."""
    actual = np.asarray(actual, dtype=np.float64)
    return float(np.mean((actual >= low) & (actual <= high)))


COVERAGE_TOLERANCE = 0.02  # overall coverage within this of the level
BAND_SHORTFALL = 0.10  # no price band's coverage more than this below the level
MIN_BAND_ITEMS = 30  # bands with fewer test items are too noisy to judge


def coverage_problems(actual: np.ndarray, low: np.ndarray, high: np.ndarray, level: float) -> list[str]:
    """Why ranges at ``level`` are not calibrated on these held-out items (empty when they are):
    the overall coverage off the level by more than COVERAGE_TOLERANCE, or a true-price band
    (with at least MIN_BAND_ITEMS items) more than BAND_SHORTFALL below it."""
    actual = np.asarray(actual, dtype=np.float64)
    problems = []
    overall = coverage(actual, low, high)
    if abs(overall - level) > COVERAGE_TOLERANCE:
        problems.append(f"coverage {overall:.3f} is more than {COVERAGE_TOLERANCE} from the level {level:g}")
    for label, band_low, band_high in PRICE_BANDS:
        inside = (actual >= band_low) & (actual < band_high)
        if inside.sum() >= MIN_BAND_ITEMS:
            band = coverage(actual[inside], np.asarray(low)[inside], np.asarray(high)[inside])
            if band < level - BAND_SHORTFALL:
                problems.append(f"band {label}: coverage {band:.3f} is more than {BAND_SHORTFALL} below the level "
                                f"{level:g} ({int(inside.sum())} items)")
    return problems
