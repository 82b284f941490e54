"""``pricer compare``: runs side by side, each test MAE with its 95% bootstrap interval.

Each model's price ranges are shown by their coverage: the share of test prices inside their
range, beside the level the run asked for (``evaluate.interval_level``) and the median width.
Two runs evaluated on the same test items are compared pair-wise: per model, the MAE difference
A - B with a paired bootstrap interval and a verdict (pricer.comparison). Runs evaluated on
other items (another data source, size, split or seed) are not paired: each gets its interval.
Three or more runs (a sweep) make one table, best first, with the params that differ; runs that
differ only in ``seed`` also get each model's mean +- standard deviation across them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import numpy as np

from pricer.cli.errors import CliError
from pricer.cli.experiments import WORKSPACE, Run, differing_params, items_differ, load_run
from pricer.cli.table import text_table
from pricer.comparison import (
    DEFAULT_RESAMPLES,
    MIN_ITEMS_FOR_VERDICT,
    TOO_FEW_ITEMS,
    mae_interval,
    paired_difference,
    seed_spread,
    too_few_items,
)
from pricer.intervals import coverage
from pricer.layout import project_root
from pricer.metrics import mean_absolute_error

log = logging.getLogger("pricer.cli")

SEED_PARAM = "seed"
LEVEL_PARAM = "evaluate.interval_level"


def _model_figures(run: Run, resamples: int, seed: int) -> dict[str, dict[str, float]]:
    actual = run.predictions["price"].to_numpy(dtype=float)
    figures = {}
    for model in run.models:
        predicted = run.predictions[model].to_numpy(dtype=float)
        low, high = mae_interval(actual, predicted, resamples=resamples, seed=seed)
        figures[model] = {"mae": mean_absolute_error(actual, predicted), "low": low, "high": high}
        price_range = run.price_range(model)
        if price_range is not None:
            figures[model] |= {"coverage": coverage(actual, *price_range),
                               "width_median": float(np.median(price_range[1] - price_range[0]))}
    return figures


def _paired(first: Run, second: Run, resamples: int, seed: int) -> list[dict[str, Any]]:
    actual = first.predictions["price"].to_numpy(dtype=float)
    rows = []
    for model in [name for name in first.models if name in second.models]:
        result = paired_difference(actual, first.predictions[model].to_numpy(dtype=float),
                                   second.predictions[model].to_numpy(dtype=float), resamples=resamples, seed=seed)
        verdict = too_few_items(actual.size) if result.verdict == TOO_FEW_ITEMS else result.verdict
        rows.append({"model": model, "diff": result.diff, "low": result.low, "high": result.high, "verdict": verdict})
    return rows


def _seed_groups(runs: list[Run], figures: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """Runs whose params are equal but for the seed: each model's test MAE, mean and std across them."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if SEED_PARAM in run.params:
            rest = {key: value for key, value in run.params.items() if key != SEED_PARAM}
            groups.setdefault(json.dumps(rest, sort_keys=True, default=str), []).append(run)
    summaries = []
    for members in groups.values():
        if len({repr(run.params[SEED_PARAM]) for run in members}) < 2:
            continue
        models = [model for model in members[0].models if all(model in run.models for run in members)]
        spread = {model: seed_spread([figures[run.name][model]["mae"] for run in members]) for model in models}
        summaries.append({"runs": [run.name for run in members], "seeds": [run.params[SEED_PARAM] for run in members],
                          "models": {model: {"mean": mean, "std": std} for model, (mean, std) in spread.items()}})
    return summaries


def compare_runs(runs: list[Run], *, resamples: int, seed: int, sort_by: str | None) -> dict[str, Any]:
    """Everything ``pricer compare`` shows, as the JSON document ``--json`` prints."""
    figures = {run.name: _model_figures(run, resamples, seed) for run in runs}
    shown = differing_params(runs)
    models = [model for model in runs[0].models if all(model in run.models for run in runs)]
    if not models:
        raise CliError("the runs have no model in common in their predictions")
    key = sort_by or min(models, key=lambda model: min(figures[run.name][model]["mae"] for run in runs))
    if key not in models:
        raise CliError(f"--sort-by {key}: not a model of every run (models: {', '.join(models)})")
    report: dict[str, Any] = {
        "resamples": resamples, "seed": seed, "confidence": 0.95, "models": models, "sorted_by": key,
        "params": shown, "runs": [],
    }
    ordered = runs if len(runs) == 2 else sorted(runs, key=lambda run: figures[run.name][key]["mae"])
    for run in ordered:
        report["runs"].append({"name": run.name, "rev": run.rev, "items": len(run.predictions),
                               "interval_level": run.params.get(LEVEL_PARAM),
                               "params": {name: run.params.get(name) for name in shown},
                               "mae": figures[run.name]})
    if len(runs) == 2:
        reason = items_differ(*runs)
        report["paired"] = None if reason else _paired(*runs, resamples, seed)
        report["unpaired_reason"] = reason
        report["min_items"] = MIN_ITEMS_FOR_VERDICT
    report["seed_groups"] = _seed_groups(runs, figures)
    return report


def _interval(figure: dict[str, float]) -> str:
    return f"{figure['mae']:.2f} [{figure['low']:.2f}, {figure['high']:.2f}]"


def render(report: dict[str, Any], runs: dict[str, Run]) -> str:
    """The report for people: tables of MAEs with their intervals, the verdicts, the seed spread."""
    models, entries = report["models"], report["runs"]
    parts = []
    if "paired" in report and report["paired"] is not None:
        first, second = (runs[entry["name"]] for entry in entries)
        parts.append(f"A = {first.label}, B = {second.label}: {entries[0]['items']:,} test items, the same in both")
        lines = [["model", "A: MAE [95% CI]", "B: MAE [95% CI]", "A - B [95% CI]", "verdict (A against B)"]]
        for row in report["paired"]:
            lines.append([row["model"], _interval(entries[0]["mae"][row["model"]]),
                          _interval(entries[1]["mae"][row["model"]]),
                          f"{row['diff']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]", row["verdict"]])
        parts.append(text_table(lines).rstrip("\n"))
    else:
        lines = [["run", "items", *[f"{model}: MAE [95% CI]" for model in models], *report["params"]]]
        for entry in entries:
            lines.append([runs[entry["name"]].label, str(entry["items"]),
                          *[_interval(entry["mae"][model]) for model in models],
                          *["" if entry["params"][name] is None else str(entry["params"][name])
                            for name in report["params"]]])
        if len(entries) > 2:
            parts.append(f"{len(entries)} runs, best {report['sorted_by']} first")
        parts.append(text_table(lines, right={1}).rstrip("\n"))
    ranged = [model for model in models if any("coverage" in entry["mae"][model] for entry in entries)]
    if ranged:
        lines = [["run", "level", *[f"{model}: coverage (median width)" for model in ranged]]]
        for entry in entries:
            level = entry.get("interval_level")
            lines.append([runs[entry["name"]].label, "" if level is None else f"{level:g}",
                          *[f"{entry['mae'][model]['coverage']:.3f} (${entry['mae'][model]['width_median']:,.2f})"
                            if "coverage" in entry["mae"][model] else "" for model in ranged]])
        parts.append("price ranges: share of test prices inside their range")
        parts.append(text_table(lines).rstrip("\n"))
    for group in report["seed_groups"]:
        spread = ", ".join(f"{model} {figure['mean']:.2f} ± {figure['std']:.2f}"
                           for model, figure in group["models"].items())
        parts.append(f"seed spread over {len(group['runs'])} runs differing only in seed "
                     f"({', '.join(map(str, group['seeds']))}): test MAE mean ± std: {spread}")
    parts.append(f"95% intervals: percentile bootstrap over test items, {report['resamples']:,} resamples, "
                 f"seed {report['seed']}")
    return "\n".join(parts) + "\n"


def cmd_compare(args: argparse.Namespace) -> int:
    names = list(args.runs) or [WORKSPACE]
    implicit = [not args.runs] + [False] * (len(names) - 1)
    if len(names) == 1:  # the HEAD (and workspace) supplied here are git's, even where an experiment is so named
        names.append("HEAD")
        implicit.append(True)
    if len(set(names)) != len(names):
        raise CliError(f"a run is named twice: {' '.join(names)}")
    root = project_root()  # also from a subdirectory of the project
    runs = [load_run(name, root, implicit=chosen) for name, chosen in zip(names, implicit, strict=True)]
    report = compare_runs(runs, resamples=args.resamples, seed=args.seed, sort_by=args.sort_by)
    if report.get("unpaired_reason"):
        log.warning("%s and %s were evaluated on different test items (%s): not paired, intervals only",
                    runs[0].label, runs[1].label, report["unpaired_reason"])
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(render(report, {run.name: run for run in runs}))
    return 0


def _resamples(value: str) -> int:
    number = int(value)
    if number < 100:
        raise argparse.ArgumentTypeError(f"use at least 100 resamples, got {number}")
    return number


DESCRIPTION = f"""\
Compare runs by their test MAE, each with its 95% percentile-bootstrap interval over the test
items (--resamples, default 2,000; --seed, default 0).

A run is a DVC experiment name, a git revision (HEAD, main, a sha) or `workspace`; its per-item
test predictions are read from metrics/predictions.csv at that revision (dvc.api). With no run:
the workspace against HEAD; with one: that run against HEAD.

Two runs evaluated on the same test items (ids and prices) are paired: per model, the MAE
difference A - B, its interval from a paired bootstrap and a verdict for A: better (the interval
is below 0), worse (above 0) or no detectable difference; with fewer than {MIN_ITEMS_FOR_VERDICT} test items, "too
few test items (N < {MIN_ITEMS_FOR_VERDICT})" instead of a verdict. Runs evaluated on other items (another
data source, size, split or seed) are not paired, with a warning: each MAE gets its interval.
Three or more runs (a sweep): one table, best first, with the params that differ; runs whose
params differ only in `seed` also get each model's test MAE mean +- standard deviation."""


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "compare", parents=parents,
        help="compare runs (DVC experiments, git revisions, the workspace) with 95%% intervals of each test MAE",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  pricer compare                       # workspace against HEAD\n"
               "  pricer compare half-lr main          # an experiment against main\n"
               "  pricer compare $(dvc exp ls --name-only) --json   # every experiment of HEAD",
    )
    parser.add_argument("runs", nargs="*", metavar="RUN", help="experiment name, git revision or 'workspace'")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON, for scripts")
    parser.add_argument("--resamples", type=_resamples, default=DEFAULT_RESAMPLES, metavar="N",
                        help=f"bootstrap resamples (default: {DEFAULT_RESAMPLES:,})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    parser.add_argument("--sort-by", metavar="MODEL",
                        help="order a sweep by this model's MAE (default: the model with the lowest MAE)")
    parser.set_defaults(handler=cmd_compare)
