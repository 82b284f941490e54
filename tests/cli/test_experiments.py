"""Reading runs for ``pricer compare``: the workspace, git revisions and DVC experiment refs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricer.cli.errors import CliError
from pricer.cli.experiments import Run, differing_params, items_differ, load_run, resolve_revision

from .conftest import PARAMS, commit_run, git, predictions


def test_workspace_revision_and_experiment_ref(repo, prices):
    first = commit_run(repo, predictions(prices, {"mlp": 5.0}), PARAMS, "first")
    second = commit_run(repo, predictions(prices, {"mlp": 3.0}), PARAMS | {"lr": 0.002}, "second")
    git(repo, "update-ref", f"refs/exps/{first[:2]}/{first[2:]}/half-lr", first)  # as `dvc exp run -n half-lr` makes
    git(repo, "update-ref", "refs/exps/celery/stash", second)  # the queue's own ref is no experiment
    predictions(prices, {"mlp": 1.0}).to_csv(repo / "metrics" / "predictions.csv", index=False)

    workspace, head, experiment = (load_run(name, repo) for name in ("workspace", "HEAD", "half-lr"))
    assert (workspace.rev, head.rev, experiment.rev) == (None, second, first)
    assert workspace.predictions["mlp"].tolist() == pytest.approx((prices + 1.0).tolist())
    assert experiment.predictions["mlp"].tolist() == pytest.approx((prices + 5.0).tolist())
    assert head.params["lr"] == 0.002 and experiment.params["mlp.lr"] == 0.01
    assert experiment.label == f"half-lr ({first[:7]})" and workspace.label == "workspace"
    assert load_run(first[:10], repo).label == first[:10]
    assert differing_params([workspace, head, experiment]) == ["lr"]
    with pytest.raises(CliError, match="stash: neither a DVC experiment"):
        resolve_revision("stash", repo)


def test_an_experiment_name_on_two_baselines_is_ambiguous(repo, prices):
    first = commit_run(repo, predictions(prices, {"mlp": 5.0}), PARAMS, "first")
    second = commit_run(repo, predictions(prices, {"mlp": 3.0}), PARAMS, "second")
    for sha in (first, second):
        git(repo, "update-ref", f"refs/exps/{sha[:2]}/{sha[2:]}/trial", sha)
    with pytest.raises(CliError, match="trial: names 2 DVC experiments"):
        resolve_revision("trial", repo)


def test_a_run_without_usable_predictions_is_a_clear_error(repo, prices):
    (repo / "README").write_text("no results yet\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "nothing evaluated")
    with pytest.raises(CliError, match=r"HEAD: has no metrics/predictions\.csv \(evaluate it with `dvc repro`"):
        load_run("HEAD", repo)
    commit_run(repo, pd.DataFrame({"id": [1], "price": [2.0]}), PARAMS, "no model column")
    with pytest.raises(CliError, match="needs columns id, price and one per model"):
        load_run("HEAD", repo)
    commit_run(repo, pd.DataFrame({"id": [1, 2], "price": [2.0, 3.0], "mlp": [1.0, None]}), PARAMS, "a hole")
    with pytest.raises(CliError, match="HEAD: metrics/predictions.csv has empty or non-finite prices"):
        load_run("HEAD", repo)


def test_items_differ_says_how(prices):
    def run(frame: pd.DataFrame) -> Run:
        return Run("r", None, frame.sort_values("id").reset_index(drop=True), {})

    base = run(predictions(prices, {"mlp": 1.0}))
    assert items_differ(base, run(predictions(prices, {"mlp": 2.0}))) is None
    shuffled = predictions(prices, {"mlp": 2.0}).sample(frac=1.0, random_state=0)
    assert items_differ(base, run(shuffled)) is None  # rows are matched by id, not by position
    assert items_differ(base, run(predictions(prices[:-1], {"mlp": 2.0}))) == "200 test items against 199"
    assert items_differ(base, run(predictions(prices, {"mlp": 2.0}, ids=np.arange(200) + 1))) == "other test item ids"
    assert items_differ(base, run(predictions(prices * 1.1, {"mlp": 2.0}))) == "the same ids with other prices"
