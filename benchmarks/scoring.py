"""What the catalogue benchmarks share: splits as the pipeline makes them, and test MAEs of the
pipeline's models, ridge regression and the constant baselines on the same hashed features.

Models are trained exactly as ``stages/train.py`` does (TargetTransform, build_model, the recipe
and architecture from params, ``training.fit`` with keep-best on validation), on the CPU.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # runnable from a fresh clone even without `pip install -e .`
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

from pricer.batching import CSRTensors  # noqa: E402
from pricer.features import VectorizerSettings, vectorize_texts  # noqa: E402
from pricer.metrics import mean_absolute_error  # noqa: E402
from pricer.models import build_model  # noqa: E402
from pricer.params import Params, load_params  # noqa: E402
from pricer.sources import fetch_splits  # noqa: E402
from pricer.target import TargetTransform  # noqa: E402
from pricer.training import fit, model_outputs  # noqa: E402
from pricer.training.recipes import architecture, recipe, target_kind  # noqa: E402

REAL_SAMPLE = REPO.parent / "shared" / "data" / "real_items_sample.parquet"
RIDGE_ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
CPU = torch.device("cpu")


@dataclass
class HashedSplits:
    features: dict[str, sp.csr_matrix]
    prices: dict[str, np.ndarray]


def repo_params() -> Params:
    return load_params(REPO / "params.yaml")


def hashed_splits(source: str, params: Params, *, synthetic_items: int | None = None) -> HashedSplits:
    """Fetch ``source`` as the fetch stage does (a single split is shuffled with the seed and cut
    by the fractions) and hash every split as the vectorize stage does."""
    logging.getLogger("pricer").setLevel(logging.WARNING)
    data = params.data
    result = fetch_splits(
        source, text_field=params.vectorize.text_field, seed=data.seed,
        synthetic_items=synthetic_items or data.synthetic_items, validation_fraction=data.validation_fraction,
        test_fraction=data.test_fraction, max_train_items=data.max_train_items,
    )
    settings = VectorizerSettings.from_params(params.vectorize.model_dump())
    return HashedSplits(
        features={name: vectorize_texts(frame[settings.text_field].tolist(), settings, n_jobs=1)
                  for name, frame in result.splits.items()},
        prices={name: frame["price"].to_numpy(dtype=np.float64) for name, frame in result.splits.items()},
    )


def model_test_mae(params: Params, model_name: str, splits: HashedSplits) -> float:
    """Train ``model_name`` with ``params`` like the train stage; its MAE on the test split."""
    train_prices, val_prices = splits.prices["train"], splits.prices["validation"]
    target = TargetTransform.fit(target_kind(params, model_name), train_prices)
    arch = architecture(params, model_name, splits.features["train"].shape[1])
    torch.manual_seed(params.seed)
    model = build_model(arch)
    fit(
        model,
        CSRTensors.from_scipy(splits.features["train"], target.encode(train_prices)),
        CSRTensors.from_scipy(splits.features["validation"], target.encode(val_prices)),
        val_prices, target, recipe(params, model_name), device=CPU, model_name=model_name,
    )
    test = splits.features["test"]
    outputs = model_outputs(model, CSRTensors.from_scipy(test, np.zeros(test.shape[0], np.float32)), CPU)
    return mean_absolute_error(splits.prices["test"], target.decode(outputs))


def ridge_test_mae(splits: HashedSplits) -> tuple[float, float]:
    """Ridge on log1p(price), alpha picked on validation from :data:`RIDGE_ALPHAS`: (alpha, test MAE)."""
    best: tuple[float, float, float] | None = None
    for alpha in RIDGE_ALPHAS:
        model = Ridge(alpha=alpha).fit(splits.features["train"], np.log1p(splits.prices["train"]))
        validation = mean_absolute_error(splits.prices["validation"],
                                         np.expm1(model.predict(splits.features["validation"])))
        if best is None or validation < best[1]:
            test = mean_absolute_error(splits.prices["test"], np.expm1(model.predict(splits.features["test"])))
            best = (alpha, validation, test)
    assert best is not None
    return best[0], best[2]


def baseline_test_maes(splits: HashedSplits) -> dict[str, float]:
    train, test = splits.prices["train"], splits.prices["test"]
    return {
        "median": mean_absolute_error(test, np.full(len(test), np.median(train))),
        "mean": mean_absolute_error(test, np.full(len(test), train.mean())),
    }
