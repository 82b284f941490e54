"""A trained model with everything it needs to price raw text, saved as one directory.

``models/<name>/`` holds ``weights.pt`` (a plain state dict, loaded with
``weights_only=True`` so a model file can never execute code), ``model.json`` (architecture,
vectorizer settings, target transform statistics, training summary) and ``calibration.json``
(the validation scores behind each price's range, :mod:`pricer.intervals`). A reloaded
predictor computes exactly what the trained one did.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pricer.atomic import write_json, write_whole
from pricer.batching import CSRTensors, model_outputs
from pricer.errors import PricerError
from pricer.features import VectorizerSettings, vectorize_texts
from pricer.intervals import DEFAULT_LEVEL, Calibration, CalibrationError, PriceRange
from pricer.models import build_model
from pricer.target import TargetTransform
from pricer.text import usable_texts

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "model.json"


class ModelLoadError(PricerError, RuntimeError):
    """A model directory is missing, from an incompatible version, or not a pricer model."""


@dataclass
class PricePredictor:
    name: str
    model: nn.Module
    architecture: dict[str, Any]
    vectorizer: VectorizerSettings
    target: TargetTransform
    info: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    version: str = ""  # set by load: the first 8 hex digits of sha256(weights.pt)
    calibration: Calibration | None = None  # the price ranges; None for a model saved without one

    def predict_matrix(self, features: sp.csr_matrix, *, batch_rows: int = 8192) -> np.ndarray:
        """Dollar prices for the rows of an already-hashed feature matrix."""
        if features.shape[1] != self.vectorizer.n_features:
            raise ValueError(
                f"{self.name}: features have {features.shape[1]} columns, model expects "
                f"{self.vectorizer.n_features}"
            )
        outputs = model_outputs(self.model, CSRTensors.from_scipy(features), self.device, batch_rows=batch_rows)
        return self.target.decode(outputs)

    def predict(self, texts: Sequence[str], *, batch_rows: int = 8192,
                labels: Sequence[str] | None = None) -> np.ndarray:
        """Dollar prices for raw product texts (the same field the model was trained on), under
        training's text rules (:mod:`pricer.text`): a missing, empty, non-text or word-less entry
        raises ``TextError`` naming it (by ``labels``, default ``texts[i]``), an over-long one is cut."""
        usable = usable_texts(texts, labels, stop_words=self.vectorizer.stop_words)
        features = vectorize_texts(usable, self.vectorizer, chunk_rows=max(batch_rows, 1))
        return self.predict_matrix(features, batch_rows=batch_rows)

    def predict_range(self, texts: Sequence[str], *, level: float = DEFAULT_LEVEL,
                      batch_rows: int = 8192) -> PriceRange:
        """Dollar prices and their calibrated ranges at ``level`` (default 0.80) for raw texts."""
        return ranges_of(self.name, self.calibration, self.predict(texts, batch_rows=batch_rows), level)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        write_whole(directory / WEIGHTS_FILE, functools.partial(torch.save, weights))
        write_json(
            directory / CONFIG_FILE,
            {
                "format_version": FORMAT_VERSION,
                "name": self.name,
                "architecture": self.architecture,
                "vectorizer": self.vectorizer.to_dict(),
                "target": self.target.to_dict(),
                "info": self.info,
            },
        )
        if self.calibration is not None:
            self.calibration.save(directory)

    @staticmethod
    def weights_version(directory: str | Path) -> str:
        """The first 8 hex digits of sha256(weights.pt): `sha256sum <dir>/weights.pt` starts with it."""
        digest = hashlib.sha256()
        with open(Path(directory) / WEIGHTS_FILE, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:8]

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> PricePredictor:
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not config_path.is_file() or not weights_path.is_file():
            raise ModelLoadError(f"{directory}: not a pricer model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelLoadError(f"{config_path}: not valid JSON: {error}") from None
        except RecursionError:
            raise ModelLoadError(f"{config_path}: JSON nested too deeply to read") from None
        if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
            found = config.get("format_version") if isinstance(config, dict) else None
            raise ModelLoadError(
                f"{config_path}: model format {found!r} is not supported (this pricer reads {FORMAT_VERSION})"
            )
        try:
            vectorizer = VectorizerSettings(**config["vectorizer"])
            target = TargetTransform(**config["target"])
            model = build_model(config["architecture"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelLoadError(f"{config_path}: incompatible model config: {error}") from None
        if config["architecture"].get("n_features") != vectorizer.n_features:
            # Both load, but every prediction would fail: the hashed features would not fit the first layer.
            raise ModelLoadError(
                f"{config_path}: the vectorizer makes {vectorizer.n_features} features, the architecture "
                f"expects {config['architecture'].get('n_features')}"
            )
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises anything from IndexError to UnpicklingError on garbage
            raise ModelLoadError(f"{weights_path}: not a readable weights file: {error}") from None
        if not isinstance(state, dict):
            raise ModelLoadError(f"{weights_path}: expected a state dict, found {type(state).__name__}")
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ModelLoadError(f"{weights_path}: weights do not fit the architecture in {CONFIG_FILE}: "
                                 f"{error}") from None
        try:
            device = torch.device(device)
            model.to(device).eval()
        except (RuntimeError, AssertionError) as error:  # torch: unknown device name, or not built/available here
            raise ModelLoadError(f"device {str(device)!r} cannot run {directory}: {error}") from None
        try:
            version = cls.weights_version(directory)
            calibration = Calibration.load(directory)
        except OSError as error:
            raise ModelLoadError(f"{error.filename}: {error.strerror}") from None
        except CalibrationError as error:
            raise ModelLoadError(str(error)) from None
        return cls(config.get("name", directory.name), model, config["architecture"], vectorizer, target,
                   config.get("info", {}), device, version, calibration)


def ranges_of(name: str, calibration: Calibration | None, prices: np.ndarray, level: float) -> PriceRange:
    """``prices`` with their ranges; a ModelLoadError for a model saved without a calibration."""
    if calibration is None:
        raise ModelLoadError(f"{name}: this model was saved without a calibration ({CALIBRATION_NOTE}); "
                             "retrain it (dvc repro) to get price ranges")
    return calibration.ranges(prices, level)


CALIBRATION_NOTE = "no calibration.json beside model.json"
