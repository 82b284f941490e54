"""params.yaml → what each model is and how it trains: its architecture, recipe and target.

The two models' recipes (README, "The two models"): the SGD MLP (MSE, SGD, a target and an
init that are params) and the residual network (L1 on the standardised log price, AdamW with
decoupled weight decay, cosine annealing per epoch, gradient clipping).
"""

from __future__ import annotations

from typing import Any

from pricer.layout import MODEL_NAMES
from pricer.params import Params
from pricer.training.loop import Recipe


def _unknown(model_name: str) -> ValueError:
    return ValueError(f"unknown model {model_name!r}; expected one of {MODEL_NAMES}")


def architecture(params: Params, model_name: str, n_features: int) -> dict[str, Any]:
    if model_name == "mlp":
        return {
            "kind": "mlp",
            "n_features": n_features,
            "hidden_layers": list(params.mlp.hidden_layers),
            "init": params.mlp.init,
        }
    if model_name == "resnet":
        resnet = params.resnet
        return {"kind": "resnet", "n_features": n_features, "hidden": resnet.hidden, "layers": resnet.layers,
                "dropout": resnet.dropout}
    raise _unknown(model_name)


def recipe(params: Params, model_name: str) -> Recipe:
    common = {"keep_best": params.train.keep_best, "precision": params.train.precision, "seed": params.seed}
    if model_name == "mlp":
        mlp = params.mlp
        return Recipe(optimizer="sgd", lr=mlp.lr, loss="mse", batch_size=mlp.batch_size, epochs=mlp.epochs, **common)
    if model_name == "resnet":
        resnet = params.resnet
        return Recipe(
            optimizer="adamw",
            lr=params.lr,
            weight_decay=resnet.weight_decay,
            loss="l1",
            batch_size=resnet.batch_size,
            epochs=resnet.epochs,
            cosine_t_max=resnet.cosine_t_max,
            grad_clip=resnet.grad_clip,
            input_optimizer=resnet.input_optimizer,
            **common,
        )
    raise _unknown(model_name)


def target_kind(params: Params, model_name: str) -> str:
    """The residual network always trains on the standardised log; the MLP's is a param."""
    if model_name not in MODEL_NAMES:
        raise _unknown(model_name)
    return params.mlp.target if model_name == "mlp" else "standardized_log"
