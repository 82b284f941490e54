"""Evaluation metrics in dollars, and the constant baselines every model must beat."""

from __future__ import annotations

import numpy as np

PRICE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<$10", 0.0, 10.0),
    ("$10-50", 10.0, 50.0),
    ("$50-200", 50.0, 200.0),
    ("$200-1000", 200.0, 1000.0),
    ("$1000+", 1000.0, float("inf")),  # the Hub's products reach past $1,000: never counted as "200-1000"
)


def mean_absolute_error(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64))))


def rmsle(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared log error; predictions are clamped at 0 first."""
    predicted = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, None)
    return float(np.sqrt(np.mean((np.log1p(predicted) - np.log1p(np.asarray(actual, dtype=np.float64))) ** 2)))


def hit_rate(actual: np.ndarray, predicted: np.ndarray, *, dollars: float, fraction: float) -> float:
    """Share of items predicted within ``dollars`` or within ``fraction`` of the true price."""
    actual = np.asarray(actual, dtype=np.float64)
    error = np.abs(np.asarray(predicted, dtype=np.float64) - actual)
    return float(np.mean((error <= dollars) | (error <= fraction * actual)))


def band_masks(actual: np.ndarray) -> dict[str, np.ndarray]:
    """For each price band, which items' true price falls in it."""
    actual = np.asarray(actual, dtype=np.float64)
    return {label: (actual >= low) & (actual < high) for label, low, high in PRICE_BANDS}


def mae_by_band(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE within each true-price band (None where a band holds no item)."""
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    return {
        label: mean_absolute_error(actual[mask], predicted[mask]) if mask.any() else None
        for label, mask in band_masks(actual).items()
    }


def regression_report(
    actual: np.ndarray, predicted: np.ndarray, *, first_n: int, hit_dollars: float, hit_fraction: float
) -> dict[str, float]:
    """The figures written to ``metrics/<model>.json``, rounded so the file is stable to read."""
    report = {
        "test_mae": mean_absolute_error(actual, predicted),
        f"test_mae_first_{first_n}": mean_absolute_error(actual[:first_n], predicted[:first_n]),
        "test_rmsle": rmsle(actual, predicted),
        "test_hit_rate": hit_rate(actual, predicted, dollars=hit_dollars, fraction=hit_fraction),
    }
    return {k: round(v, 4) for k, v in report.items()}


def constant_baselines(train_prices: np.ndarray) -> dict[str, float]:
    """The constant predictors: the training mean and the training median price."""
    prices = np.asarray(train_prices, dtype=np.float64)
    return {"train_mean": float(prices.mean()), "train_median": float(np.median(prices))}
