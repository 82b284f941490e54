"""The ensemble: both trained models combined, with its own calibrated range, saved as one directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pricer
from pricer.ensemble import ENSEMBLE_FILE, EnsemblePredictor, load_directory
from pricer.models import build_model
from pricer.predictor import ModelLoadError, PricePredictor
from pricer.target import TargetTransform

ARCHS = {
    "mlp": {"kind": "mlp", "n_features": 512, "hidden_layers": [16, 8], "init": "kaiming"},
    "resnet": {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2},
}


@pytest.fixture
def members(catalogue_features):
    settings, _, train_y, *_ = catalogue_features
    torch.manual_seed(0)
    return [PricePredictor(name, build_model(arch).eval(), arch, settings,
                           TargetTransform.fit("standardized_log", train_y))
            for name, arch in ARCHS.items()]


@pytest.fixture
def ensemble(members, catalogue_features):
    _, _, _, validation_x, validation_y, _ = catalogue_features
    return EnsemblePredictor.calibrated("ensemble", members, validation_x, validation_y)


def test_the_price_is_the_geometric_mean_of_the_members(ensemble, members, catalogue_features):
    texts = catalogue_features[5]["summary"].tolist()[:50]
    prices = [member.predict(texts) for member in members]
    np.testing.assert_allclose(ensemble.predict(texts), np.sqrt((1 + prices[0]) * (1 + prices[1])) - 1, rtol=1e-9)
    between = ((np.minimum(*prices) <= ensemble.predict(texts) + 1e-9)
               & (ensemble.predict(texts) <= np.maximum(*prices) + 1e-9))
    assert between.all()


def test_calibrated_on_validation_and_saved_as_one_directory(ensemble, catalogue_features, tmp_path):
    _, _, _, validation_x, validation_y, items = catalogue_features
    texts = items["summary"].tolist()[:40]
    ensemble.save(tmp_path / "ensemble")
    assert sorted(path.name for path in (tmp_path / "ensemble").iterdir()) == [
        "calibration.json", ENSEMBLE_FILE, "mlp", "resnet"]
    loaded = load_directory(tmp_path / "ensemble")
    assert isinstance(loaded, EnsemblePredictor) \
        and loaded.version == load_directory(tmp_path / "ensemble").version != ""
    assert loaded.info["val_mae"] == pytest.approx(
        np.mean(np.abs(ensemble.predict_matrix(validation_x) - validation_y)),
                                                   abs=1e-3)
    before, after = ensemble.predict_range(texts, level=0.8), loaded.predict_range(texts, level=0.8)
    np.testing.assert_array_equal(after.price, before.price)
    np.testing.assert_allclose(after.high, before.high, rtol=1e-5)
    assert (after.low <= after.price).all() and (after.price <= after.high).all()
    # the Python API loads it like a single model
    np.testing.assert_array_equal(pricer.load_model(tmp_path / "ensemble").predict(texts), before.price)


def test_a_broken_ensemble_directory_is_a_load_error(ensemble, tmp_path):
    ensemble.save(tmp_path / "ensemble")
    config = json.loads((tmp_path / "ensemble" / ENSEMBLE_FILE).read_text())
    (tmp_path / "ensemble" / ENSEMBLE_FILE).write_text(json.dumps(config | {"members": ["../mlp"]}))
    with pytest.raises(ModelLoadError, match="member names"):
        load_directory(tmp_path / "ensemble")
    (tmp_path / "ensemble" / ENSEMBLE_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match=ENSEMBLE_FILE):
        load_directory(tmp_path / "ensemble")


def test_a_model_without_calibration_prices_but_has_no_range(members, catalogue_features):
    with pytest.raises(ModelLoadError, match="without a calibration"):
        members[0].predict_range(catalogue_features[5]["summary"].tolist()[:3])
