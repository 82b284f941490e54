"""Benchmark 7: the real-products preset (issue 14), chosen and then measured on real items.

Data: ``../shared/data/real_items_sample.parquet`` (11,816 real products; never copied into
the project). ``split`` draws, with a fixed seed, 2,500 test rows and writes them and the other
9,316 rows as ``test.parquet`` / ``train.parquet`` into a scratch directory (a Hub-layout local
source: the pipeline carves its validation split out of train with ``data.seed``).

* ``sweep`` tunes on the train rows only: the pipeline's own validation carve (the same 932 rows
  the final run validates on), each configuration as ``-S``-style overrides of params.yaml,
  hashed and trained through the library (``recipes``, ``fit``), scored by validation MAE
  (best epoch). The test file is not opened.
* ``final`` runs the real stages (fetch, vectorize, train_mlp, train_resnet, ensemble, evaluate)
  in a scratch project with ``data.source`` = that directory, once with the defaults and once
  with ``presets/real-products.yaml``, and reports test MAE with 95% bootstrap intervals and the
  paired difference (numpy percentile bootstrap over test items, 2,000 seeded resamples), the
  share of test prices inside each model's 80% range (calibrated on the validation carve, as the
  pipeline does) and the ensemble against the best single model on the same items
  (``pricer.comparison.paired_difference``).

    .venv/bin/python benchmarks/real_products.py split --workdir /tmp/real-products
    .venv/bin/python benchmarks/real_products.py sweep --workdir /tmp/real-products
    .venv/bin/python benchmarks/real_products.py final --workdir /tmp/real-products
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness
import numpy as np
import pandas as pd
import torch
import yaml

from pricer.batching import CSRTensors
from pricer.comparison import paired_difference
from pricer.features import VectorizerSettings, vectorize_texts
from pricer.models import build_model
from pricer.params import params_from_dict, with_overrides
from pricer.sources.split import arrange_splits
from pricer.target import TargetTransform
from pricer.training import fit
from pricer.training.recipes import architecture, recipe, target_kind

SAMPLE = harness.REPO.parent / "shared" / "data" / "real_items_sample.parquet"
PRESET = harness.REPO / "presets" / "real-products.yaml"
TEST_ROWS, SPLIT_SEED = 2500, 14
RESAMPLES, BOOTSTRAP_SEED = 2000, 0

WIDE = {"vectorize.n_features": 262144, "resnet.input_optimizer": "lazy"}
# name -> overrides (dotted keys, as `dvc exp run -S` takes them); run in this order
SWEEP: dict[str, dict[str, object]] = {
    "default": {},
    "10 epochs": {"resnet.epochs": 10},
    "2^16, 10 epochs, dense": {"vectorize.n_features": 65536, "resnet.epochs": 10},
    "2^16, 10 epochs, lazy": {"vectorize.n_features": 65536, "resnet.epochs": 10, "resnet.input_optimizer": "lazy"},
    "2^18, 10 epochs, lazy": {"vectorize.n_features": 262144, "resnet.epochs": 10, "resnet.input_optimizer": "lazy"},
    "2^18, 10 epochs, lazy, T_max 10": {**WIDE, "resnet.epochs": 10, "resnet.cosine_t_max": 10},
    "2^18, 15 epochs, lazy, T_max 15": {**WIDE, "resnet.epochs": 15, "resnet.cosine_t_max": 15},
    "2^18, 10 epochs, lazy, dropout 0.3": {**WIDE, "resnet.epochs": 10, "resnet.dropout": 0.3},
    "2^18, 10 epochs, lazy, lr 0.002": {**WIDE, "resnet.epochs": 10, "lr": 0.002},
    "2^18, 10 epochs, lazy, counts": {**WIDE, "resnet.epochs": 10, "vectorize.binary": False},
    "2^18, 10 epochs, lazy, weight decay 0.05": {**WIDE, "resnet.epochs": 10, "resnet.weight_decay": 0.05},
}


def repo_params_raw() -> dict:
    return yaml.safe_load((harness.REPO / "params.yaml").read_text(encoding="utf-8"))


def preset_overrides() -> dict[str, object]:
    return yaml.safe_load(PRESET.read_text(encoding="utf-8"))["overrides"]


# ------------------------------------------------------------------------------------------
# split
# ------------------------------------------------------------------------------------------


def split(workdir: Path) -> None:
    if not SAMPLE.exists():
        raise SystemExit(f"{SAMPLE}: not found (real data lives outside the project, in ../shared/data)")
    frame = pd.read_parquet(SAMPLE)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(frame))
    source = workdir / "source"
    source.mkdir(parents=True, exist_ok=True)
    frame.iloc[np.sort(order[TEST_ROWS:])].to_parquet(source / "train.parquet", index=False)
    frame.iloc[np.sort(order[:TEST_ROWS])].to_parquet(source / "test.parquet", index=False)
    print(f"{source}: train.parquet {len(frame) - TEST_ROWS:,} rows, test.parquet {TEST_ROWS:,} rows "
          f"(seed {SPLIT_SEED})")


# ------------------------------------------------------------------------------------------
# sweep (train rows only)
# ------------------------------------------------------------------------------------------


def tuning_splits(workdir: Path, raw: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pipeline's validation carve of train.parquet (test.parquet is never read here)."""
    train = pd.read_parquet(workdir / "source" / "train.parquet")
    params = params_from_dict(raw)
    # arrange_splits needs a test split to choose the carve; a one-row stand-in, discarded
    splits, _ = arrange_splits({"train": train, "test": train.iloc[:1]}, source="tuning", seed=params.data.seed,
                               validation_fraction=params.data.validation_fraction,
                               test_fraction=params.data.test_fraction)
    return splits["train"], splits["validation"]


def validation_mae(raw: dict, train: pd.DataFrame, validation: pd.DataFrame, cache: dict) -> tuple[float, int, float]:
    """(best validation MAE, its epoch, seconds) of the residual network under ``raw``."""
    params = params_from_dict(raw)
    settings = VectorizerSettings.from_params(params.vectorize.model_dump())
    if settings not in cache:
        cache.clear()  # one width in memory at a time
        cache[settings] = tuple(vectorize_texts(frame[settings.text_field].tolist(), settings, n_jobs=1)
                                for frame in (train, validation))
    train_x, validation_x = cache[settings]
    train_prices, validation_prices = train["price"].to_numpy(np.float64), validation["price"].to_numpy(np.float64)
    target = TargetTransform.fit(target_kind(params, "resnet"), train_prices)
    torch.manual_seed(params.seed)
    model = build_model(architecture(params, "resnet", settings.n_features))
    started = time.perf_counter()
    result = fit(model, CSRTensors.from_scipy(train_x, target.encode(train_prices)),
                 CSRTensors.from_scipy(validation_x, target.encode(validation_prices)), validation_prices, target,
                 recipe(params, "resnet"), device=torch.device("cpu"), model_name="resnet")
    return result.best_val_mae, result.best_epoch, time.perf_counter() - started


def sweep(workdir: Path, names: list[str] | None) -> None:
    base = repo_params_raw()
    configs = {**SWEEP, "preset": preset_overrides()} if PRESET.exists() else dict(SWEEP)
    chosen = {name: configs[name] for name in (names or configs)}
    train, validation = tuning_splits(workdir, base)
    print(f"tuning on {len(train):,} train / {len(validation):,} validation rows (test rows not read)")
    cache: dict = {}
    results = {}
    log_path = workdir / "sweep.jsonl"
    for name, overrides in sorted(chosen.items(), key=lambda item: int(item[1].get("vectorize.n_features", 5000))):
        mae, epoch, seconds = validation_mae(with_overrides(base, overrides), train, validation, cache)
        results[name] = {"overrides": overrides, "val_mae": mae, "best_epoch": epoch, "seconds": seconds}
        print(f"  {name:40s} val MAE ${mae:6.2f} (epoch {epoch:2d}, {seconds:5.0f} s)  {overrides}", flush=True)
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({name: results[name]}) + "\n")
    harness.write_results("real_products_sweep", {"train_rows": len(train), "validation_rows": len(validation),
                                                  "results": results})


# ------------------------------------------------------------------------------------------
# final: the real stages, default vs preset, on the held-out test rows
# ------------------------------------------------------------------------------------------

STAGES = (["stages/fetch.py"], ["stages/vectorize.py"], ["stages/train.py", "mlp"], ["stages/train.py", "resnet"],
          ["stages/ensemble.py"], ["stages/evaluate.py"])
MODELS = ("mlp", "resnet", "ensemble")


def run_pipeline(project: Path, raw: dict) -> pd.DataFrame:
    """The five stages in a scratch project; the evaluate stage's per-item test predictions."""
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(harness.REPO / "stages", project / "stages")
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(harness.REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "CI": "1"}
    for command in STAGES:
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, *command], cwd=project, env=env, capture_output=True, text=True)
        if completed.returncode:
            raise SystemExit(f"{project.name}: {' '.join(command)} failed:\n{completed.stderr[-3000:]}")
        print(f"    {' '.join(command):28s} {time.perf_counter() - started:6.1f} s", flush=True)
    return pd.read_csv(project / "metrics" / "predictions.csv")


def bootstrap_mae(actual: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict[str, list[float]]:
    """95% percentile intervals of MAE(first), MAE(second) and MAE(second) - MAE(first), from
    the same seeded resamples of the test items (so the difference is paired)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples = rng.integers(0, len(actual), size=(RESAMPLES, len(actual)))
    errors_first, errors_second = np.abs(first - actual), np.abs(second - actual)
    mae_first, mae_second = errors_first[samples].mean(axis=1), errors_second[samples].mean(axis=1)

    def interval(values: np.ndarray) -> list[float]:
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    return {"first": interval(mae_first), "second": interval(mae_second),
            "difference": interval(mae_second - mae_first)}


def final(workdir: Path, threads: int | None, reuse: bool) -> None:
    base = with_overrides(repo_params_raw(), {"data.source": str(workdir / "source"), "tracking.enabled": False,
                                              "train.progress": False})
    if threads is not None:
        base["train"]["threads"] = threads
    runs = {"default": base, "preset": with_overrides(base, preset_overrides())}
    predictions = {}
    for name, raw in runs.items():
        print(f"  {name}: {json.dumps(preset_overrides()) if name == 'preset' else 'params.yaml'}", flush=True)
        project = workdir / f"project-{name}"
        kept = project / "metrics" / "predictions.csv"
        if reuse and kept.exists() and yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8")) == raw:
            predictions[name] = pd.read_csv(kept)  # the same params already ran to the end
        else:
            predictions[name] = run_pipeline(project, raw)
    default, preset = predictions["default"], predictions["preset"]
    if not default["id"].equals(preset["id"]):
        raise SystemExit("the two runs priced different test items")
    actual = default["price"].to_numpy(np.float64)
    out = {"test_items": len(actual)}
    print(f"\ntest MAE on {len(actual):,} held-out real products (95% bootstrap interval, {RESAMPLES:,} resamples)")
    for model in MODELS:
        first, second = default[model].to_numpy(np.float64), preset[model].to_numpy(np.float64)
        intervals = bootstrap_mae(actual, first, second)
        mae_first, mae_second = float(np.mean(np.abs(first - actual))), float(np.mean(np.abs(second - actual)))
        out[model] = {"default": mae_first, "preset": mae_second, "difference": mae_second - mae_first, **intervals}
        low, high = intervals["difference"]
        print(f"  {model:6s} default ${mae_first:6.2f} [{intervals['first'][0]:.2f}, {intervals['first'][1]:.2f}]   "
              f"preset ${mae_second:6.2f} [{intervals['second'][0]:.2f}, {intervals['second'][1]:.2f}]   "
              f"paired difference {mae_second - mae_first:+.2f} [{low:+.2f}, {high:+.2f}]")
    print(f"\nranges and the ensemble ({RESAMPLES:,} paired resamples, seed {BOOTSTRAP_SEED})")
    for name, frame in predictions.items():
        figures = {model: json.loads((workdir / f"project-{name}" / "metrics" / f"{model}.json").read_text("utf-8"))
                   for model in MODELS}
        best = min(("mlp", "resnet"), key=lambda model: figures[model]["test_mae"])
        paired = paired_difference(actual, frame["ensemble"].to_numpy(np.float64), frame[best].to_numpy(np.float64),
                                   resamples=RESAMPLES, seed=BOOTSTRAP_SEED)
        out[f"ranges_{name}"] = {model: {key: figures[model][key] for key in
                                         ("interval_level", "test_interval_coverage", "test_interval_width_median")}
                                 for model in MODELS}
        out[f"ensemble_vs_best_{name}"] = {"best": best, "difference": paired.diff, "low": paired.low,
                                           "high": paired.high, "verdict": paired.verdict}
        coverages = ", ".join(f"{model} {figures[model]['test_interval_coverage']:.3f} "
                              f"(median width ${figures[model]['test_interval_width_median']:.2f})" for model in MODELS)
        print(f"  {name}: coverage of the {figures['mlp']['interval_level']:.0%} ranges: {coverages}")
        print(f"  {name}: ensemble ${figures['ensemble']['test_mae']:.2f} - {best} ${figures[best]['test_mae']:.2f} "
              f"= {paired.diff:+.2f} [{paired.low:+.2f}, {paired.high:+.2f}]: {paired.verdict}")
    bands = {name: pd.read_csv(workdir / f"project-{name}" / "metrics" / "bands.csv").to_dict("records")
             for name in runs}
    out["bands"] = bands
    baselines = json.loads((workdir / "project-default" / "metrics" / "baselines.json").read_text(encoding="utf-8"))
    print(f"  train-median baseline ${baselines['train_median_test_mae']:.2f}")
    harness.write_results("real_products_final", {"preset": preset_overrides(), "baselines": baselines, **out})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["split", "sweep", "final"])
    parser.add_argument("--workdir", type=Path, required=True, help="scratch directory outside the project")
    parser.add_argument("--configs", nargs="*", help="sweep: only these named configurations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="final: reuse a finished run with the same params")
    args = parser.parse_args()
    harness.set_threads(args.threads)
    if args.workdir.resolve().is_relative_to(harness.REPO):
        raise SystemExit(f"{args.workdir}: inside the project; real data must stay out of it")
    if args.step == "split":
        split(args.workdir)
    elif args.step == "sweep":
        sweep(args.workdir, args.configs)
    else:
        final(args.workdir, args.threads, args.reuse)


if __name__ == "__main__":
    main()
