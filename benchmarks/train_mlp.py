"""Benchmark 1: SGD MLP training throughput, pricer's sparse path vs the seed's dense reference.

The real recipe from params.yaml (mlp.*: SGD lr 0.01, MSE, batch 64, standardized log target,
the 8-layer MLP) on embedded-catalogue items hashed to 5000 features. The reference densifies
the whole training matrix (``torch.FloatTensor(X.toarray())``, 1 GB at 50,000 x 5000) and
trains through ``TensorDataset`` + ``DataLoader(batch_size=64, shuffle=True)``; pricer runs its
real ``training.fit`` (per-epoch row permutation, CSR slices, embedding_bag first layer,
per-epoch validation included in the time). Both start from the same weights, with the same
torch thread count. Goal: pricer >= 5x the reference's samples/s.

    .venv/bin/python benchmarks/train_mlp.py                 # 50,000 items, threads 1 and 2
    .venv/bin/python benchmarks/train_mlp.py --items 100000 --threads 2 --repeats 5
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

GOAL = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000, help="training rows (default 50,000)")
    parser.add_argument("--val-items", type=int, default=2_000, help="validation rows for fit's per-epoch pass")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run, both sides")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed runs per side")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to run")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    info, params, settings, splits = harness.setup(
        args.threads, {"train": args.items, "validation": args.val_items}, args.seed)
    train, val = splits["train"], splits["validation"]
    arch, recipe = harness.model_and_recipe(params, "mlp", settings.n_features)
    recipe = dataclasses.replace(recipe, epochs=args.epochs, seed=args.seed)
    target = TargetTransform.fit(params.mlp.target, train.prices)
    train_y, val_y = target.encode(train.prices), target.encode(val.prices)

    torch.manual_seed(args.seed)
    initial = build_model(arch).state_dict()
    print(f"data: {args.items:,} train / {args.val_items:,} validation items, {settings.n_features} features, "
          f"{train.features.nnz / args.items:.1f} non-zeros per row")
    print(f"model: {arch['kind']} {arch['hidden_layers']}, {count_parameters(build_model(arch)):,} parameters; "
          f"recipe {recipe.optimizer} lr {recipe.lr} {recipe.loss} batch {recipe.batch_size}, "
          f"target {params.mlp.target}, {args.epochs} epoch(s) per run")

    started = time.perf_counter()
    dense_x = harness.densify(train.features)
    densify_s = time.perf_counter() - started
    dense_y = torch.from_numpy(train_y)
    dense_val = harness.densify(val.features)
    print(f"reference: densified {tuple(dense_x.shape)} float32 = {dense_x.numel() * 4 / 2**30:.2f} GiB "
          f"in {densify_s:.2f}s (not in its throughput)")
    train_t = CSRTensors.from_scipy(train.features, train_y)
    val_t = CSRTensors.from_scipy(val.features, val_y)
    cpu = torch.device("cpu")
    val_mae: dict[str, float] = {}

    def fresh_model() -> torch.nn.Module:
        model = build_model(arch)
        model.load_state_dict(initial)
        return model

    def reference() -> float:
        model = fresh_model()
        samples, seconds = harness.dense_reference_train(model, dense_x, dense_y, recipe, epochs=args.epochs,
                                                        seed=args.seed)
        with torch.no_grad():
            val_mae["reference"] = float(np.mean(np.abs(target.decode(model.eval()(dense_val)) - val.prices)))
        return samples / seconds

    def pricer_fit() -> float:
        model = fresh_model()
        started = time.perf_counter()
        result = fit(model, train_t, val_t, val.prices, target, recipe, device=cpu, model_name="mlp")
        seconds = time.perf_counter() - started
        val_mae["pricer"] = result.history[-1].val_mae
        return args.items * args.epochs / seconds

    payload = {"machine": info, "args": vars(args), "densify_seconds": densify_s,
               "dense_matrix_gib": dense_x.numel() * 4 / 2**30, "goal": GOAL, "by_threads": {}}
    for threads in args.threads:
        harness.set_threads(threads)
        # warm-up: first-call costs (optimizer lazy imports, allocator) are not throughput
        harness.dense_reference_train(fresh_model(), dense_x, dense_y, recipe, max_steps=20, seed=args.seed)
        fit(fresh_model(), train_t.take_rows(np.arange(min(2048, train_t.rows))), val_t, val.prices, target,
            dataclasses.replace(recipe, epochs=1), device=cpu, model_name="warm-up")
        ref, new, ratios = harness.compare_side_by_side(
            "SGD MLP training throughput", {"reference": reference, "pricer": pricer_fit}, args.repeats,
            args.items * args.epochs, ("dense reference (DataLoader)", "pricer fit (sparse CSR batches)"),
            "samples/s", GOAL, threads)
        print(f"  validation MAE after {args.epochs} epoch(s) (sanity, last run): "
              f"reference ${val_mae['reference']:.2f}, "
              f"pricer ${val_mae['pricer']:.2f}")
        payload["by_threads"][str(threads)] = {
            "reference": ref.as_dict(), "pricer": new.as_dict(), **ratios,
            "val_mae_last_run": dict(val_mae),
            "ms_per_step_best": {"reference": 1e3 * recipe.batch_size / ref.best,
                                 "pricer": 1e3 * recipe.batch_size / new.best},
        }
    harness.write_results("train_mlp", payload)


if __name__ == "__main__":
    main()
