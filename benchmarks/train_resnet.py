"""Benchmark 2: residual network training throughput (params.yaml width), and bf16 autocast.

Part 1, like train_mlp.py: the real resnet recipe from params.yaml (AdamW lr/weight decay,
L1 loss, batch 64, gradient clipping, cosine schedule, dropout) on embedded-catalogue items;
the seed's dense reference (whole matrix densified, TensorDataset + DataLoader, the default
for-loop AdamW) against pricer's ``training.fit``, same initial weights, same threads.
Goal: pricer >= 1.5x the reference's samples/s.

Part 2: pricer's ``fit`` with ``Recipe(precision="bf16")`` (torch.autocast on the CPU) against
fp32: samples/s and validation MAE after a short training (default 2 epochs on 20,000 items),
same seed and initial weights. The CPU's bf16 support (avx512_bf16 / amx_bf16 flags) is printed.

    .venv/bin/python benchmarks/train_resnet.py
    .venv/bin/python benchmarks/train_resnet.py --items 50000 --threads 2 --skip-bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import harness
import numpy as np
import torch

from pricer.batching import CSRTensors
from pricer.models import build_model, count_parameters
from pricer.target import TargetTransform
from pricer.training import fit

GOAL = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000, help="training rows (default 20,000)")
    parser.add_argument("--val-items", type=int, default=2_000, help="validation rows")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed runs per side")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to run")
    parser.add_argument("--bf16-epochs", type=int, default=2, help="epochs of the fp32 vs bf16 comparison")
    parser.add_argument("--skip-bf16", action="store_true", help="only the throughput comparison")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    info, params, settings, splits = harness.setup(
        args.threads, {"train": args.items, "validation": args.val_items}, args.seed)
    flags = harness.cpu_flags()
    bf16_hw = {flag: flag in flags for flag in ("avx512_bf16", "amx_bf16", "amx_tile")}
    print("bf16 hardware: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in bf16_hw.items()))
    train, val = splits["train"], splits["validation"]
    arch, recipe = harness.model_and_recipe(params, "resnet", settings.n_features)
    recipe = dataclasses.replace(recipe, epochs=args.epochs, seed=args.seed)
    target = TargetTransform.fit("standardized_log", train.prices)
    train_y, val_y = target.encode(train.prices), target.encode(val.prices)
    torch.manual_seed(args.seed)
    initial = build_model(arch).state_dict()
    print(f"data: {args.items:,} train / {args.val_items:,} validation items, {settings.n_features} features")
    print(f"model: resnet hidden {arch['hidden']} layers {arch['layers']} dropout {arch['dropout']}, "
          f"{count_parameters(build_model(arch)):,} parameters; recipe {recipe.optimizer} lr {recipe.lr} "
          f"wd {recipe.weight_decay} {recipe.loss} batch {recipe.batch_size} clip {recipe.grad_clip} "
          f"cosine T_max {recipe.cosine_t_max}")

    dense_x = harness.densify(train.features)
    dense_y = torch.from_numpy(train_y)
    train_t = CSRTensors.from_scipy(train.features, train_y)
    val_t = CSRTensors.from_scipy(val.features, val_y)
    cpu = torch.device("cpu")

    def fresh_model() -> torch.nn.Module:
        model = build_model(arch)
        model.load_state_dict(initial)
        return model

    def reference() -> float:
        samples, seconds = harness.dense_reference_train(fresh_model(), dense_x, dense_y, recipe,
                                                        epochs=args.epochs, seed=args.seed)
        return samples / seconds

    def pricer_fit(run_recipe=recipe) -> float:
        started = time.perf_counter()
        fit(fresh_model(), train_t, val_t, val.prices, target, run_recipe, device=cpu, model_name="resnet")
        return args.items * run_recipe.epochs / (time.perf_counter() - started)

    payload = {"machine": info, "args": vars(args), "bf16_hardware": bf16_hw, "goal": GOAL, "by_threads": {}}
    for threads in args.threads:
        harness.set_threads(threads)
        harness.dense_reference_train(fresh_model(), dense_x, dense_y, recipe, max_steps=10, seed=args.seed)
        fit(fresh_model(), train_t.take_rows(np.arange(min(1024, train_t.rows))), val_t, val.prices, target,
            dataclasses.replace(recipe, epochs=1), device=cpu, model_name="warm-up")
        ref, new, ratios = harness.compare_side_by_side(
            "residual network training throughput", {"reference": reference, "pricer": pricer_fit}, args.repeats,
            args.items * args.epochs, ("dense reference (DataLoader)", "pricer fit (sparse CSR batches)"),
            "samples/s", GOAL, threads)
        entry = {"reference": ref.as_dict(), "pricer": new.as_dict(), **ratios,
                 "ms_per_step_best": {"reference": 1e3 * recipe.batch_size / ref.best,
                                      "pricer": 1e3 * recipe.batch_size / new.best}}

        if not args.skip_bf16:
            entry["bf16"] = bf16_study(args, recipe, fresh_model, train_t, val_t, val.prices, target, cpu)
        payload["by_threads"][str(threads)] = entry
    harness.write_results("train_resnet", payload)


def bf16_study(args, recipe, fresh_model, train_t, val_t, val_prices, target, cpu) -> dict:
    """fp32 vs bf16 autocast: speed and validation MAE after the same short training."""
    out = {}
    for precision in ("fp32", "bf16"):
        run_recipe = dataclasses.replace(recipe, epochs=args.bf16_epochs, precision=precision, keep_best=False)
        started = time.perf_counter()
        result = fit(fresh_model(), train_t, val_t, val_prices, target, run_recipe, device=cpu, model_name=precision)
        seconds = time.perf_counter() - started
        out[precision] = {
            "samples_per_s": train_t.rows * args.bf16_epochs / seconds,
            "val_mae_per_epoch": [r.val_mae for r in result.history],
            "epoch_seconds": [r.seconds for r in result.history],
        }
    fp32, bf16 = out["fp32"], out["bf16"]
    print(f"  bf16 autocast vs fp32 ({args.bf16_epochs} epochs on {train_t.rows:,} items, one run each):")
    for name, row in out.items():
        maes = ", ".join(f"${m:.2f}" for m in row["val_mae_per_epoch"])
        print(f"    {name}: {harness.fmt(row['samples_per_s'])} samples/s, validation MAE per epoch {maes}")
    speed = bf16["samples_per_s"] / fp32["samples_per_s"]
    delta = bf16["val_mae_per_epoch"][-1] - fp32["val_mae_per_epoch"][-1]
    print(f"    bf16 speed {speed:.2f}x fp32; final validation MAE {delta:+.2f} $ vs fp32")
    out["speed_ratio"], out["final_mae_delta"] = speed, delta
    return out


if __name__ == "__main__":
    main()
