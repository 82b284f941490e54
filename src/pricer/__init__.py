"""pricer: predict a product price from its text.

The trained models are plain directories (``models/mlp``, ``models/resnet``)::

    import pricer

    model = pricer.load_model("models/resnet")          # or "models:/pricer-resnet@champion"
    model.predict(["Title: Cordless drill ...", "Title: Desk lamp ..."])   # numpy array of dollars
    pricer.predict("Title: Desk lamp ...", model="models/mlp")             # one text -> one float

The command line does the same for files: ``pricer predict --help``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing torch is slow: the functions below import it when first called
    import numpy as np

    from pricer.predictor import PricePredictor

DEFAULT_MODEL = "models/resnet"

__all__ = ["DEFAULT_MODEL", "load_model", "predict"]

_loaded: dict[tuple[str, str, int], PricePredictor] = {}


def load_model(path: str | Path = DEFAULT_MODEL, *, device: str = "cpu") -> PricePredictor:
    """Load a trained model directory or an MLflow model URI (``runs:/<run id>/model``,
    ``models:/pricer-resnet@champion``); raises ``pricer.predictor.ModelLoadError`` with the reason."""
    from pricer.tracking.registry import load_predictor

    return load_predictor(path, device=device)


def predict(
    texts: str | Sequence[str],
    model: str | Path | PricePredictor = DEFAULT_MODEL,
    *,
    batch_rows: int = 8192,
) -> float | np.ndarray:
    """Dollar prices for product texts: a float for one string, an array for a sequence.

    ``model`` is a loaded model, a model directory (loaded once and reused while its weights
    file is unchanged) or an MLflow model URI (loaded on each call).
    """
    from pricer.predictor import PricePredictor
    from pricer.tracking.registry import is_mlflow_uri

    if is_mlflow_uri(model):  # not cached: an alias such as @champion may move between calls
        model = load_model(model)
    if not isinstance(model, PricePredictor):
        directory = Path(model).resolve()
        weights = directory / "weights.pt"
        key = (str(directory), "cpu", weights.stat().st_mtime_ns if weights.exists() else 0)
        if key not in _loaded:
            while len(_loaded) >= 4:  # keep the last few models only: they can be large
                _loaded.pop(next(iter(_loaded)))
            _loaded[key] = load_model(directory)
        model = _loaded[key]
    if isinstance(texts, str):
        return float(model.predict([texts], batch_rows=batch_rows)[0])
    return model.predict(list(texts), batch_rows=batch_rows)
