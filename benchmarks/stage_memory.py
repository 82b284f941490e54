"""Benchmark 5: peak resident memory and wall time of each pipeline stage at scale.

Runs the real stage scripts (``python stages/<stage>.py``) one after the other in a scratch
copy of the repository layout (``stages/`` and a ``params.yaml``; the ``pricer`` package is this
checkout's ``src``) on the embedded catalogue, and measures for each stage:

* peak RSS of the process tree (the stage and every child, e.g. the hashing workers), summed,
  sampled with psutil every 50 ms;
* the kernel's peak RSS of the largest single process (``wait4`` rusage, exact);
* wall time.

``--full`` is the items_full scale: 820,000 catalogue rows split 800,000 / 10,000 / 10,000
(data.synthetic_items 820000, validation/test fractions 10000/820000), MLP for its full 10
epochs; expect 10-20 minutes. The default (100,000 train rows) takes a few minutes. The
scratch params.yaml is the repository's with data.* changed, tracking off and progress bars
off. Goal: every stage <= 4 GB.

    .venv/bin/python benchmarks/stage_memory.py                   # 100,000 train rows
    .venv/bin/python benchmarks/stage_memory.py --full            # 800,000 train rows
    .venv/bin/python benchmarks/stage_memory.py --full --stages fetch vectorize train_mlp
    .venv/bin/python benchmarks/stage_memory.py --full --n-features 262144 --input-optimizer lazy \
        --mlp-epochs 2 --resnet-epochs 2 --threads 1                   # wide vocabulary, 800,000 rows

``--catalogue-items A B ...`` is the streaming check (issue 22): the stages run at each catalogue
size in turn (params.yaml's split fractions), and each stage's peak (the tree's, and the largest
single process's) is printed as a ratio to its peak at the first size. Goal: at most 1.5x from
200,000 to 1,000,000 items for fetch and vectorize.

    .venv/bin/python benchmarks/stage_memory.py --catalogue-items 200000 1000000 --stages fetch vectorize

``--reuse --workdir DIR`` reruns ``--stages`` in a directory an earlier run kept (``--keep``): its
params.yaml and data stay as they are, only ``stages/`` is refreshed from this checkout; e.g. the
train stage alone on the 10,000,000-item data (BENCHMARKS.md, "Streaming data stages"):

    .venv/bin/python benchmarks/stage_memory.py --reuse --workdir /tmp/pricer-scaling-10000000-XXXX --stages train_mlp
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import psutil
import yaml

GOAL_GB = 4.0
SCALING_GOAL = 1.5  # peak at the largest size over the peak at the first, for a streaming stage
STAGES = {
    "fetch": ["stages/fetch.py"],
    "vectorize": ["stages/vectorize.py"],
    "train_mlp": ["stages/train.py", "mlp"],
    "train_resnet": ["stages/train.py", "resnet"],
    "evaluate": ["stages/evaluate.py"],
}


# A command-line option and the params.yaml key it overrides when given.
OVERRIDES = {
    "resnet_epochs": ("resnet", "epochs"),
    "mlp_epochs": ("mlp", "epochs"),
    "threads": ("train", "threads"),
    "processes": ("train", "processes"),
    "n_features": ("vectorize", "n_features"),
    "input_optimizer": ("resnet", "input_optimizer"),
}


def scratch_params(train_items: int, holdout_items: int | None, overrides: dict[str, object]) -> dict:
    """params.yaml for a synthetic run of that many rows, with each non-None option in ``overrides``
    (keyed as ``OVERRIDES``) written over its key. ``holdout_items`` None: ``train_items`` is the
    whole catalogue, split by params.yaml's fractions."""
    params = yaml.safe_load((harness.REPO / "params.yaml").read_text(encoding="utf-8"))
    if holdout_items is None:
        params["data"].update({"source": "synthetic", "synthetic_items": train_items, "max_train_items": None})
    else:
        total = train_items + 2 * holdout_items
        fraction = holdout_items / total
        params["data"].update({"source": "synthetic", "synthetic_items": total, "max_train_items": None,
                               "validation_fraction": fraction, "test_fraction": fraction})
    params["tracking"]["enabled"] = False
    params["train"]["progress"] = False
    for option, value in overrides.items():
        if value is not None:
            section, key = OVERRIDES[option]
            params[section][key] = value
    return params


def run_measured(command: list[str], cwd: Path, env: dict, log_path: Path, interval: float = 0.05) -> dict:
    """Run ``command``; sample the RSS of its process tree; return peaks (bytes) and wall time."""
    with open(log_path, "w", encoding="utf-8") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        root = psutil.Process(process.pid)
        peak_tree = peak_root = 0
        most_processes = 1
        peak_by_process: dict[int, list] = {}  # pid -> [command line, peak RSS]: each data-parallel rank's
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            total = 0
            for member in tree:
                try:
                    rss = member.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                if member.pid not in peak_by_process:
                    try:
                        peak_by_process[member.pid] = [" ".join(member.cmdline())[-80:], 0]
                    except psutil.Error:
                        peak_by_process[member.pid] = ["?", 0]
                peak_by_process[member.pid][1] = max(peak_by_process[member.pid][1], rss)
                if member.pid == root.pid:
                    peak_root = max(peak_root, rss)
            peak_tree = max(peak_tree, total)
            most_processes = max(most_processes, len(tree))
            time.sleep(interval)
        process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": process.returncode,
        "wall_s": time.perf_counter() - started,
        "peak_tree_rss_bytes": peak_tree,
        "peak_stage_process_rss_bytes": peak_root,
        "max_single_process_rss_bytes_kernel": usage.ru_maxrss * 1024,  # Linux reports KiB
        "most_processes": most_processes,
        "peak_rss_by_process": sorted(peak_by_process.values(), key=lambda entry: -entry[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="800,000 train rows (items_full scale)")
    parser.add_argument("--items", type=int, default=None, help="train rows (default 100,000; --full: 800,000)")
    parser.add_argument("--holdout", type=int, default=10_000, help="validation rows = test rows")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--resnet-epochs", type=int, default=None, help="default: params.yaml resnet.epochs")
    parser.add_argument("--threads", type=int, default=None,
                        help="train.threads for the train stages (default: params.yaml's); 1 is the robust choice "
                             "on a 2-core machine that other processes share, see BENCHMARKS.md")
    parser.add_argument("--mlp-epochs", type=int, default=None, help="default: params.yaml mlp.epochs")
    parser.add_argument("--n-features", type=int, default=None, help="vectorize.n_features (default: params.yaml's)")
    parser.add_argument("--input-optimizer", choices=("dense", "lazy"), default=None,
                        help="resnet.input_optimizer (default: params.yaml's; lazy for wide vocabularies)")
    parser.add_argument("--processes", type=int, default=None,
                        help="train.processes (data-parallel ranks; the tree peak sums them)")
    parser.add_argument("--catalogue-items", type=int, nargs="+", default=None, metavar="N",
                        help="run at each of these catalogue sizes (params.yaml's fractions) and print each stage's "
                             "peak as a ratio to its peak at the first size")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and its data")
    parser.add_argument("--reuse", action="store_true",
                        help="with --workdir: rerun --stages on its kept params.yaml and data (only stages/ refreshed)")
    args = parser.parse_args()
    if args.reuse and (args.workdir is None or not (args.workdir / "params.yaml").is_file()):
        parser.error("--reuse needs --workdir naming a kept scratch directory (with its params.yaml)")
    if args.catalogue_items:
        scaling(args)
        return
    items = args.items or (800_000 if args.full else 100_000)

    info = harness.machine()
    harness.print_machine(info)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pricer-stages-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(harness.REPO / "stages", workdir / "stages", dirs_exist_ok=True)
    holdout = args.holdout
    if args.reuse:
        params = yaml.safe_load((workdir / "params.yaml").read_text(encoding="utf-8"))
        items, holdout = (int(json.loads((workdir / f"data/features/{split}/manifest.json").read_text(
            encoding="utf-8"))["rows"]) for split in ("train", "validation"))
    else:
        params = scratch_params(items, args.holdout, {option: getattr(args, option) for option in OVERRIDES})
        (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(harness.REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "PRICER_LOG_LEVEL": "INFO", "CI": "1"}
    env.pop("PRICER_DASK_SCHEDULER", None)  # this machine's own processes: what the figures are about
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"scratch: {workdir}; data.synthetic_items {params['data']['synthetic_items']:,} "
          f"(train {items:,}, validation/test {holdout:,} each), mlp.epochs {params['mlp']['epochs']}, "
          f"resnet.epochs {params['resnet']['epochs']}, train.threads {params['train']['threads']}, "
          f"train.processes {params['train']['processes']}, vectorize.n_jobs {params['vectorize']['n_jobs']}, "
          f"vectorize.n_features {params['vectorize']['n_features']:,}, "
          f"resnet.input_optimizer {params['resnet']['input_optimizer']}")

    results = {}
    print(f"\n{'stage':14s} {'wall s':>8s} {'tree peak GB':>13s} {'largest process GB':>19s} {'procs':>6s}  "
          f"goal <= {GOAL_GB:g} GB")
    for stage in args.stages:
        log_path = workdir / f"{stage}.log"
        measured = run_measured([sys.executable, *STAGES[stage]], workdir, env, log_path)
        results[stage] = measured
        tree_gb = measured["peak_tree_rss_bytes"] / 1e9
        single_gb = measured["max_single_process_rss_bytes_kernel"] / 1e9
        ok = measured["exit_code"] == 0
        verdict = (("met" if max(tree_gb, single_gb) <= GOAL_GB else "NOT MET") if ok
                   else f"FAILED (exit {measured['exit_code']})")
        print(f"{stage:14s} {measured['wall_s']:8.1f} {tree_gb:13.2f} {single_gb:19.2f} "
              f"{measured['most_processes']:6d}  {verdict}",
              flush=True)
        if (args.processes or 1) > 1 and stage.startswith("train"):
            # each process's sampled peak: the ranks, the launcher and the stage script that started it
            for command, peak in measured["peak_rss_by_process"][:args.processes + 2]:
                print(f"{'':14s} peak {peak / 1e6:8,.0f} MB  {command}")
        if not ok:
            print(log_path.read_text(encoding="utf-8")[-3000:])
            break
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    for stage in results:
        lines = [line for line in (workdir / f"{stage}.log").read_text(encoding="utf-8").splitlines()
                 if " INFO " in line]
        results[stage]["log_tail"] = lines[-12:]
    name = "stage_memory_full" if items >= 800_000 else "stage_memory"
    if args.reuse:
        name = f"stage_memory_reuse_{items}"
    if params["vectorize"]["n_features"] != 5000:
        name += f"_{params['vectorize']['n_features']}"
    harness.write_results(name, {
        "machine": info, "args": {**vars(args), "workdir": str(workdir)}, "train_items": items, "goal_gb": GOAL_GB,
        "params": params, "stages": results,
    })
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")


def scaling(args: argparse.Namespace) -> None:
    """Each stage at each catalogue size, in one scratch directory per size; peaks as ratios."""
    info = harness.machine()
    harness.print_machine(info)
    overrides = {option: getattr(args, option) for option in OVERRIDES}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(harness.REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "PRICER_LOG_LEVEL": "INFO", "CI": "1"}
    env.pop("PRICER_DASK_SCHEDULER", None)  # this machine's own processes: what the figures are about
    runs: dict[int, dict[str, dict]] = {}
    print(f"\n{'items':>11s} {'stage':10s} {'wall s':>8s} {'tree peak MB':>13s} {'largest process MB':>19s}")
    for items in args.catalogue_items:
        workdir = Path(tempfile.mkdtemp(prefix=f"pricer-scaling-{items}-"))
        shutil.copytree(harness.REPO / "stages", workdir / "stages", dirs_exist_ok=True)
        params = scratch_params(items, None, overrides)
        (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        runs[items] = {}
        for stage in args.stages:
            measured = run_measured([sys.executable, *STAGES[stage]], workdir, env, workdir / f"{stage}.log")
            runs[items][stage] = measured
            print(f"{items:11,d} {stage:10s} {measured['wall_s']:8.1f} {measured['peak_tree_rss_bytes'] / 1e6:13,.0f} "
                  f"{measured['max_single_process_rss_bytes_kernel'] / 1e6:19,.0f}", flush=True)
            if measured["exit_code"] != 0:
                print((workdir / f"{stage}.log").read_text(encoding="utf-8")[-3000:])
                raise SystemExit(f"{stage} failed at {items:,} items")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    first, last = args.catalogue_items[0], args.catalogue_items[-1]
    print(f"\npeak at {last:,} items / peak at {first:,} items (goal <= {SCALING_GOAL:g})")
    ratios = {}
    for stage in args.stages:
        tree = runs[last][stage]["peak_tree_rss_bytes"] / runs[first][stage]["peak_tree_rss_bytes"]
        single = (runs[last][stage]["max_single_process_rss_bytes_kernel"]
                  / runs[first][stage]["max_single_process_rss_bytes_kernel"])
        ratios[stage] = {"tree": tree, "largest_process": single}
        verdict = "met" if max(tree, single) <= SCALING_GOAL else "NOT MET"
        print(f"{stage:10s} tree {tree:5.2f}x   largest process {single:5.2f}x   {verdict}")
    harness.write_results("stage_memory_scaling", {"machine": info, "args": vars(args) | {"workdir": None},
                                                   "runs": {str(k): v for k, v in runs.items()}, "ratios": ratios})


if __name__ == "__main__":
    main()
