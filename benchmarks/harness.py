"""What the benchmark scripts share: machine facts, the embedded-catalogue data, the seed's
dense reference, robust timing, and the JSON results file.

Every script compares pricer's path with a *dense reference*: the seed's way of doing the same
job (the whole feature matrix densified, ``TensorDataset`` + ``DataLoader(shuffle=True)``,
one item at a time at inference), run in the same process, on the same data, from the same
initial weights and with the same number of torch threads. Timings are repeated and
interleaved (reference, pricer, reference, pricer, ...) so that a burst of load from other
processes hits both sides; the *best* repeat is the headline figure (least disturbed), the
median is printed beside it.

Run the scripts from the repository root with the project's virtual environment, e.g.
``.venv/bin/python benchmarks/train_mlp.py``; each writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
if str(REPO / "src") not in sys.path:  # runnable from a fresh clone even without `pip install -e .`
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from pricer.catalogue import generate_catalogue  # noqa: E402
from pricer.features import VectorizerSettings, vectorize_texts  # noqa: E402
from pricer.params import Params, load_params  # noqa: E402
from pricer.training import Recipe  # noqa: E402
from pricer.training.recipes import architecture, recipe  # noqa: E402

# ------------------------------------------------------------------------------------------
# Machine and parameters
# ------------------------------------------------------------------------------------------


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2"}),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads_default": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def print_machine(info: dict[str, Any], threads: Sequence[int] | None = None) -> None:
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
          f"({info['torch_cpu_capability']}), python {info['python']}")
    print(f"cpu flags: {' '.join(info['bf16_flags']) or '-'}; load average at start {info['load_average_at_start']}")
    if threads is not None:
        print(f"torch threads: {', '.join(map(str, threads))} (torch.set_num_threads, same for both sides)")
    load = info["load_average_at_start"][0]
    if load > 0.5:
        print(f"warning: load average {load} - other processes share the CPU; best-of-N figures are the"
              " least disturbed ones, medians are noisier")


def load_repo_params() -> Params:
    """params.yaml of this checkout: the benchmarks use the pipeline's real settings."""
    return load_params(REPO / "params.yaml")


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------
# Data: the embedded catalogue, hashed exactly as the pipeline does
# ------------------------------------------------------------------------------------------


@dataclass
class Split:
    texts: list[str]
    prices: np.ndarray
    features: sp.csr_matrix | None = None


def catalogue_splits(sizes: dict[str, int], seed: int = 42) -> dict[str, Split]:
    """Consecutive slices of one generated catalogue (rows are i.i.d., so slices are splits)."""
    frame = generate_catalogue(sum(sizes.values()), seed)
    splits, start = {}, 0
    for name, size in sizes.items():
        part = frame.iloc[start : start + size]
        splits[name] = Split(part["summary"].tolist(), part["price"].to_numpy(dtype=np.float64))
        start += size
    return splits


def hash_splits(splits: dict[str, Split], settings: VectorizerSettings, n_jobs: int = 2) -> None:
    for split in splits.values():
        split.features = vectorize_texts(split.texts, settings, n_jobs=n_jobs)


def model_and_recipe(params: Params, kind: str, n_features: int) -> tuple[dict[str, Any], Recipe]:
    return architecture(params, kind, n_features), recipe(params, kind)


def settings_of(params: Params) -> VectorizerSettings:
    return VectorizerSettings.from_params(params.vectorize.model_dump())


# ------------------------------------------------------------------------------------------
# The dense reference: the seed's training loop
# ------------------------------------------------------------------------------------------


def setup(threads: Sequence[int], sizes: dict[str, int], seed: int, *, hashed: Sequence[str] | None = None
          ) -> tuple[dict[str, Any], Params, VectorizerSettings, dict[str, Split]]:
    """What every throughput script starts with: print the machine, read the repository's params,
    draw catalogue splits of ``sizes`` and hash the ``hashed`` ones (default: all)."""
    info = machine()
    print_machine(info, threads)
    params = load_repo_params()
    settings = settings_of(params)
    splits = catalogue_splits(sizes, seed)
    hash_splits({k: v for k, v in splits.items() if hashed is None or k in hashed}, settings)
    return info, params, settings, splits


def densify(matrix: sp.csr_matrix) -> torch.Tensor:
    """The seed's ``torch.FloatTensor(X.toarray())``: rows x features float32."""
    return torch.FloatTensor(matrix.toarray())


def seed_optimizer(model: nn.Module, recipe_: Recipe) -> torch.optim.Optimizer:
    """The optimizers as the seed built them (PyTorch defaults: for-loop updates on CPU)."""
    if recipe_.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe_.lr)
    return torch.optim.AdamW(model.parameters(), lr=recipe_.lr, weight_decay=recipe_.weight_decay)


def dense_reference_train(
    model: nn.Module,
    dense_x: torch.Tensor,
    targets: torch.Tensor,
    recipe_: Recipe,
    *,
    epochs: int = 1,
    max_steps: int | None = None,
    seed: int = 42,
) -> tuple[int, float]:
    """Train like the seed: TensorDataset + DataLoader(batch, shuffle=True), dense batches.

    Same recipe as pricer's ``fit`` (optimizer, loss, clipping, cosine schedule per epoch);
    returns (samples processed, seconds). No validation pass is timed: that favours the
    reference, since pricer's timed ``fit`` includes its per-epoch validation.
    """
    loss_fn = {"mse": F.mse_loss, "l1": F.l1_loss}[recipe_.loss]
    optimizer = seed_optimizer(model, recipe_)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe_.cosine_t_max)
        if recipe_.cosine_t_max else None
    )
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(dense_x, targets), batch_size=recipe_.batch_size, shuffle=True,
                        generator=generator)
    torch.manual_seed(seed)
    model.train()
    samples, steps = 0, 0
    started = time.perf_counter()
    for _ in range(epochs):
        for batch_x, batch_y in loader:
            loss = loss_fn(model(batch_x), batch_y)
            optimizer.zero_grad()
            loss.backward()
            if recipe_.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), recipe_.grad_clip)
            optimizer.step()
            samples += len(batch_y)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                return samples, time.perf_counter() - started
        if scheduler is not None:
            scheduler.step()
    return samples, time.perf_counter() - started


# ------------------------------------------------------------------------------------------
# Timing, printing, results
# ------------------------------------------------------------------------------------------


@dataclass
class Measure:
    """Repeated measurements of one quantity (a rate: higher is better)."""

    name: str
    values: list[float]
    unit: str

    @property
    def best(self) -> float:
        return max(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "best": self.best, "median": self.median, "all": self.values}


def interleave(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each run ``repeats`` times, alternating between runs; collect what each returns."""
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            results[name].append(run())
    return results


def interleave_with_cpu(runs: dict[str, Callable[[], float]], repeats: int, work: dict[str, float]
                        ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Like ``interleave``, and also ``work[name]`` / (CPU seconds of this process) per run.

    With one torch thread every side runs on one core, so CPU time is what the run would take
    on an idle machine: unlike wall time it does not grow when other processes take the core.
    (With 2 threads OpenMP's spin-waiting counts as CPU time, so only wall time is meaningful.)
    """
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.process_time()
            wall[name].append(run())
            cpu[name].append(work[name] / (time.process_time() - started))
    return wall, cpu


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_rates(reference: Measure, pricer_: Measure, goal: float | None = None) -> dict[str, float]:
    """Both rates, best and median, and the ratios pricer / reference."""
    ratio_best = pricer_.best / reference.best
    ratio_median = pricer_.median / reference.median
    for m in (reference, pricer_):
        print(f"  {m.name:34s} best {fmt(m.best):>10s} {m.unit}   median {fmt(m.median):>10s}   "
              f"(n={len(m.values)})")
    verdict = ""
    if goal is not None:
        verdict = f"   goal >= {goal:g}x: {'MET' if ratio_best >= goal else 'NOT MET'}"
    print(f"  ratio pricer/reference: {ratio_best:.2f}x (best)  {ratio_median:.2f}x (median){verdict}")
    return {"ratio_best": ratio_best, "ratio_median": ratio_median}


def compare_side_by_side(
    title: str,
    runs: dict[str, Callable[[], float]],
    repeats: int,
    work: float,
    labels: tuple[str, str],
    unit: str,
    goal: float,
    threads: int,
) -> tuple[Measure, Measure, dict[str, Any]]:
    """Time ``runs["reference"]`` and ``runs["pricer"]`` interleaved; print wall-clock rates and,
    with one thread (one core each), rates per CPU-second, which other processes' load cannot lower."""
    wall, cpu = interleave_with_cpu(runs, repeats, {"reference": work, "pricer": work})
    reference = Measure(labels[0], wall["reference"], unit)
    pricer_ = Measure(labels[1], wall["pricer"], unit)
    print(f"\nthreads={threads}: {title} (wall clock)")
    ratios: dict[str, Any] = print_rates(reference, pricer_, goal)
    if threads == 1:
        print("  per CPU-second (one core each; robust to other processes' load):")
        cpu_ratios = print_rates(Measure(labels[0], cpu["reference"], f"{unit.split('/')[0]}/cpu-s"),
                                 Measure(labels[1], cpu["pricer"], f"{unit.split('/')[0]}/cpu-s"), goal)
        ratios["cpu"] = {"reference": cpu["reference"], "pricer": cpu["pricer"], **cpu_ratios}
    return reference, pricer_, ratios


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), **payload}
    payload.setdefault("machine", {})["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")
    print(f"results: {path.relative_to(REPO)}")
    return path
