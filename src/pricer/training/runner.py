"""One training stage as library calls: load the features, plan the model, train it, save it.

``stages/train.py`` strings these together; each is testable on its own, in one process.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil  # a dependency of dask[distributed]
import scipy.sparse as sp
import torch
from torch import nn

from pricer import layout
from pricer.atomic import atomic_directory, write_json, write_text
from pricer.batching import CSRTensors, RankShares, RowShare
from pricer.digests import package_source_md5
from pricer.errors import PricerError
from pricer.features import (
    INT32_NNZ_LIMIT,
    VectorizerSettings,
    feature_md5s,
    load_feature_rows,
    load_labels,
    prices_of,
    read_manifest,
)
from pricer.intervals import Calibration
from pricer.models import build_model, count_parameters
from pricer.params import Params
from pricer.predictor import PricePredictor
from pricer.target import TargetTransform
from pricer.training.checkpoint import Checkpointing
from pricer.training.distributed import Processes
from pricer.training.loop import EpochRecord, FitResult, Recipe, fit
from pricer.training.recipes import architecture, recipe, target_kind

log = logging.getLogger(__name__)
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_mae", "lr")
TRAINING_SPLITS = ("train", "validation")


BYTES_PER_ROW = 24  # a row's CSR pointer in scipy (4) and as a tensor (8), its float32 target (4), its price (8)


class FeaturesExceedMemoryError(PricerError):
    """The features this machine's ranks would load do not fit in the memory it has available."""


def check_features_fit_in_memory(features_dir: Path = layout.FEATURES_DIR, *, processes: int = 1, world_size: int = 1,
                                 available: int | None = None) -> None:
    """Refuse, before loading, features that cannot fit: a lower bound of what this machine's
    ``processes`` ranks (of ``world_size``) hold, from the splits' manifests (8 bytes a non-zero,
    16 past 2^31, plus each row's pointer, target and price), against the memory available
    (psutil's, which counts reclaimable page cache). Past it the kernel kills the stage with no
    message; with it the stage says what it needs in one line."""
    share = processes / world_size
    need, nnz_total = 0, 0
    for split in TRAINING_SPLITS:
        manifest = read_manifest(features_dir, split)
        nnz, rows = int(manifest["nnz"]) * share, int(manifest["rows"]) * share
        need += int(nnz * (8 if nnz < INT32_NNZ_LIMIT else 16) + rows * BYTES_PER_ROW)
        nnz_total += int(nnz)
    available = int(psutil.virtual_memory().available) if available is None else available
    if need > available:
        here = "this process" if world_size == 1 else f"this machine's {processes} of {world_size} ranks"
        raise FeaturesExceedMemoryError(
            f"{features_dir}: the train and validation features need at least {need / 2**30:.1f} GiB in memory for "
            f"{here} ({nnz_total:,} non-zeros), but {available / 2**30:.1f} GiB is available; free memory, or "
            "spread the rows over machines with train.nodes (each rank loads only its share; more train.processes "
            "on one machine load the same rows between them)")


@dataclass(frozen=True)
class TrainingData:
    """This rank's share of the hashed train and validation splits, the md5 of each file they
    came from, and the prices of every train row (the target's statistics). Without shares the
    data is every row (one process)."""

    train_features: sp.csr_matrix
    train_prices: np.ndarray
    validation_features: sp.csr_matrix
    validation_prices: np.ndarray
    file_md5s: dict[str, str] = field(default_factory=dict)  # path -> md5, as dvc.lock records it
    all_train_prices: np.ndarray | None = None
    train_share: RowShare | None = None
    validation_share: RowShare | None = None
    features_dir: Path = layout.FEATURES_DIR

    def __post_init__(self) -> None:
        if self.all_train_prices is None:
            object.__setattr__(self, "all_train_prices", self.train_prices)
        if self.train_share is None:
            object.__setattr__(self, "train_share", RowShare.of_rank(len(self.train_prices), 0, 1))
        if self.validation_share is None:
            object.__setattr__(self, "validation_share", RowShare.of_rank(len(self.validation_prices), 0, 1))

    def whole_validation(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """Every validation row (a rank holds only its share): what the price ranges calibrate on."""
        if self.validation_share.rows == self.validation_share.total:
            return self.validation_features, self.validation_prices
        features, labels = load_feature_rows(self.features_dir, "validation", 0, self.validation_share.total)
        return features, prices_of(labels)


def load_training_data(features_dir: Path = layout.FEATURES_DIR, rank: int = 0, world_size: int = 1) -> TrainingData:
    """Rank ``rank``'s contiguous share of each split (of ``world_size``), read from disk alone."""
    all_train_prices = prices_of(load_labels(features_dir, "train"))
    train_share = RowShare.of_rank(len(all_train_prices), rank, world_size)
    validation_share = RowShare.of_rank(len(load_labels(features_dir, "validation")), rank, world_size)
    train_x, train_labels = load_feature_rows(features_dir, "train", train_share.start, train_share.stop)
    val_x, val_labels = load_feature_rows(features_dir, "validation", validation_share.start, validation_share.stop)
    return TrainingData(train_x, prices_of(train_labels), val_x, prices_of(val_labels),
                        feature_md5s(features_dir, TRAINING_SPLITS),
                        all_train_prices, train_share, validation_share, features_dir)


@dataclass
class TrainingPlan:
    """What will be trained: everything decided from params before the first step."""

    model_name: str
    architecture: dict[str, Any]
    recipe: Recipe
    target: TargetTransform
    vectorizer: VectorizerSettings
    model: nn.Module

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)


def plan_training(params: Params, model_name: str, data: TrainingData, device: torch.device) -> TrainingPlan:
    """The model, initialised from ``seed`` (identical on every data-parallel rank), and its recipe."""
    target = TargetTransform.fit(target_kind(params, model_name), data.all_train_prices)
    arch = architecture(params, model_name, data.train_features.shape[1])
    torch.manual_seed(params.seed)
    model = build_model(arch).to(device)
    plan = TrainingPlan(model_name, arch, recipe(params, model_name), target,
                        VectorizerSettings.from_params(params.vectorize.model_dump()), model)
    log.info("%s: %s parameters, recipe %s, device %s", model_name, f"{plan.parameters:,}", plan.recipe, device)
    return plan


@dataclass(frozen=True)
class TrainedModel:
    predictor: PricePredictor
    fit: FitResult

    @property
    def summary(self) -> dict[str, Any]:
        """``metrics/train/<model>.json``."""
        return {"best_epoch": self.fit.best_epoch, "best_val_mae": round(self.fit.best_val_mae, 4)}


def run_training(
    plan: TrainingPlan,
    data: TrainingData,
    processes: Processes,
    *,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> TrainedModel:
    """Train ``plan.model`` on this rank's share of the data (``fit`` sums the ranks' gradients
    when ``processes`` is distributed); the trained predictor."""
    # A checkpoint resumes only the same model on the same bytes of data with the same code: same
    # recipe, architecture and target, same feature files (their md5s), same number of processes,
    # same pricer source (a change to the loss must retrain, not "resume" a finished run).
    checkpoint_key = {"architecture": plan.architecture, "target": plan.target.to_dict(),
                      "vectorizer": plan.vectorizer.to_dict(), "features_md5": data.file_md5s,
                      "train.processes": processes.world_size, "code": package_source_md5()}
    if processes.distributed:
        log.info("%s: rank %d of %d data-parallel processes, training on train rows %d-%d of %d",
                 plan.model_name, processes.rank, processes.world_size, data.train_share.start + 1,
                 data.train_share.stop, data.train_share.total)
    result = fit(
        plan.model,
        CSRTensors.from_scipy(data.train_features, plan.target.encode(data.train_prices)),
        CSRTensors.from_scipy(data.validation_features, plan.target.encode(data.validation_prices)),
        data.validation_prices,
        plan.target,
        plan.recipe,
        device=processes.device,
        model_name=plan.model_name,
        on_epoch=on_epoch,
        checkpoint=Checkpointing(checkpoint_path, checkpoint_key, resume) if checkpoint_path else None,
        ranks=RankShares(processes.rank, processes.world_size, data.train_share, data.validation_share),
        progress=progress and processes.is_main,
    )
    log.info("%s: best epoch %d, validation MAE $%.2f", plan.model_name, result.best_epoch, result.best_val_mae)
    kept_epoch = result.best_epoch if plan.recipe.keep_best else len(result.history)
    predictor = PricePredictor(
        plan.model_name, plan.model.cpu(), plan.architecture, plan.vectorizer, plan.target,
        info={"recipe": plan.recipe.to_dict(), "parameters": plan.parameters, "best_epoch": result.best_epoch,
              "best_val_mae": round(result.best_val_mae, 4), "kept_epoch": kept_epoch},
    )
    # The price ranges are calibrated on the whole validation split, with the weights just kept, by
    # the rank that saves the model, and only here: evaluate and `pricer predict` read them from it.
    if processes.is_main:
        validation_features, validation_prices = data.whole_validation()
        predictor.calibration = Calibration.fit(validation_prices, predictor.predict_matrix(validation_features))
    return TrainedModel(predictor, result)


def history_csv(history: list[EpochRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for record in history:
        row = asdict(record)
        writer.writerow([row["epoch"]] + [f"{row[column]:.6g}" for column in HISTORY_COLUMNS[1:]])
    return buffer.getvalue()


def save_training_outputs(trained: TrainedModel) -> Path:
    """Write the model directory, its history and its summary, each atomically; the directory."""
    name = trained.predictor.name
    with atomic_directory(layout.model_dir(name)) as tmp:
        trained.predictor.save(tmp)
    write_text(layout.history_csv(name), history_csv(trained.fit.history))
    write_json(layout.train_metrics(name), trained.summary)
    return layout.model_dir(name)


def training_outputs(model_name: str) -> tuple[Path, ...]:
    """Every path a training stage writes (as dvc.yaml declares them)."""
    return layout.stage_outputs(f"train_{model_name}")
