"""A trained pricer model as an MLflow Model: the ``pyfunc`` flavour wrapping PricePredictor.

Logged with MLflow's models-from-code (``python_model`` is the path of ``model_code.py``, a file
MLflow runs at load time), never as a cloudpickled object, so loading a logged model executes
only pricer's own source, which travels with the model (``code_paths``: ``code/pricer``). The
weights and ``model.json`` are the model directory the train stage wrote, logged as the artifact
``pricer_model`` and read back with ``PricePredictor.load`` (``torch.load(weights_only=True)``).

Input: a DataFrame with one string column named after the field the model was trained on
(``vectorize.text_field``, ``summary`` by default); output: a DataFrame with three double
columns in dollars, ``price`` and its calibrated range ``low``/``high`` at the param ``level``
(default 0.80, :mod:`pricer.intervals`). ``mlflow models serve`` answers
``{"predictions": [{"price": ..., "low": ..., "high": ...}, ...]}``; a request may carry
``"params": {"level": 0.9}``. The ensemble (``models/ensemble``) is logged the same way.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

from pricer.digests import directory_md5
from pricer.ensemble import load_directory
from pricer.intervals import DEFAULT_LEVEL, CalibrationError
from pricer.predictor import ModelLoadError
from pricer.text import TextError
from pricer.tracking.store import MODEL_DIGEST_TAG

MODEL_ARTIFACT = "pricer_model"  # the key of the model directory in the logged model's artifacts
OUTPUT_COLUMN = "price"
RANGE_COLUMNS = ("low", "high")  # the calibrated range around the price, at the param LEVEL_PARAM
LEVEL_PARAM = "level"
TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
REGISTRY_URI_VARIABLE = "MLFLOW_REGISTRY_URI"
MODEL_CODE_FILE = Path(__file__).with_name("model_code.py")
PACKAGE_DIR = Path(__file__).parents[1]  # pricer itself, shipped as the model's code
# The libraries a logged model imports when it loads and predicts (pricer itself ships as code).
REQUIRED_LIBRARIES = ("mlflow", "torch", "numpy", "scipy", "scikit-learn", "pandas")
EXAMPLE_TEXTS = (
    "Title: Cordless drill, 20V, two batteries\nCategory: Tools & Home Improvement",
    "Title: Desk lamp with dimmer\nCategory: Home & Kitchen",
)


def pip_requirements() -> list[str]:
    """The installed versions of what the model needs, pinned (``torch==2.13.0``: a local build
    label such as ``+cpu`` is dropped, since pip matches ``==2.13.0`` against any such build)."""
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in REQUIRED_LIBRARIES]


def signature(text_field: str) -> ModelSignature:
    return ModelSignature(inputs=Schema([ColSpec(DataType.string, text_field)]),
                          outputs=Schema([ColSpec(DataType.double, column)
                                          for column in (OUTPUT_COLUMN, *RANGE_COLUMNS)]),
                          params=ParamSchema([ParamSpec(LEVEL_PARAM, DataType.double, DEFAULT_LEVEL)]))


def input_example(text_field: str) -> pd.DataFrame:
    return pd.DataFrame({text_field: list(EXAMPLE_TEXTS)})


def check_model_digest(directory: str | Path, expected: str | None, recorded_as: str) -> None:
    """Raise a ModelLoadError when the model files in ``directory`` are not those the training
    run logged (their ``pricer.model_digest``): a swapped or edited artifact would otherwise price
    silently with another model. Nothing to check against (``expected`` None) passes."""
    if expected is None:
        return
    found = directory_md5(directory)
    if found != expected:
        raise ModelLoadError(f"{directory}: these model files (digest {found}) are not the ones their training run "
                             f"logged ({MODEL_DIGEST_TAG} {expected}, {recorded_as}); refusing to price with them")


def bad_input(message: str) -> MlflowException:
    """An error the scoring server answers with HTTP 400 and this message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class PricerModel(mlflow.pyfunc.PythonModel):
    """Prices product texts with the pricer model logged as the ``pricer_model`` artifact."""

    def load_context(self, context: Any) -> None:
        directory = context.artifacts[MODEL_ARTIFACT]
        check_model_digest(directory, (getattr(context, "model_config", None) or {}).get(MODEL_DIGEST_TAG),
                           "the digest logged with the model (model_config)")
        self.predictor = load_directory(directory)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        level = (params or {}).get(LEVEL_PARAM, DEFAULT_LEVEL)
        prices = self.prices(model_input)
        try:
            ranged = self.predictor.calibration.ranges(prices, level) if self.predictor.calibration else None
        except CalibrationError as error:
            raise bad_input(f"params.{LEVEL_PARAM}: {error}") from None
        if ranged is None:
            raise bad_input(f"{self.predictor.name}: this model was saved without a calibration; retrain it")
        return pd.DataFrame({OUTPUT_COLUMN: prices, RANGE_COLUMNS[0]: ranged.low, RANGE_COLUMNS[1]: ranged.high})

    def prices(self, model_input: pd.DataFrame) -> np.ndarray:
        """The dollar prices of the rows of ``model_input``'s text column, checked first (the
        signature already rejects a missing column; this also catches a call without it)."""
        field = self.predictor.vectorizer.text_field
        if not isinstance(model_input, pd.DataFrame) or field not in model_input.columns:
            found = list(model_input.columns) if isinstance(model_input, pd.DataFrame) else type(model_input).__name__
            raise bad_input(f"the input needs a column {field!r} of product texts; found {found}")
        texts = model_input[field]
        try:  # training's text rules, as pricer predict applies them: the server answers 400, not a price
            prices = self.predictor.predict(texts.tolist(), labels=[f"row {index}" for index in texts.index])
        except TextError as error:
            raise bad_input(f"column {field!r}: {error}") from None
        return np.asarray(prices, dtype=np.float64)


@contextmanager
def global_store(tracking_uri: str) -> Iterator[None]:
    """Make ``tracking_uri`` MLflow's global store for the duration: model logging and model
    registration resolve ``models:/`` URIs there, not through the client they are called on.

    Through the environment variable MLflow reads when no URI was set in-process: MLflow 3.17 has
    no public way to restore "no URI set" after ``mlflow.set_tracking_uri`` (its own context
    manager for this is private), and pricer never sets one in-process."""
    saved = {name: os.environ.get(name) for name in (TRACKING_URI_VARIABLE, REGISTRY_URI_VARIABLE)}
    os.environ[TRACKING_URI_VARIABLE] = os.environ[REGISTRY_URI_VARIABLE] = tracking_uri
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log_pyfunc_model(client: Any, directory: Path, *, experiment_id: str, run_id: str, name: str = "model",
                     model_digest: str | None = None) -> Any:
    """Log the model directory of one run as an MLflow Model (``runs:/<run_id>/<name>``), through
    ``client``'s store; its ``ModelInfo`` (``model_uri``, ``model_id``). ``model_digest`` (the
    directory's ``pricer.model_digest``) travels in the model's ``model_config``, so that loading
    it anywhere (``mlflow models serve`` included) checks the files against it."""
    text_field = load_directory(directory).vectorizer.text_field

    # MLflow's model logging reads the global experiment, not a client's: the logged model is
    # created here, in the run's experiment.
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id,
                                        params=client.get_run(run_id).data.params)
    with global_store(client.tracking_uri):
        return Model.log(
            artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run_id, model_id=logged.model_id,
            python_model=str(MODEL_CODE_FILE), artifacts={MODEL_ARTIFACT: str(directory)},
            code_paths=[str(PACKAGE_DIR)], signature=signature(text_field), input_example=input_example(text_field),
            pip_requirements=pip_requirements(),
            model_config={MODEL_DIGEST_TAG: model_digest} if model_digest else None,
        )
