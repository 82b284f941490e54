"""What the stage scripts share: file layout, logging, and params → recipe/architecture.

Stage scripts stay thin (read params, call the library, write outputs); everything here is
a pure function of params or a small reader/writer of the pipeline's own files.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pricer.atomic import atomic_path
from pricer.features import VectorizerSettings
from pricer.params import Params, ParamsError, load_params
from pricer.training import Recipe

SPLITS = ("train", "validation", "test")
MODEL_NAMES = ("mlp", "resnet")
RAW_DIR = Path("data/raw")
FEATURES_DIR = Path("data/features")
MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
CHECKPOINTS_DIR = Path("checkpoints")
FETCH_REPORT = Path("data/fetch_report.json")


class ArtifactError(RuntimeError):
    """A pipeline file is missing or unreadable; the message names it and the stage to rerun."""


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("PRICER_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def read_params(log: logging.Logger, path: str | Path = "params.yaml") -> Params | None:
    """The stage's params, or None after logging why they are unusable (the message names the key)."""
    try:
        return load_params(path)
    except ParamsError as error:
        log.error("%s", error)
        return None


def progress_enabled(setting: bool | str) -> bool:
    """Progress bars: on for a person at a terminal, off in CI and in logs."""
    if setting == "auto":
        return not os.environ.get("CI") and sys.stderr.isatty()
    return bool(setting)


def vectorizer_settings(params: Params) -> VectorizerSettings:
    v = params.vectorize
    return VectorizerSettings(
        n_features=v.n_features, stop_words=v.stop_words, binary=v.binary, norm=v.norm, text_field=v.text_field
    )


def architecture(params: Params, model_name: str, n_features: int) -> dict[str, Any]:
    if model_name == "mlp":
        return {
            "kind": "mlp",
            "n_features": n_features,
            "hidden_layers": list(params.mlp.hidden_layers),
            "init": params.mlp.init,
        }
    if model_name == "resnet":
        r = params.resnet
        return {"kind": "resnet", "n_features": n_features, "hidden": r.hidden, "layers": r.layers, "dropout": r.dropout}
    raise ValueError(f"unknown model {model_name!r}; expected one of {MODEL_NAMES}")


def recipe(params: Params, model_name: str) -> Recipe:
    """The training recipe of each model, straight from DEVELOPERS.md via params.yaml."""
    common = {"keep_best": params.train.keep_best, "precision": params.train.precision, "seed": params.seed}
    if model_name == "mlp":
        m = params.mlp
        return Recipe(optimizer="sgd", lr=m.lr, loss="mse", batch_size=m.batch_size, epochs=m.epochs, **common)
    if model_name == "resnet":
        r = params.resnet
        return Recipe(
            optimizer="adamw",
            lr=params.lr,
            weight_decay=r.weight_decay,
            loss="l1",
            batch_size=r.batch_size,
            epochs=r.epochs,
            cosine_t_max=r.cosine_t_max,
            grad_clip=r.grad_clip,
            **common,
        )
    raise ValueError(f"unknown model {model_name!r}; expected one of {MODEL_NAMES}")


def target_kind(params: Params, model_name: str) -> str:
    """The residual network always trains on the standardised log; the MLP's is a param."""
    return params.mlp.target if model_name == "mlp" else "standardized_log"


def remove_stale_temporaries(*destinations: str | Path) -> list[Path]:
    """Delete what a killed writer of ``destinations`` left beside them: the hidden
    ``.<name>.*.tmp*`` files/folders and ``.<name>.*.old`` folders of :mod:`pricer.atomic`.

    A SIGKILL skips the writers' cleanup, so a stage calls this for its own outputs when it
    starts; only the one process that writes those destinations may call it.
    """
    removed = []
    for destination in map(Path, destinations):
        if not destination.parent.is_dir():
            continue
        name = glob.escape(destination.name)
        for pattern in (f".{name}.*.tmp*", f".{name}.*.old"):
            for path in destination.parent.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def save_features(directory: Path, split: str, matrix: sp.csr_matrix, labels: pd.DataFrame) -> None:
    with atomic_path(directory / f"{split}.npz") as tmp:
        sp.save_npz(tmp, matrix, compressed=False)
    with atomic_path(directory / f"{split}.parquet") as tmp:
        labels.to_parquet(tmp, index=False)


def load_features(directory: Path, split: str) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """The hashed matrix of a split and its (id, price) labels, checked against each other."""
    matrix_path, labels_path = directory / f"{split}.npz", directory / f"{split}.parquet"
    try:
        matrix = sp.load_npz(matrix_path).tocsr()
    except FileNotFoundError:
        raise ArtifactError(f"{matrix_path}: missing; run `dvc repro vectorize`") from None
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ArtifactError(f"{matrix_path}: not a readable sparse matrix ({error}); rerun `dvc repro -f vectorize`") from None
    try:
        labels = pd.read_parquet(labels_path)
    except FileNotFoundError:
        raise ArtifactError(f"{labels_path}: missing; run `dvc repro vectorize`") from None
    except (ValueError, OSError) as error:
        raise ArtifactError(f"{labels_path}: not a readable parquet file ({error})") from None
    if matrix.shape[0] != len(labels):
        raise ArtifactError(f"{matrix_path} has {matrix.shape[0]} rows but {labels_path} has {len(labels)}")
    return matrix, labels


def prices_of(labels: pd.DataFrame) -> np.ndarray:
    return labels["price"].to_numpy(dtype=np.float64)
