import json
import pickle

import numpy as np
import pytest
import torch

from pricer.features import vectorize_texts
from pricer.models import build_model
from pricer.predictor import ModelLoadError, PricePredictor
from pricer.target import TargetTransform

ARCH = {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2}


@pytest.fixture
def predictor(catalogue_features):
    settings, _, train_y, *_ = catalogue_features
    torch.manual_seed(0)
    return PricePredictor("resnet", build_model(ARCH).eval(), ARCH, settings,
                          TargetTransform.fit("standardized_log", train_y), info={"best_epoch": 3})


def test_reloaded_model_predicts_exactly_the_same(predictor, catalogue_features, tmp_path):
    texts = catalogue_features[5]["summary"].tolist()[:300]
    before = predictor.predict(texts)
    predictor.save(tmp_path / "resnet")
    reloaded = PricePredictor.load(tmp_path / "resnet")
    assert np.array_equal(reloaded.predict(texts), before)
    assert reloaded.info == {"best_epoch": 3} and reloaded.vectorizer == predictor.vectorizer
    assert (before >= 0).all() and before.dtype == np.float64


def test_text_path_equals_feature_path_and_batching_does_not_matter(predictor, catalogue_features):
    texts = catalogue_features[5]["summary"].tolist()[:300]
    features = vectorize_texts(texts, predictor.vectorizer)
    np.testing.assert_array_equal(predictor.predict(texts), predictor.predict_matrix(features))
    np.testing.assert_allclose(predictor.predict(texts, batch_rows=7), predictor.predict(texts), rtol=1e-6)


def test_wrong_feature_width_is_refused(predictor, random_csr):
    with pytest.raises(ValueError, match="512"):
        predictor.predict_matrix(random_csr)


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a pricer model directory"):
        PricePredictor.load(tmp_path / "nothing")


def test_incompatible_config(predictor, tmp_path):
    predictor.save(tmp_path)
    config = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ModelLoadError, match="format 99 is not supported"):
        PricePredictor.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({**config, "architecture": {**ARCH, "hidden": 32}}))
    with pytest.raises(ModelLoadError, match="weights do not fit the architecture"):
        PricePredictor.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({**config, "architecture": {"kind": "gpt"}}))
    with pytest.raises(ModelLoadError, match="incompatible model config"):
        PricePredictor.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        PricePredictor.load(tmp_path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_weights_that_are_not_a_model_never_run_code(predictor, tmp_path):
    predictor.save(tmp_path)
    weights = tmp_path / "weights.pt"
    marker = tmp_path / "code-was-run"
    weights.write_bytes(pickle.dumps({"payload": _Exploit(marker)}))
    with pytest.raises(ModelLoadError, match="not a readable weights file"):
        PricePredictor.load(tmp_path)
    assert not marker.exists()
    weights.write_bytes(b"this is not a model")
    with pytest.raises(ModelLoadError, match="weights.pt: not a readable weights file"):
        PricePredictor.load(tmp_path)
    predictor.save(tmp_path)
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(ModelLoadError, match="weights.pt"):
        PricePredictor.load(tmp_path)
