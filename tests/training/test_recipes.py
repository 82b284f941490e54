import pytest

from pricer.params import params_from_dict
from pricer.training.recipes import architecture, recipe, target_kind


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


