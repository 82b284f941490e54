"""Benchmark 6: what an epoch costs as the hashed vocabulary grows (issue 14).

Both models' ``training.fit`` for one epoch on the same embedded-catalogue rows, hashed at
5,000, 2^16 and 2^18 features, with the same torch threads, in one process: the SGD MLP (its
default recipe: sparse first-layer gradients), the residual network with dense AdamW (the
default, ``resnet.input_optimizer: dense``) and with the lazy row-sparse AdamW (``lazy``).
An epoch here is the whole ``fit`` call: the training pass, the validation pass and the
keep-best copy of the weights; the model's initialisation and a per-epoch checkpoint write are
timed apart. Runs are interleaved (every configuration once, then again, ...) so that load from
other processes hits them all; with 1 thread the headline is CPU seconds of this process (the
machine is shared), the best of the repeats. Ratios are against the same model at 5,000
features; the lazy residual network is also compared with the default (dense) one at 5,000.
Goal: every ratio at 2^16 and 2^18 <= 1.5 for the default MLP and the lazy residual network.

``--memory`` also measures peak RSS (kernel ``ru_maxrss``) of one training epoch with a
checkpoint, in a fresh process per configuration that loads features hashed beforehand, at two
row counts, and projects the train stage's peak at 800,000 rows linearly from the measured
per-row cost (the per-weight cost is the difference between 5,000 and 2^18 features).

    .venv/bin/python benchmarks/wide_vocab.py                       # 10,000 rows, 3 repeats
    .venv/bin/python benchmarks/wide_vocab.py --rows 20000 --repeats 5 --memory
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np
import psutil
import scipy.sparse as sp
import torch

from pricer.batching import CSRTensors
from pricer.features import vectorize_texts
from pricer.models import build_model
from pricer.target import TargetTransform
from pricer.training import fit
from pricer.training.checkpoint import save_checkpoint

GOAL = 1.5
WIDTHS = (5000, 2**16, 2**18)
CONFIGS = {"mlp": ("mlp", "dense"), "resnet dense": ("resnet", "dense"), "resnet lazy": ("resnet", "lazy")}
FULL_ROWS = 800_000


def training_inputs(params, kind: str, input_optimizer: str, width: int):
    arch, recipe = harness.model_and_recipe(params, kind, width)
    recipe = dataclasses.replace(recipe, epochs=1)
    if kind == "resnet":
        recipe = dataclasses.replace(recipe, input_optimizer=input_optimizer)
    return arch, recipe


def one_epoch(params, kind: str, input_optimizer: str, width: int, train, validation,
              checkpoint: Path | None = None) -> dict[str, float]:
    """Seconds (wall and CPU) to initialise the model and to run one epoch of ``fit``."""
    arch, recipe = training_inputs(params, kind, input_optimizer, width)
    target = TargetTransform.fit("standardized_log", train.prices)
    train_data = CSRTensors.from_scipy(train.features[width], target.encode(train.prices))
    validation_data = CSRTensors.from_scipy(validation.features[width], target.encode(validation.prices))
    cpu, wall = time.process_time(), time.perf_counter()
    torch.manual_seed(0)
    model = build_model(arch)
    init = {"init_cpu": time.process_time() - cpu, "init_wall": time.perf_counter() - wall}
    cpu, wall = time.process_time(), time.perf_counter()
    fit(model, train_data, validation_data, validation.prices, target, recipe, device=torch.device("cpu"),
        model_name=kind, checkpoint_path=checkpoint)
    return {**init, "epoch_cpu": time.process_time() - cpu, "epoch_wall": time.perf_counter() - wall}


def checkpoint_seconds(params, kind: str, input_optimizer: str, width: int, directory: Path) -> float:
    """Wall seconds of the per-epoch checkpoint write: weights, optimizer state, best weights."""
    arch, recipe = training_inputs(params, kind, input_optimizer, width)
    model = build_model(arch)
    moments = 0 if kind == "mlp" else 2  # SGD keeps no state; AdamW two moments (dense or lazy)
    state = {"model": model.state_dict(), "best_model": model.state_dict(),
             "optimizer": [torch.zeros_like(p) for p in model.parameters() for _ in range(moments)]}
    started = time.perf_counter()
    save_checkpoint(directory / f"{kind}-{width}.pt", state)
    return time.perf_counter() - started


def hashed(texts: list[str], params) -> dict[int, object]:
    settings = harness.settings_of(params)
    return {width: vectorize_texts(texts, dataclasses.replace(settings, n_features=width), n_jobs=1)
            for width in WIDTHS}


def timing(args: argparse.Namespace, params) -> dict:
    splits = harness.catalogue_splits({"train": args.rows, "validation": args.validation}, args.seed)
    for split in splits.values():
        split.features = hashed(split.texts, params)
    nnz = splits["train"].features[5000].nnz / args.rows
    print(f"{args.rows:,} train rows ({nnz:.1f} non-zeros per row), {args.validation:,} validation rows, "
          f"{args.repeats} interleaved repeats, {args.threads} thread(s)")
    runs = {(name, width): (lambda kind=kind, optimizer=optimizer, width=width:
                            one_epoch(params, kind, optimizer, width, splits["train"], splits["validation"]))
            for name, (kind, optimizer) in CONFIGS.items() for width in WIDTHS}
    for run in runs.values():  # warm-up: first-touch allocations, lazy imports
        run()
        break
    measured = harness.interleave(runs, args.repeats)
    clock = "epoch_cpu" if args.threads == 1 else "epoch_wall"
    best = {key: min(m[clock] for m in values) for key, values in measured.items()}
    print(f"\nbest {clock.replace('epoch_', '')} seconds per epoch (median in brackets); ratio to 5,000 features")
    print(f"  {'configuration':14s} " + "".join(f"{width:>22,d}" for width in WIDTHS))
    for name in CONFIGS:
        cells = []
        for width in WIDTHS:
            values = [m[clock] for m in measured[(name, width)]]
            cells.append(f"{best[(name, width)]:7.2f} ({np.median(values):5.2f}) "
                         f"{best[(name, width)] / best[(name, 5000)]:4.2f}x")
        print(f"  {name:14s} " + "".join(f"{cell:>22s}" for cell in cells))
    verdicts = {}
    for name, reference in (("mlp", "mlp"), ("resnet lazy", "resnet lazy"), ("resnet lazy", "resnet dense")):
        for width in WIDTHS[1:]:
            ratio = best[(name, width)] / best[(reference, 5000)]
            verdicts[f"{name} {width} / {reference} 5000"] = ratio
            print(f"  {name} at {width:,} vs {reference} at 5,000: {ratio:.2f}x   goal <= {GOAL}: "
                  f"{'MET' if ratio <= GOAL else 'NOT MET'}")
    init = {f"{name} {width}": min(m["init_wall"] for m in measured[(name, width)])
            for name in CONFIGS for width in WIDTHS}
    print("  model initialisation, wall s: " + ", ".join(f"{key} {value:.2f}" for key, value in init.items()
                                                         if not key.startswith("resnet lazy")))
    with tempfile.TemporaryDirectory() as scratch:
        writes = {f"{name} {width}": checkpoint_seconds(params, *CONFIGS[name], width, Path(scratch))
                  for name in ("mlp", "resnet lazy") for width in WIDTHS}
    print("  per-epoch checkpoint write, wall s: " + ", ".join(f"{k} {v:.2f}" for k, v in writes.items()))
    return {"rows": args.rows, "nnz_per_row": nnz, "clock": clock,
            "best": {f"{k[0]} {k[1]}": v for k, v in best.items()},
            "all": {f"{k[0]} {k[1]}": v for k, v in measured.items()}, "ratios": verdicts, "init_wall": init,
            "checkpoint_write_wall": writes}


def memory_probe(args: argparse.Namespace) -> None:
    """(child process) one epoch with a checkpoint on features the parent hashed; print the
    process's peak RSS and its RSS before the model existed, in bytes."""
    harness.set_threads(args.threads)
    params = harness.load_repo_params()
    kind, optimizer = CONFIGS[args.probe_config]
    splits = {}
    for name in ("train", "validation"):
        split = harness.Split([], np.load(args.probe_data / f"{name}-prices.npy"))
        split.features = {args.probe_width: sp.load_npz(args.probe_data / f"{name}-{args.probe_width}.npz")}
        splits[name] = split
    before = psutil.Process().memory_info().rss
    with tempfile.TemporaryDirectory() as scratch:
        one_epoch(params, kind, optimizer, args.probe_width, splits["train"], splits["validation"],
                  checkpoint=Path(scratch) / "checkpoint.pt")
    print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "before": before}))


def peak_rss(args: argparse.Namespace, config: str, width: int, data: Path) -> float:
    command = [sys.executable, __file__, "--probe-config", config, "--probe-width", str(width),
               "--probe-data", str(data), "--threads", str(args.threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss"]


def probe_data(args: argparse.Namespace, params, rows: int, directory: Path) -> Path:
    """Hashed train/validation features written for the probes (so that generating the
    catalogue, whose own peak is ~1.9 GB, is not part of what they measure)."""
    directory.mkdir(parents=True)
    splits = harness.catalogue_splits({"train": rows, "validation": args.validation}, args.seed)
    for name, split in splits.items():
        np.save(directory / f"{name}-prices.npy", split.prices)
        for width in (5000, 2**18):
            settings = dataclasses.replace(harness.settings_of(params), n_features=width)
            sp.save_npz(directory / f"{name}-{width}.npz", vectorize_texts(split.texts, settings, n_jobs=1))
    return directory


def memory(args: argparse.Namespace, params) -> dict:
    """Peak RSS at (rows, 5000), (rows, 2^18), (4 x rows, 2^18); projected to 800,000 rows."""
    few, many = args.memory_rows, 4 * args.memory_rows
    out = {}
    print(f"\npeak RSS of one training epoch with a checkpoint (fresh process each), GB; "
          f"projection to {FULL_ROWS:,} rows")
    with tempfile.TemporaryDirectory() as scratch:
        data_few = probe_data(args, params, few, Path(scratch) / "few")
        data_many = probe_data(args, params, many, Path(scratch) / "many")
        for name in ("mlp", "resnet lazy", "resnet dense"):
            narrow, wide, wide_many = (peak_rss(args, name, width, data) for width, data in
                                       ((5000, data_few), (2**18, data_few), (2**18, data_many)))
            per_row = (wide_many - wide) / (many - few)
            projected = wide_many + per_row * (FULL_ROWS - many)
            out[name] = {"narrow": narrow, "wide": wide, "wide_many": wide_many, "per_row_bytes": per_row,
                         "width_cost": wide - narrow, "projected_800k_2e18": projected}
            print(f"  {name:13s} {few:,} rows: 5,000 {narrow / 1e9:.2f}, 2^18 {wide / 1e9:.2f} "
                  f"(+{(wide - narrow) / 1e9:.2f} for the width); {many:,} rows, 2^18: {wide_many / 1e9:.2f}; "
                  f"{per_row:,.0f} B per row -> {projected / 1e9:.2f} GB at {FULL_ROWS:,} rows   "
                  f"goal <= 4: {'MET' if projected <= 4e9 else 'NOT MET'}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="training rows (default 10,000)")
    parser.add_argument("--validation", type=int, default=1_000, help="validation rows (default 1,000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory", action="store_true", help="also measure and project peak memory")
    parser.add_argument("--memory-rows", type=int, default=20_000, help="rows of the smaller memory probe")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--probe-config", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--probe-width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe-data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_config:
        memory_probe(args)
        return
    info = harness.machine()
    harness.print_machine(info, [args.threads])
    harness.set_threads(args.threads)
    params = harness.load_repo_params()
    payload: dict = {"machine": info, "threads": args.threads}
    if not args.skip_timing:
        payload["timing"] = timing(args, params)
    if args.memory:
        payload["memory"] = memory(args, params)
    harness.write_results("wide_vocab", payload)


if __name__ == "__main__":
    main()
