import numpy as np
import pandas as pd
import pytest

from pricer.params import params_from_dict
from pricer.pipeline import ArtifactError, architecture, load_features, recipe, save_features, target_kind


def test_recipes_follow_the_seed():
    params = params_from_dict({})
    mlp = recipe(params, "mlp")
    assert (mlp.optimizer, mlp.lr, mlp.loss, mlp.batch_size, mlp.epochs, mlp.cosine_t_max, mlp.grad_clip) == \
        ("sgd", 0.01, "mse", 64, 10, None, None)
    resnet = recipe(params_from_dict({"lr": 0.0005}), "resnet")
    assert (resnet.optimizer, resnet.lr, resnet.weight_decay, resnet.loss, resnet.batch_size, resnet.epochs) == \
        ("adamw", 0.0005, 0.01, "l1", 64, 5)
    assert (resnet.cosine_t_max, resnet.grad_clip) == (10, 1.0)
    assert target_kind(params, "resnet") == "standardized_log"
    assert target_kind(params_from_dict({"mlp": {"target": "raw"}}), "mlp") == "raw"


def test_architectures_from_params():
    params = params_from_dict({"resnet": {"hidden": 4096, "layers": 10}})
    assert architecture(params, "resnet", 5000) == {"kind": "resnet", "n_features": 5000, "hidden": 4096,
                                                     "layers": 10, "dropout": 0.2}
    assert architecture(params, "mlp", 5000)["hidden_layers"] == [128, 64, 64, 64, 64, 64, 64]
    with pytest.raises(ValueError, match="unknown model"):
        architecture(params, "gbm", 5000)


def test_features_round_trip_and_clear_errors(tmp_path, random_csr):
    labels = pd.DataFrame({"id": np.arange(200), "price": np.linspace(1, 100, 200)})
    save_features(tmp_path, "train", random_csr, labels)
    matrix, loaded = load_features(tmp_path, "train")
    assert (matrix != random_csr).nnz == 0 and loaded.equals(labels)

    with pytest.raises(ArtifactError, match=r"validation.npz: missing; run `dvc repro vectorize`"):
        load_features(tmp_path, "validation")
    npz = tmp_path / "train.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="train.npz: not a readable sparse matrix"):
        load_features(tmp_path, "train")
    save_features(tmp_path, "train", random_csr, labels.iloc[:10])
    with pytest.raises(ArtifactError, match="200 rows but .* has 10"):
        load_features(tmp_path, "train")
