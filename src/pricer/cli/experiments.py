"""The pipeline runs ``pricer compare`` reads: the workspace, a git revision, or a DVC experiment
(not MLflow runs: those are :mod:`pricer.tracking`'s).

Each run's per-item test predictions are ``metrics/predictions.csv`` (id, price, a column per
model, and each model's range as ``<model>_low``/``<model>_high`` where the run has one), read
at the run's commit with ``dvc.api.read`` (the workspace: as it is on disk); its
params with ``dvc.api.params_show``. A DVC experiment is a git ref ``refs/exps/../<name>``, so
an experiment name is resolved with ``git for-each-ref``; anything else with ``git rev-parse``.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pricer.cli.errors import CliError
from pricer.layout import PREDICTIONS_CSV
from pricer.params import flatten

WORKSPACE = "workspace"
PREDICTIONS = PREDICTIONS_CSV.as_posix()
ITEM_COLUMNS = ("id", "price")
RANGE_SUFFIXES = ("_low", "_high")
# refs/exps/<first 2 hex digits of the baseline commit>/<the other 38>/<name>; not the queue's refs/exps/celery/...
EXPERIMENT_REF = re.compile(r"^refs/exps/[0-9a-f]{2}/[0-9a-f]{38}/(?P<name>[^/]+)$")

log = logging.getLogger("pricer.cli")


@dataclass
class Run:
    name: str  # as given on the command line: workspace, HEAD, main, half-lr, a sha
    rev: str | None  # the commit (None: the workspace)
    predictions: pd.DataFrame  # id, price, a column of dollar prices per model (+ _low, _high), sorted by id
    params: dict[str, Any]  # params.yaml flattened: "lr", "mlp.lr", "data.synthetic_items", ...

    @property
    def models(self) -> list[str]:
        columns = list(self.predictions.columns)
        return [column for column in columns if column not in ITEM_COLUMNS
                and not any(column.endswith(suffix) and column.removesuffix(suffix) in columns
                            for suffix in RANGE_SUFFIXES)]

    def price_range(self, model: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``model``'s (low, high) range for each item, or None where this run has no ranges."""
        low, high = (f"{model}{suffix}" for suffix in RANGE_SUFFIXES)
        if low not in self.predictions.columns or high not in self.predictions.columns:
            return None
        return self.predictions[low].to_numpy(dtype=float), self.predictions[high].to_numpy(dtype=float)

    @property
    def label(self) -> str:
        return self.name if self.rev is None or self.rev.startswith(self.name) else f"{self.name} ({self.rev[:7]})"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def _experiments_named(name: str, root: Path) -> list[str]:
    """The commits of the DVC experiments called ``name`` (one per baseline they ran on)."""
    listed = _git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps")
    return [sha for sha, ref in (line.split(" ", 1) for line in listed.stdout.splitlines())
            if (found := EXPERIMENT_REF.match(ref)) and found["name"] == name]


def _git_commit(name: str, root: Path) -> str | None:
    found = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}")
    return found.stdout.strip() if found.returncode == 0 else None


def resolve_revision(name: str, root: Path, *, git_only: bool = False) -> str:
    """The commit of a DVC experiment named ``name``, else of the git revision ``name``.

    A name that is both (an experiment called HEAD, main, a tag or a hash prefix, made with
    ``dvc exp run -n``) is refused: either reading could be meant. ``git_only`` reads ``name`` as
    a git revision alone (the ``HEAD`` that ``pricer compare`` supplies when none is given).
    """
    experiments = [] if git_only else _experiments_named(name, root)
    commit = _git_commit(name, root)
    if experiments and commit is not None and experiments != [commit]:
        raise CliError(f"{name}: is both a DVC experiment ({', '.join(sha[:7] for sha in experiments)}) and a git "
                       f"revision ({commit[:7]}); pass the commit you mean, or rename the experiment "
                       f"(`dvc exp rename {name} <new name>`)")
    if len(experiments) == 1:
        return experiments[0]
    if len(experiments) > 1:
        raise CliError(f"{name}: names {len(experiments)} DVC experiments (on different baselines); "
                       "pass the commit of one (`dvc exp show`)")
    if commit is None:
        if _git(root, "rev-parse", "--git-dir").returncode != 0:
            raise CliError(f"{root}: not a git repository (run pricer compare in the project)")
        raise CliError(f"{name}: neither a DVC experiment (`dvc exp show`) nor a git revision")
    return commit


def _read_predictions(name: str, rev: str | None, root: Path) -> pd.DataFrame:
    import dvc.api

    try:
        # The workspace's file as it is on disk (dvc.api would read a relative path from the
        # working directory's side, which fails in a subdirectory of the project)
        text = (root / PREDICTIONS).read_text(encoding="utf-8") if rev is None else dvc.api.read(
            PREDICTIONS, repo=str(root), rev=rev)
    except Exception as error:  # dvc raises its own types (PathMissingError, ...) and OSErrors
        if isinstance(error, FileNotFoundError) or type(error).__name__ == "PathMissingError":
            raise CliError(f"{name}: has no {PREDICTIONS} (evaluate it with `dvc repro` or `dvc exp run`)") from None
        raise CliError(f"{name}: cannot read {PREDICTIONS}: {error}") from None
    try:
        predictions = pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as error:
        raise CliError(f"{name}: {PREDICTIONS} is not a readable CSV file: {error}") from None
    missing = [column for column in ITEM_COLUMNS if column not in predictions.columns]
    if missing or len(predictions.columns) == len(ITEM_COLUMNS) or predictions.empty:
        raise CliError(f"{name}: {PREDICTIONS} needs columns id, price and one per model, and rows "
                       f"(has {', '.join(predictions.columns)}; {len(predictions)} rows)")
    numbers = predictions.drop(columns="id")
    if not np.isfinite(numbers.to_numpy(dtype=float)).all():
        raise CliError(f"{name}: {PREDICTIONS} has empty or non-finite prices")
    return predictions.sort_values("id", kind="stable").reset_index(drop=True)


def load_run(name: str, root: Path, *, implicit: bool = False) -> Run:
    """The run ``name``; ``implicit`` when pricer chose it (the workspace and git's HEAD of a bare
    ``pricer compare``): then it is never read as an experiment's name."""
    import dvc.api

    if name == WORKSPACE and not implicit and (shadowed := _experiments_named(name, root)):
        raise CliError(f"{name}: means the working tree here, but is also the name of a DVC experiment "
                       f"({', '.join(sha[:7] for sha in shadowed)}); pass that experiment's commit, or rename it "
                       f"(`dvc exp rename {name} <new name>`)")
    rev = None if name == WORKSPACE else resolve_revision(name, root, git_only=implicit)
    predictions = _read_predictions(name, rev, root)
    try:
        params = flatten(dvc.api.params_show(repo=str(root), rev=rev))
    except Exception as error:  # no params.yaml at that commit: the runs can still be compared
        params = {}
        log.debug("%s: no params (%s)", name, error)
    return Run(name, rev, predictions, params)


def items_differ(first: Run, second: Run) -> str | None:
    """Why two runs were not evaluated on the same test items, or None when they were."""
    a, b = first.predictions, second.predictions
    if len(a) != len(b):
        return f"{len(a)} test items against {len(b)}"
    if not np.array_equal(a["id"].to_numpy(), b["id"].to_numpy()):
        return "other test item ids"
    if not np.allclose(a["price"].to_numpy(), b["price"].to_numpy(), rtol=0, atol=0.005):
        return "the same ids with other prices"
    return None


def differing_params(runs: list[Run]) -> list[str]:
    """The params whose values are not the same in every run, in params.yaml order."""
    keys: list[str] = []
    for run in runs:
        keys += [key for key in run.params if key not in keys]
    return [key for key in keys if len({repr(run.params.get(key)) for run in runs}) > 1]
