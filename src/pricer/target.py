"""Price ↔ training target mappings, with their learned state explicit.

``standardized_log`` (the default) trains on ``(log1p(price) - mean) / std`` with mean and std
learned from the training prices; ``log`` trains on ``log1p(price)``; ``raw`` trains on dollars,
which is the seed's literal recipe (it diverges with SGD at lr 0.01 on real prices).
Predictions map back with ``expm1`` and are clamped at 0: a price is never negative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

KINDS = ("standardized_log", "log", "raw")


@dataclass(frozen=True)
class TargetTransform:
    kind: str = "standardized_log"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"target kind must be one of {KINDS}, got {self.kind!r}")
        if not np.isfinite(self.std) or self.std <= 0:
            raise ValueError(f"target std must be positive and finite, got {self.std!r}")

    @classmethod
    def fit(cls, kind: str, prices: np.ndarray) -> TargetTransform:
        """Learn the statistics of ``kind`` from training prices (only standardized_log has any)."""
        if kind != "standardized_log":
            return cls(kind=kind)
        logs = np.log1p(np.asarray(prices, dtype=np.float64))
        std = float(logs.std())
        return cls(kind=kind, mean=float(logs.mean()), std=std if std > 0 else 1.0)

    def encode(self, prices: np.ndarray) -> np.ndarray:
        prices = np.asarray(prices, dtype=np.float64)
        if self.kind == "raw":
            encoded = prices
        elif self.kind == "log":
            encoded = np.log1p(prices)
        else:
            encoded = (np.log1p(prices) - self.mean) / self.std
        return encoded.astype(np.float32)

    def decode(self, outputs: torch.Tensor | np.ndarray) -> np.ndarray:
        """Model outputs → dollars (float64, clamped at 0)."""
        if isinstance(outputs, torch.Tensor):
            outputs = outputs.detach().float().cpu().numpy()
        values = np.asarray(outputs, dtype=np.float64)
        if self.kind == "standardized_log":
            values = np.expm1(values * self.std + self.mean)
        elif self.kind == "log":
            values = np.expm1(values)
        return np.clip(values, 0.0, None)

    def to_dict(self) -> dict:
        return asdict(self)
