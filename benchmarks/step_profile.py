"""Where a training step's time goes, for both models, pricer's path and the dense reference.

Per-step times (best of several interleaved passes over the same batches, microseconds):

* ``empty loop``: pricer's batch iteration alone (CSR slices), and the reference's
  ``DataLoader`` iteration alone (64 ``__getitem__`` calls + ``default_collate`` per batch);
* ``framework floor``: the same model and step with every width set to 1 - the same number of
  torch ops, autograd nodes and optimizer updates but almost no arithmetic: what Python,
  dispatch and autograd cost per step;
* ``forward``, ``+backward``, ``+optimizer`` cumulative on real batches, and the variants the
  engine chose between: dense vs sparse first-layer gradient (SGD), default vs foreach vs
  fused AdamW, and, with ``--compile``, ``torch.compile`` of the dense tail (compile time too);
* the dense reference's step on an already-collated batch.

Estimated FLOPs per step turn the times into GFLOP/s; the optimizer's bytes per step into GB/s.

    .venv/bin/python benchmarks/step_profile.py                      # both models, 1 thread
    .venv/bin/python benchmarks/step_profile.py --threads 2 --compile
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import harness
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pricer.batching import CSRTensors, epoch_order, iterate_batches
from pricer.models import SparseLinear, build_model
from pricer.target import TargetTransform
from pricer.training import make_optimizer


def clock() -> float:
    """CPU time with one torch thread (immune to other processes' load), else wall time."""
    return time.process_time() if torch.get_num_threads() == 1 else time.perf_counter()


def time_per_step(fn: Callable, batches: list, passes: int) -> float:
    """Best-of-``passes`` seconds per call of ``fn(*batch)`` over ``batches``."""
    for batch in batches[:10]:
        fn(*batch)
    best = float("inf")
    for _ in range(passes):
        started = clock()
        for batch in batches:
            fn(*batch)
        best = min(best, (clock() - started) / len(batches))
    return best


def linear_flops(model: nn.Module, rows: int, nnz: float) -> tuple[float, float]:
    """(sparse-path, dense-path) FLOPs of one training step: forward + backward (2x forward
    for hidden layers: grad input and grad weight; the first layer needs only grad weight)."""
    sparse = dense = 0.0
    for module in model.modules():
        if isinstance(module, SparseLinear):
            sparse += 2 * 2 * nnz * module.out_features  # gather-sum forward, scatter backward
            dense += 2 * 2 * rows * module.in_features * module.out_features
        elif isinstance(module, nn.Linear):
            flops = 3 * 2 * rows * module.in_features * module.out_features
            sparse += flops
            dense += flops
    return sparse, dense


def profile_model(kind: str, params, settings, train, args, report: dict) -> None:
    arch, recipe = harness.model_and_recipe(params, kind, settings.n_features)
    target = TargetTransform.fit("standardized_log", train.prices)
    y = target.encode(train.prices)
    data = CSRTensors.from_scipy(train.features, y).take_rows(epoch_order(train.features.shape[0], 42, 1))
    rows = recipe.batch_size
    batches = [(b, t) for b, t in iterate_batches(data, rows)][: args.steps]
    dense_x = harness.densify(train.features[: rows * args.steps])
    dense_y = torch.from_numpy(y[: rows * args.steps])
    dense_batches = [(dense_x[i : i + rows], dense_y[i : i + rows]) for i in range(0, len(dense_y), rows)]
    loss_fn = {"mse": F.mse_loss, "l1": F.l1_loss}[recipe.loss]
    torch.manual_seed(0)
    base = build_model(arch)
    nnz = float(np.mean([len(b.indices) for b, _ in batches]))
    sparse_flops, dense_flops = linear_flops(base, rows, nnz)
    weights = sum(p.numel() for p in base.parameters())
    times: dict[str, float] = {}

    def step_fn(model, optimizer, *, backward=True, update=True):
        def step(batch, targets):
            loss = loss_fn(model(batch), targets)
            if backward:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            if update:
                optimizer.step()
        return step

    def pricer_variant(sparse_gradient: bool, optimizer_kwargs: dict | None = None, *, tail=None):
        model = copy.deepcopy(base)
        model.input.sparse_gradient = sparse_gradient
        if tail == "compile":
            model.body = torch.compile(model.body) if kind == "mlp" else model.body
            if kind == "resnet":
                model.blocks = torch.compile(model.blocks)
        if optimizer_kwargs is None:
            optimizer = make_optimizer(model, recipe)
        else:
            cls = torch.optim.SGD if recipe.optimizer == "sgd" else torch.optim.AdamW
            extra = {} if recipe.optimizer == "sgd" else {"weight_decay": recipe.weight_decay}
            optimizer = cls(model.parameters(), lr=recipe.lr, **extra, **optimizer_kwargs)
        return model, optimizer

    # 1. empty loops: the data path alone
    times["pricer: empty loop (CSR batch slices)"] = _iterate_cost(data, rows, args.steps, args.passes)
    times["reference: empty loop (DataLoader getitem+collate)"] = _loader_cost(dense_x, dense_y, rows, args.passes)

    # 2. framework floor: every width 1
    tiny_arch = dict(arch)
    if kind == "mlp":
        tiny_arch["hidden_layers"] = [1] * len(arch["hidden_layers"])
    else:
        tiny_arch["hidden"] = 1
    tiny = build_model(tiny_arch)
    tiny.input.sparse_gradient = recipe.optimizer == "sgd"
    tiny_opt = make_optimizer(tiny, recipe)
    times["framework floor: full step, all widths 1"] = time_per_step(step_fn(tiny, tiny_opt), batches, args.passes)

    # 3. pricer's step, cumulative, as the engine runs it
    sparse = recipe.optimizer == "sgd"
    model, optimizer = pricer_variant(sparse)
    times["pricer: forward"] = time_per_step(step_fn(model, optimizer, backward=False, update=False), batches,
                                             args.passes)
    times["pricer: forward+backward"] = time_per_step(step_fn(model, optimizer, update=False), batches, args.passes)
    model, optimizer = pricer_variant(sparse)
    times["pricer: full step (engine)"] = time_per_step(step_fn(model, optimizer), batches, args.passes)

    # 4. the alternatives measured for the engine
    if kind == "mlp":
        for label, kwargs in [("dense gradient, SGD default", {}), ("dense gradient, SGD foreach", {"foreach": True}),
                              ("dense gradient, SGD fused", {"fused": True})]:
            model, optimizer = pricer_variant(False, kwargs)
            times[f"pricer: full step, {label}"] = time_per_step(step_fn(model, optimizer), batches, args.passes)
        model, optimizer = pricer_variant(True, {"foreach": True})
        times["pricer: full step, sparse gradient, SGD foreach"] = time_per_step(step_fn(model, optimizer), batches,
                                                                                 args.passes)
    else:
        for label, kwargs in [("AdamW default (for-loop)", {}), ("AdamW foreach", {"foreach": True}),
                              ("AdamW fused", {"fused": True})]:
            model, optimizer = pricer_variant(False, kwargs)
            times[f"pricer: full step, {label}"] = time_per_step(step_fn(model, optimizer), batches, args.passes)
    if args.compile:
        started = time.perf_counter()
        model, optimizer = pricer_variant(sparse, tail="compile")
        step = step_fn(model, optimizer)
        step(*batches[0])
        report.setdefault("compile_seconds", {})[kind] = time.perf_counter() - started
        print(f"  ({kind}: torch.compile of the dense tail, first step incl. compilation: "
              f"{report['compile_seconds'][kind]:.1f}s)")
        times["pricer: full step, torch.compile dense tail"] = time_per_step(step, batches, args.passes)

    # 5. the reference's step on collated batches (its data path excluded), seed optimizer
    model = copy.deepcopy(base)
    optimizer = harness.seed_optimizer(model, recipe)
    times["reference: full step on a collated batch"] = time_per_step(step_fn(model, optimizer), dense_batches,
                                                                      args.passes)
    model = copy.deepcopy(base)
    optimizer = harness.seed_optimizer(model, recipe)
    times["reference: forward on a collated batch"] = time_per_step(
        step_fn(model, optimizer, backward=False, update=False), dense_batches, args.passes)

    print(f"\n{kind}: {weights:,} parameters, batch {rows}, {nnz:.0f} non-zeros per batch; "
          f"{'CPU' if torch.get_num_threads() == 1 else 'wall'} time per step, best of {args.passes}; "
          f"estimated {sparse_flops / 1e6:.1f} MFLOP/step sparse path, {dense_flops / 1e6:.1f} MFLOP/step dense path")
    for label, seconds in times.items():
        rate = ""
        if "full step" in label and "floor" not in label:
            flops = dense_flops if label.startswith("reference") else sparse_flops
            rate = f"{flops / seconds / 1e9:6.1f} GFLOP/s"
        print(f"  {label:58s} {seconds * 1e6:9.0f} us {rate}")
    if recipe.optimizer == "adamw":
        moved = weights * 4 * 7  # AdamW: read p, g, m, v; write p, m, v (float32)
        optimizer_s = times["pricer: full step (engine)"] - times["pricer: forward+backward"]
        print(f"  AdamW moves ~{moved / 1e6:.0f} MB per step; engine step minus forward+backward = "
              f"{optimizer_s * 1e6:.0f} us -> {moved / max(optimizer_s, 1e-9) / 1e9:.1f} GB/s")
    report[kind] = {"us_per_step": {k: v * 1e6 for k, v in times.items()}, "mflop_per_step_sparse": sparse_flops / 1e6,
                    "mflop_per_step_dense": dense_flops / 1e6, "nnz_per_batch": nnz, "parameters": weights}


def _iterate_cost(data: CSRTensors, rows: int, steps: int, passes: int) -> float:
    best = float("inf")
    for _ in range(passes):
        started = clock()
        count = 0
        for count, _batch in enumerate(iterate_batches(data, rows), start=1):
            if count >= steps:
                break
        best = min(best, (clock() - started) / count)
    return best


def _loader_cost(dense_x: torch.Tensor, dense_y: torch.Tensor, rows: int, passes: int) -> float:
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(dense_x, dense_y), batch_size=rows,
                                         shuffle=True)
    best = float("inf")
    for _ in range(passes):
        started = clock()
        count = sum(1 for _ in loader)
        best = min(best, (clock() - started) / count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "resnet"], choices=["mlp", "resnet"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=150, help="batches per timed pass")
    parser.add_argument("--passes", type=int, default=5, help="timed passes (best is kept)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the dense tail")
    args = parser.parse_args()

    info = harness.machine()
    harness.print_machine(info, [args.threads])
    harness.set_threads(args.threads)
    params = harness.load_repo_params()
    settings = harness.settings_of(params)
    splits = harness.catalogue_splits({"train": 64 * args.steps + 64}, 42)
    harness.hash_splits(splits, settings)
    report: dict = {}
    for kind in args.models:
        profile_model(kind, params, settings, splits["train"], args, report)
    harness.write_results(f"step_profile_t{args.threads}", {"machine": info, "args": vars(args), **report})


if __name__ == "__main__":
    main()
