"""A queued sweep compared with confidence: `dvc exp run --queue`, `dvc queue start -j 2`, `pricer compare`.

One project for the module: the baseline (lr 0.001, seed 42) is reproduced and committed, then
four experiments are queued and run by two queue workers: `-S lr=0.0003,0.003` (a sweep that
retrains the residual network only), `-S seed=7`, which differs from the baseline only in its
training seed (the two get a spread, and are paired: `data.seed` keeps the test items), and
`-S data.seed=7`, another catalogue and split, which is not paired with anything.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from .conftest import Project, commit_all, copy_project

pytestmark = pytest.mark.e2e

QUEUE_DEADLINE_S = 1500


def compare(project: Project, *args: str, check: bool = True):
    return project.run(sys.executable, "-m", "pricer.cli", "compare", *args, check=check)


def experiments(project: Project) -> dict[str, str]:
    """Each experiment's name and commit, from `dvc exp show --json`."""
    shown = json.loads(project.dvc("exp", "show", "--json").stdout)
    return {experiment["name"]: experiment["revs"][0]["rev"]
            for baseline in shown for experiment in baseline.get("experiments") or []}


@pytest.fixture(scope="module")
def swept(pipeline, tmp_path_factory) -> tuple[Project, dict[tuple[float, int], str]]:
    """The project after the sweep, and its runs' names by (lr, seed) (main and three experiments
    on the baseline's data), plus the other data's experiment under the key "other data"."""
    project = commit_all(copy_project(pipeline, tmp_path_factory.mktemp("pricer-sweep") / "pricer"), "baseline run")
    project.dvc("exp", "run", "--queue", "-S", "lr=0.0003,0.003")
    project.dvc("exp", "run", "--queue", "-S", "seed=7")
    project.dvc("exp", "run", "--queue", "-S", "data.seed=7")
    project.dvc("queue", "start", "-j", "2")
    deadline = time.monotonic() + QUEUE_DEADLINE_S
    try:
        while True:
            status = project.dvc("queue", "status").stdout
            if not any(word in status for word in ("Queued", "Running")):
                break
            assert time.monotonic() < deadline, f"the queue had not finished in {QUEUE_DEADLINE_S} s:\n{status}"
            time.sleep(5)
    finally:
        project.stop_queue_workers()
    assert status.count("Success") == 4 and "Failed" not in status, status
    report = json.loads(compare(project, "main", *sorted(experiments(project)), "--json").stdout)
    names = {(entry["params"]["lr"], entry["params"]["seed"]): entry["name"] for entry in report["runs"]
             if entry["params"]["data.seed"] == 42}
    assert set(names) == {(0.001, 42), (0.0003, 42), (0.003, 42), (0.001, 7)}
    assert names[(0.001, 42)] == "main"
    (other_data,) = [entry["name"] for entry in report["runs"] if entry["params"]["data.seed"] == 7]
    return project, names, other_data


def test_a_training_seed_sweep_keeps_the_test_items(swept):
    project, names, _ = swept
    seed_run = names[(0.001, 7)]
    logs = project.dvc("queue", "logs", seed_run).stdout
    assert sorted(re.findall(r"Running stage '([^']+)'", logs)) == ["ensemble", "evaluate", "train_mlp",
                                                                     "train_resnet"], logs
    before, after = (project.run("git", "show", f"{rev}:metrics/predictions.csv").stdout.splitlines()
                     for rev in ("main", experiments(project)[seed_run]))
    ids_and_prices = [[line.split(",")[:2] for line in rows] for rows in (before, after)]
    assert ids_and_prices[0] == ids_and_prices[1] and before != after


def test_every_experiment_is_in_dvc_and_in_the_one_mlflow_store(swept):
    project, names, other_data = swept
    shown = experiments(project)
    assert set(shown) == set(names.values()) - {"main"} | {other_data}
    report = json.loads(compare(project, *shown, "--json").stdout)
    assert {entry["name"]: entry["rev"] for entry in report["runs"]} == shown  # the same commits
    runs = project.mlflow_runs()
    assert {run.data.tags.get("dvc_exp_name") for run in runs} >= set(shown) | {"workspace"}
    run_names = {run.info.run_name for run in runs}
    assert {f"resnet-{name}" for name in shown} <= run_names  # lr and seed train the residual network
    assert f"mlp-{names[(0.001, 7)]}" in run_names  # and the seed the MLP too


def test_the_sweep_table_and_json(swept):
    project, names, other_data = swept
    lines = compare(project, *names.values()).stdout.splitlines()
    assert lines[0] in ("4 runs, best resnet first", "4 runs, best mlp first")
    header = lines[1].split()
    assert header[:2] == ["run", "items"] and header[-2:] == ["seed", "lr"]
    rows = lines[2:6]
    assert sorted(row.split()[0] for row in rows) == sorted(names.values())

    report = json.loads(compare(project, *names.values(), "--json").stdout)
    assert report["params"] == ["seed", "lr"]
    key = report["sorted_by"]
    maes = [entry["mae"][key]["mae"] for entry in report["runs"]]
    assert maes == sorted(maes)
    assert [row.split()[0] for row in rows] == [entry["name"] for entry in report["runs"]]
    for entry in report["runs"]:
        for model in ("mlp", "resnet"):
            figure = entry["mae"][model]
            assert figure["low"] < figure["mae"] < figure["high"]
        metrics = json.loads(project.run("git", "show", f"{entry['rev']}:metrics/resnet.json").stdout)
        assert entry["mae"]["resnet"]["mae"] == pytest.approx(metrics["test_mae"], abs=0.01)
    assert "paired" not in report


def test_runs_differing_only_in_seed_get_their_spread(swept):
    project, names, other_data = swept
    report = json.loads(compare(project, *names.values(), "--json").stdout)
    by_name = {entry["name"]: entry for entry in report["runs"]}
    (group,) = report["seed_groups"]
    assert sorted(group["runs"]) == sorted([names[(0.001, 42)], names[(0.001, 7)]])
    assert sorted(group["seeds"]) == [7, 42]
    for model in ("mlp", "resnet"):
        values = [by_name[name]["mae"][model]["mae"] for name in group["runs"]]
        assert group["models"][model]["mean"] == pytest.approx(sum(values) / 2)
        assert group["models"][model]["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert "seed spread over 2 runs differing only in seed (" in compare(project, *names.values()).stdout


def test_two_runs_on_the_same_items_are_paired(swept):
    project, names, other_data = swept
    done = compare(project, names[(0.003, 42)], names[(0.0003, 42)])
    assert f"A = {names[(0.003, 42)]} (" in done.stdout and "85 test items, the same in both" in done.stdout
    report = json.loads(compare(project, names[(0.003, 42)], names[(0.0003, 42)], "--json").stdout)
    paired = {row["model"]: row for row in report["paired"]}
    assert paired["mlp"]["diff"] == 0 and paired["mlp"]["verdict"] == "no detectable difference"  # lr is resnet's
    resnet = paired["resnet"]
    assert resnet["low"] <= resnet["diff"] <= resnet["high"]
    first, second = (entry["mae"]["resnet"]["mae"] for entry in report["runs"])
    assert resnet["diff"] == pytest.approx(first - second)


def test_runs_differing_only_in_the_training_seed_are_paired_on_the_same_items(swept):
    project, names, _ = swept
    report = json.loads(compare(project, names[(0.001, 7)], names[(0.001, 42)], "--json").stdout)
    assert report["paired"] and {row["model"] for row in report["paired"]} == {"mlp", "resnet", "ensemble"}


def test_runs_on_other_test_items_are_not_paired(swept):
    project, names, other_data = swept
    other_seed, baseline = other_data, names[(0.001, 42)]
    done = compare(project, other_seed, baseline)
    (warning,) = done.stderr.strip().splitlines()
    commit = experiments(project)[other_seed][:7]
    main_commit = project.run("git", "rev-parse", "--short=7", "main").stdout.strip()
    assert warning.startswith(f"pricer: {other_seed} ({commit}) and main ({main_commit}) were evaluated on "
                              "different test items (")
    assert warning.endswith("): not paired, intervals only")
    assert "A - B" not in done.stdout and "mlp: MAE [95% CI]" in done.stdout
    report = json.loads(compare(project, other_seed, baseline, "--json").stdout)
    assert report["paired"] is None and report["unpaired_reason"]


def test_unknown_run_is_a_one_line_error(swept):
    project, _, _ = swept
    done = compare(project, "no-such-run", check=False)
    assert done.returncode == 1
    assert done.stderr == "pricer: no-such-run: neither a DVC experiment (`dvc exp show`) nor a git revision\n"
