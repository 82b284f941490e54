"""The ensemble: the trained models combined into a third predictor, saved as one directory.

Its price is the geometric mean of its members' prices, ``expm1(mean(log1p(price_i)))``: both
models are trained in log-price space, where their errors are closer to symmetric, and equal
weights leave nothing to fit (weights fitted on the 6,000 validation items would be tuned on the
same items the range is calibrated on). Its range is calibrated like a single model's, on its
own validation predictions (:mod:`pricer.intervals`).

``models/ensemble/`` holds ``ensemble.json`` (members, how they are combined), its
``calibration.json`` and a copy of each member's model directory (``mlp/``, ``resnet/``), so
loading it needs nothing else. ``load_directory`` loads either kind of model directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from pricer.atomic import write_json
from pricer.features import VectorizerSettings, vectorize_texts
from pricer.intervals import DEFAULT_LEVEL, Calibration, CalibrationError, PriceRange
from pricer.predictor import ModelLoadError, PricePredictor, ranges_of
from pricer.text import usable_texts

ENSEMBLE_FILE = "ensemble.json"
FORMAT_VERSION = 1
COMBINE = "geometric mean: expm1(mean(log1p(member prices)))"


@dataclass
class EnsemblePredictor:
    name: str
    members: tuple[PricePredictor, ...]
    calibration: Calibration | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.members:
            raise ModelLoadError(f"{self.name}: an ensemble needs at least one member")
        fields = {member.vectorizer.text_field for member in self.members}
        if len(fields) > 1:
            raise ModelLoadError(f"{self.name}: members read different text fields ({', '.join(sorted(fields))})")

    @property
    def vectorizer(self) -> VectorizerSettings:
        """The first member's: the text field is the same for every member."""
        return self.members[0].vectorizer

    @property
    def version(self) -> str:
        """The first 8 hex digits of sha256 over the members' versions."""
        return hashlib.sha256(",".join(member.version for member in self.members).encode()).hexdigest()[:8]

    @property
    def architecture(self) -> dict[str, Any]:
        return {"kind": "ensemble", "members": [member.name for member in self.members], "combine": COMBINE}

    def combine(self, member_prices: Sequence[np.ndarray]) -> np.ndarray:
        logs = np.log1p(np.clip(np.stack([np.asarray(p, dtype=np.float64) for p in member_prices]), 0.0, None))
        return np.expm1(logs.mean(axis=0))

    def predict_matrix(self, features: sp.csr_matrix, *, batch_rows: int = 8192) -> np.ndarray:
        """Dollar prices for already-hashed rows (every member must use the same vectorizer)."""
        return self.combine([member.predict_matrix(features, batch_rows=batch_rows) for member in self.members])

    def predict(self, texts: Sequence[str], *, batch_rows: int = 8192,
                labels: Sequence[str] | None = None) -> np.ndarray:
        """Dollar prices for raw product texts, under training's text rules (:mod:`pricer.text`,
        as :meth:`PricePredictor.predict`); texts are hashed once per distinct vectorizer."""
        texts = usable_texts(texts, labels, stop_words=self.vectorizer.stop_words)
        hashed: dict[VectorizerSettings, sp.csr_matrix] = {}
        prices = []
        for member in self.members:
            if member.vectorizer not in hashed:
                hashed[member.vectorizer] = vectorize_texts(texts, member.vectorizer, chunk_rows=max(batch_rows, 1))
            prices.append(member.predict_matrix(hashed[member.vectorizer], batch_rows=batch_rows))
        return self.combine(prices)

    def predict_range(self, texts: Sequence[str], *, level: float = DEFAULT_LEVEL,
                      batch_rows: int = 8192) -> PriceRange:
        return ranges_of(self.name, self.calibration, self.predict(texts, batch_rows=batch_rows), level)

    @classmethod
    def calibrated(cls, name: str, members: Sequence[PricePredictor], validation_features: sp.csr_matrix,
                   validation_prices: np.ndarray) -> EnsemblePredictor:
        """The ensemble of ``members`` with its range calibrated on the validation split."""
        ensemble = cls(name, tuple(members))
        predicted = ensemble.predict_matrix(validation_features)
        ensemble.calibration = Calibration.fit(validation_prices, predicted)
        errors = np.abs(predicted - np.asarray(validation_prices, dtype=np.float64))
        ensemble.info = {"val_mae": round(float(errors.mean()), 4)}
        return ensemble

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for member in self.members:
            member.save(directory / member.name)
        write_json(directory / ENSEMBLE_FILE, {"format_version": FORMAT_VERSION, "name": self.name,
                                               "members": [member.name for member in self.members],
                                               "combine": COMBINE, "info": self.info})
        if self.calibration is not None:
            self.calibration.save(directory)

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> EnsemblePredictor:
        directory = Path(directory)
        path = directory / ENSEMBLE_FILE
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            members = [str(member) for member in config["members"]]
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise ModelLoadError(f"{path}: not a pricer ensemble: {error}") from None
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelLoadError(f"{path}: ensemble format {config.get('format_version')!r} is not supported "
                                 f"(this pricer reads {FORMAT_VERSION})")
        if any(Path(member).name != member or member in ("", ".", "..") for member in members):
            raise ModelLoadError(f"{path}: member names must be directories inside the ensemble, got {members}")
        try:
            calibration = Calibration.load(directory)
        except CalibrationError as error:
            raise ModelLoadError(str(error)) from None
        loaded = tuple(PricePredictor.load(directory / member, device=device) for member in members)
        return cls(str(config.get("name", directory.name)), loaded, calibration, dict(config.get("info", {})))


Predictor = PricePredictor | EnsemblePredictor


def load_directory(directory: str | Path, *, device: str | torch.device = "cpu") -> Predictor:
    """A single model's directory (``model.json``) or an ensemble's (``ensemble.json``)."""
    if (Path(directory) / ENSEMBLE_FILE).is_file():
        return EnsemblePredictor.load(directory, device=device)
    return PricePredictor.load(directory, device=device)
