"""Measure the README's "Results of the default run" afresh and rewrite that section.

Clones this repository's HEAD into a scratch directory, runs the README's `dvc repro` on the
default params there (timed, with the peak memory of its largest process), then the documented
experiment (`dvc exp run --temp -n half-lr -S lr=0.0005`), and compares the two with
`pricer compare`. Prints the section; with ``--write`` it replaces the text between the
``<!-- results:start -->`` and ``<!-- results:end -->`` markers of README.md.

    .venv/bin/python benchmarks/readme_results.py [--write]

Takes what the pipeline takes (a few minutes on 2 idle cores); every figure it writes says when
and on what machine it was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"
EXPERIMENT = ("half-lr", "lr=0.0005")


def run(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))} | {"CI": "true"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done, time.perf_counter() - started


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()}-core {model or platform.machine()} CPU, {memory:.0f} GB, no GPU"


def money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def interval(figures: dict, key: str) -> str:
    return f"{money(figures[key])} [{money(figures[key + '_ci95_low'])}, {money(figures[key + '_ci95_high'])}]"


def section(project: Path, repro_seconds: float, peak_gb: float, exp_seconds: float, stages: list[str],
            compared: dict) -> str:
    metrics = {name: json.loads((project / f"metrics/{name}.json").read_text()) for name in ("mlp", "resnet")}
    baselines = json.loads((project / "metrics/baselines.json").read_text())
    pair = json.loads((project / "metrics/comparison.json").read_text())["resnet_vs_mlp"]
    report = json.loads((project / "data/fetch_report.json").read_text())
    rows = {split: report["splits"][split]["rows_out"] for split in ("train", "validation", "test")}
    lines = [
        f"`dvc repro` on the defaults ({sum(rows.values()):,} catalogue items: {rows['train']:,} train / "
        f"{rows['validation']:,} validation / {rows['test']:,} test), measured on {date.today():%d %b %Y} on a "
        f"{machine()}: **{repro_seconds:.0f} s** wall clock, peak memory {peak_gb:.2f} GB (the largest stage). "
        "Every MAE has its 95% interval (percentile bootstrap over the test items, 2,000 resamples).",
        "",
        "| predictor | test MAE [95% CI] | MAE, first 200 [95% CI] | RMSLE | within $40 or 20% |",
        "|---|---|---|---|---|",
        f"| SGD MLP | **{interval(metrics['mlp'], 'test_mae')}** | {interval(metrics['mlp'], 'test_mae_first_200')} "
        f"| {metrics['mlp']['test_rmsle']:.3f} | {metrics['mlp']['test_hit_rate']:.1%} |",
        f"| residual network (hidden 256, 6 layers) | **{interval(metrics['resnet'], 'test_mae')}** | "
        f"{interval(metrics['resnet'], 'test_mae_first_200')} | {metrics['resnet']['test_rmsle']:.3f} | "
        f"{metrics['resnet']['test_hit_rate']:.1%} |",
        f"| constant: training median ({money(baselines['train_median_price'])}) | "
        f"{money(baselines['train_median_test_mae'])} | | | |",
        f"| constant: training mean ({money(baselines['train_mean_price'])}) | "
        f"{money(baselines['train_mean_test_mae'])} | | | |",
        "",
        f"On the same test items, the residual network's MAE minus the MLP's is {money(pair['mae_difference'])} "
        f"[{money(pair['ci95_low'])}, {money(pair['ci95_high'])}]: **{pair['verdict']}** "
        "(`metrics/comparison.json`).",
    ]
    paired = {row["model"]: row for row in compared.get("paired") or []}
    if "resnet" in paired:
        resnet = paired["resnet"]
        lines += ["", f"`dvc exp run --temp -n {EXPERIMENT[0]} -S {EXPERIMENT[1]}` then took {exp_seconds:.0f} s "
                  f"(it reran {' and '.join(stages)}); against the baseline on the same items, the residual "
                  f"network's MAE changed by {money(resnet['diff'])} "
                  f"[{money(resnet['low'])}, {money(resnet['high'])}]: "
                  f"**{resnet['verdict']}**. Which of two close settings wins is noise until the interval of "
                  "their difference excludes zero."]
    lines += ["", "Regenerate this section with `.venv/bin/python benchmarks/readme_results.py --write`."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the section in README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pricer-results-") as scratch:
        project = Path(scratch) / "pricer"
        run(["git", "clone", "-q", str(REPO), str(project)], Path(scratch))
        _, repro_seconds = run([sys.executable, "-m", "dvc", "repro"], project)
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        run(["git", "add", "-A"], project)
        run(["git", "-c", "user.name=pricer", "-c", "user.email=pricer@example.invalid", "commit", "-qm", "baseline"],
            project)
        done, exp_seconds = run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", EXPERIMENT[0],
                                 "-S", EXPERIMENT[1]], project)
        stages = re.findall(r"Running stage '([^']+)'", done.stdout)
        compared, _ = run([sys.executable, "-m", "pricer.cli", "compare", EXPERIMENT[0], "HEAD", "--json"], project)
        text = section(project, repro_seconds, peak_gb, exp_seconds, stages, json.loads(compared.stdout))
    print(text)
    if args.write:
        readme = REPO / "README.md"
        old = readme.read_text(encoding="utf-8")
        if START not in old or END not in old:
            raise SystemExit(f"README.md has no {START} ... {END} markers")
        head, rest = old.split(START, 1)
        readme.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
