"""train_<model>: fit one regressor on the hashed features, save it, track it in MLflow.

Usage: ``python stages/train.py mlp|resnet``. With ``train.processes > 1`` the script relaunches
itself under ``torchrun`` (DistributedDataParallel: gloo on CPU, NCCL on GPU); rank 0 alone
tracks and writes outputs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict

import torch

from pricer import tracking
from pricer.atomic import atomic_directory, write_json, write_text
from pricer.batching import CSRTensors
from pricer.models import build_model, count_parameters
from pricer.pipeline import (
    CHECKPOINTS_DIR,
    FEATURES_DIR,
    FETCH_REPORT,
    METRICS_DIR,
    MODEL_NAMES,
    MODELS_DIR,
    ArtifactError,
    architecture,
    configure_logging,
    load_features,
    prices_of,
    progress_enabled,
    read_params,
    recipe,
    remove_stale_temporaries,
    target_kind,
    vectorizer_settings,
)
from pricer.predictor import PricePredictor
from pricer.target import TargetTransform
from pricer.training import DivergedError, EpochRecord, fit, select_device

log = logging.getLogger("pricer.stages.train")
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_mae", "lr")


def _relaunch_under_torchrun(model_name: str, processes: int) -> int:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
        __file__, model_name,
    ]
    log.info("data-parallel training on %d processes: %s", processes, " ".join(command))
    return subprocess.run(command, check=False).returncode


def _history_csv(history: list[EpochRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for record in history:
        row = asdict(record)
        writer.writerow([row["epoch"]] + [f"{row[c]:.6g}" for c in HISTORY_COLUMNS[1:]])
    return buffer.getvalue()


def main(model_name: str) -> int:
    configure_logging()
    if model_name not in MODEL_NAMES:
        log.error("usage: train.py {%s}", "|".join(MODEL_NAMES))
        return 2
    params = read_params(log)
    if params is None:
        return 1
    distributed = "LOCAL_RANK" in os.environ
    if params.train.processes > 1 and not distributed:
        return _relaunch_under_torchrun(model_name, params.train.processes)

    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if rank != 0:
        logging.getLogger().setLevel(logging.WARNING)  # one rank tells the story
    try:
        device = select_device(params.train.device)
    except RuntimeError as error:  # an explicit device that this machine lacks
        log.error("%s", error)
        return 1
    checkpoint = CHECKPOINTS_DIR / f"{model_name}.pt"
    outputs = (MODELS_DIR / model_name, METRICS_DIR / "history" / f"{model_name}.csv",
               METRICS_DIR / "train" / f"{model_name}.json", checkpoint)
    if rank == 0:
        for stale in remove_stale_temporaries(*outputs):  # left by a run killed mid-write
            log.info("removed %s, left by an interrupted run", stale)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if params.train.threads:
        torch.set_num_threads(max(1, params.train.threads // world_size))
    if params.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)

    try:
        train_x, train_labels = load_features(FEATURES_DIR, "train")
        val_x, val_labels = load_features(FEATURES_DIR, "validation")
    except ArtifactError as error:
        log.error("%s", error)
        return 1
    train_prices, val_prices = prices_of(train_labels), prices_of(val_labels)
    target = TargetTransform.fit(target_kind(params, model_name), train_prices)
    arch = architecture(params, model_name, train_x.shape[1])
    model_recipe = recipe(params, model_name)
    torch.manual_seed(params.seed)
    model = build_model(arch).to(device)
    log.info("%s: %s parameters, recipe %s, device %s, %d process(es)",
             model_name, f"{count_parameters(model):,}", model_recipe, device, world_size)

    tracker = tracking.Tracker()
    if rank == 0:
        report = json.loads(FETCH_REPORT.read_text(encoding="utf-8")) if FETCH_REPORT.exists() else {}
        inputs = [FEATURES_DIR / f"{s}.{ext}" for s in ("train", "validation") for ext in ("npz", "parquet")]
        try:
            tracker = tracking.start_run(
                enabled=params.tracking.enabled,
                experiment=params.tracking.experiment,
                busy_timeout_s=params.tracking.busy_timeout_s,
                run_name=f"{model_name}-{os.environ.get('DVC_EXP_NAME', 'workspace')}",
                tags=tracking.run_tags(
                    model_name,
                    params.data.source,
                    {
                        "data_kind": report.get("kind", ""),
                        "data_revision": report.get("resolved_revision") or params.data.revision or "",
                        **{f"input_md5.{p}": tracking.file_md5(p) for p in inputs},
                    },
                ),
            )
        except tracking.TrackingError as error:
            log.error("%s", error)
            return 1
        tracker.log_params({
            "params": params.as_dict(), "recipe": model_recipe.to_dict(), "architecture": arch,
            "parameters": count_parameters(model), "processes": world_size, "device": str(device),
        })

    ddp_model = model
    if distributed:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def on_epoch(record: EpochRecord) -> None:
        tracker.log_metrics(
            {"train_loss": record.train_loss, "val_loss": record.val_loss, "val_mae": record.val_mae,
             "lr": record.lr, "epoch_seconds": record.seconds},
            step=record.epoch,
        )

    try:
        result = fit(
            ddp_model,
            CSRTensors.from_scipy(train_x, target.encode(train_prices)),
            CSRTensors.from_scipy(val_x, target.encode(val_prices)),
            val_prices,
            target,
            model_recipe,
            device=device,
            model_name=model_name,
            on_epoch=on_epoch,
            checkpoint_path=checkpoint,
            checkpoint_key={"architecture": arch, "target": target.to_dict(), "train_rows": train_x.shape[0],
                            "train_nnz": int(train_x.nnz), "processes": world_size},
            resume=params.train.resume,
            rank=rank,
            world_size=world_size,
            progress=progress_enabled(params.train.progress) and rank == 0,
        )
    except DivergedError as error:
        log.error("%s; no model or metrics written. Try a lower lr or mlp.target=standardized_log", error)
        tracker.set_tags({"diverged": str(error)})
        tracker.finish("FAILED")
        return 1
    except BaseException as error:  # Ctrl-C or a crash: the MLflow run must not stay RUNNING
        with contextlib.suppress(Exception):
            tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    if rank != 0:
        return 0

    summary = {"best_epoch": result.best_epoch, "best_val_mae": round(result.best_val_mae, 4)}
    predictor = PricePredictor(
        model_name, model.cpu(), arch, vectorizer_settings(params), target,
        info={"recipe": model_recipe.to_dict(), "parameters": count_parameters(model), **summary,
              "kept_epoch": result.best_epoch if model_recipe.keep_best else len(result.history)},
    )
    with atomic_directory(MODELS_DIR / model_name) as tmp:
        predictor.save(tmp)
        write_json(tmp / "run.json", {"mlflow_run_id": tracker.run_id})
    write_text(METRICS_DIR / "history" / f"{model_name}.csv", _history_csv(result.history))
    write_json(METRICS_DIR / "train" / f"{model_name}.json", summary)
    tracker.log_metrics({"best_epoch": result.best_epoch, "best_val_mae": result.best_val_mae})
    tracker.log_artifacts(MODELS_DIR / model_name, "model")
    tracker.finish()
    log.info("%s: best epoch %d, validation MAE $%.2f", model_name, result.best_epoch, result.best_val_mae)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
