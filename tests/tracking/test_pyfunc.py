"""The logged pyfunc model: same prices as the model directory, nothing pickled, clear refusals."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from pricer import tracking
from pricer.predictor import PricePredictor
from pricer.tracking import pyfunc


@pytest.fixture(scope="module", autouse=True)
def store(logged_model):
    """MLflow's own functions (load_model, download_artifacts) on the scratch store."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking.resolve_tracking_uri(logged_model.root))
        yield


@pytest.fixture(scope="module")
def loaded(logged_model):
    return mlflow.pyfunc.load_model(f"runs:/{logged_model.run_id}/model")


def test_pyfunc_prices_equal_the_model_directory_exactly(logged_model, loaded):
    prices = loaded.predict(pd.DataFrame({"summary": logged_model.texts}))
    expected = PricePredictor.load(logged_model.directory).predict_range(logged_model.texts, level=0.8)
    assert list(prices.columns) == ["price", "low", "high"] and (prices.dtypes == np.float64).all()
    assert np.array_equal(prices["price"].to_numpy(), expected.price)
    np.testing.assert_allclose(prices[["low", "high"]].to_numpy(), np.column_stack([expected.low, expected.high]))
    wider = loaded.predict(pd.DataFrame({"summary": logged_model.texts}), params={"level": 0.95})
    assert ((wider["low"] <= prices["low"]) & (wider["high"] >= prices["high"])).all()
    expected = expected.price
    assert len(set(expected.tolist())) > 1  # different texts, different prices: the texts were read


@pytest.fixture(scope="module")
def model_files(logged_model) -> Path:
    """The logged model's files, as ``mlflow.pyfunc.load_model`` downloads them."""
    return Path(mlflow.artifacts.download_artifacts(f"runs:/{logged_model.run_id}/model"))


def test_signature_and_input_example(loaded, model_files):
    metadata = loaded.metadata
    assert metadata.get_input_schema().input_names() == ["summary"]
    assert [spec.type.name for spec in metadata.get_input_schema().inputs] == ["string"]
    assert metadata.get_output_schema().input_names() == ["price", "low", "high"]
    assert [spec.type.name for spec in metadata.get_output_schema().inputs] == ["double"] * 3
    assert [(param.name, param.default) for param in metadata.get_params_schema().params] == [("level", 0.8)]
    example = Model.load(model_files).load_input_example(model_files)
    assert example["summary"].tolist() == list(pyfunc.EXAMPLE_TEXTS)


def test_logged_from_code_with_pricer_shipped_and_nothing_pickled(model_files):
    files = {path.relative_to(model_files).as_posix() for path in model_files.rglob("*") if path.is_file()}
    assert not [name for name in files if name.endswith((".pkl", ".pickle", ".cloudpickle"))]
    assert {"model_code.py", "code/pricer/tracking/pyfunc.py", "code/pricer/predictor.py",
            "artifacts/resnet/weights.pt", "artifacts/resnet/model.json"} <= files
    flavour = yaml.safe_load((model_files / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavour["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in flavour
    requirements = (model_files / "requirements.txt").read_text().split()
    assert {line.split("==")[0] for line in requirements} == set(pyfunc.REQUIRED_LIBRARIES)
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements and not [r for r in requirements if "+" in r]


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"title": ["a lamp"]}), "missing inputs \\['summary'\\]"),
    (pd.DataFrame({"summary": [3, 4]}), "Incompatible input types for column summary"),
    (pd.DataFrame({"summary": ["a lamp", None]}), "column 'summary': 1 of 2 texts cannot be priced: row 1: missing"),
    (pd.DataFrame({"summary": ["a lamp", "\x00"]}), "column 'summary': 1 of 2 texts cannot be priced: row 1: empty"),
])
def test_bad_input_is_refused_with_the_column_named(loaded, frame, message):
    with pytest.raises(MlflowException, match=message):
        loaded.predict(frame)


def test_python_model_checks_its_input_itself(logged_model):
    model = pyfunc.PricerModel()
    model.predictor = PricePredictor.load(logged_model.directory)
    with pytest.raises(MlflowException, match="needs a column 'summary'.*found \\['text'\\]"):
        model.predict(None, pd.DataFrame({"text": ["a"]}))
    with pytest.raises(MlflowException, match="2 of 3 texts cannot be priced: row 0: text is not a string "
                                              "\\(got float: '1.5'\\); row 2: text is not a string \\(got bytes"):
        model.predict(None, pd.DataFrame({"summary": [1.5, "lamp", b"x"]}))
    assert model.predict(None, pd.DataFrame({"summary": ["lamp"]}))["price"].iloc[0] > 0


def test_the_global_store_is_put_back_with_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    with pyfunc.global_store(f"sqlite:///{tmp_path}/mlflow.db"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    assert mlflow.get_tracking_uri() == "sqlite:///elsewhere.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"
