"""A queued sweep compared with confidence, and two queue workers writing one MLflow store.

What docs/comparing.md's walk left (``comparing``, walked once per test run; see walkthroughs.py):
the baseline (lr 0.001, seed 42) reproduced and committed, then four experiments queued and run by
two queue workers: `-S lr=0.0003,0.003` (a sweep that retrains the residual network only),
`-S seed=7`, which differs from the baseline only in its training seed (the two get a spread, and
are paired: `data.seed` keeps the test items), and `-S data.seed=7`, another catalogue and split,
which is not paired with anything. Meanwhile a third process read the store. The page's own test
(every block ran) is here too: one module for the walk, so no other module waits for it.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from .conftest import Project
from .walkthroughs import QUEUE_LOGS, QUEUE_STATUS, QUEUED, READER_REPORT, SWEPT

pytestmark = pytest.mark.e2e


def compare(project: Project, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`pricer compare ARGS` in ``project``, in this process (``Project.cli_here``)."""
    return project.cli_here("compare", *args, check=check)


def experiments(project: Project) -> dict[str, str]:
    """Each experiment's name and commit, from `dvc exp show --json`."""
    shown = json.loads(project.dvc("exp", "show", "--json").stdout)
    return {experiment["name"]: experiment["revs"][0]["rev"]
            for baseline in shown for experiment in baseline.get("experiments") or []}


@pytest.fixture(scope="module")
def swept(comparing) -> tuple[Project, dict[tuple[float, int], str], str]:
    """The project right after the page's queue block, and its runs' names by (lr, seed) (main and
    three queued experiments on the baseline's data), and the other data's experiment."""
    directory, _ = comparing
    project = Project(directory / SWEPT)
    status = (directory / QUEUE_STATUS).read_text()
    assert status.count("Success") >= 4 and "Failed" not in status, status
    queued = json.loads((directory / QUEUED).read_text())
    assert len(queued) == 4, queued
    report = json.loads(compare(project, "main", *queued, "--json").stdout)
    names = {(entry["params"]["lr"], entry["params"]["seed"]): entry["name"] for entry in report["runs"]
             if entry["params"]["data.seed"] == 42}
    assert set(names) == {(0.001, 42), (0.0003, 42), (0.003, 42), (0.001, 7)}
    assert names[(0.001, 42)] == "main"
    (other_data,) = [entry["name"] for entry in report["runs"] if entry["params"]["data.seed"] == 7]
    return project, names, other_data


def test_the_comparing_walkthrough_works_as_written(comparing):
    # every block ran (the fixture fails naming a block that did not); the page's promise at its end
    _, output = comparing
    assert "pricer-resnet@champion -> version" in output and "(experiment half-lr)" in output


def queue_log(comparing, name: str) -> str:
    directory, _ = comparing
    return (directory / QUEUE_LOGS / f"{name}.log").read_text()


def test_a_training_seed_sweep_keeps_the_test_items(swept, comparing):
    project, names, _ = swept
    seed_run = names[(0.001, 7)]
    logs = queue_log(comparing, seed_run)
    assert sorted(re.findall(r"Running stage '([^']+)'", logs)) == ["ensemble", "evaluate", "train_mlp",
                                                                     "train_resnet"], logs
    before, after = (project.run("git", "show", f"{rev}:metrics/predictions.csv").stdout.splitlines()
                     for rev in ("main", experiments(project)[seed_run]))
    ids_and_prices = [[line.split(",")[:2] for line in rows] for rows in (before, after)]
    assert ids_and_prices[0] == ids_and_prices[1] and before != after


def test_every_experiment_is_in_dvc_and_in_the_one_mlflow_store(swept):
    project, names, other_data = swept
    queued = set(names.values()) - {"main"} | {other_data}
    shown = {name: rev for name, rev in experiments(project).items() if name in queued}
    assert set(shown) == queued
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


def test_two_queue_workers_and_a_concurrent_reader_share_the_one_store(swept, comparing):
    """Load: the queue's two workers trained at once while a third process read the SQLite store:
    no failure, no "database is locked", no run lost, and every run landed in the project's store."""
    project, names, other_data = swept
    directory, _ = comparing
    read = json.loads((directory / READER_REPORT).read_text())
    assert read["errors"] == [] and read["reads"] >= 20, read
    runs = project.mlflow_runs()
    retrained = {name: ("resnet", "ensemble") for name in (names[(0.0003, 42)], names[(0.003, 42)])}
    retrained |= {names[(0.001, 7)]: ("mlp", "resnet", "ensemble"), other_data: ("mlp", "resnet", "ensemble")}
    for name, models in retrained.items():
        logs = queue_log(comparing, name)
        assert "database is locked" not in logs and "Traceback" not in logs, logs[-3000:]
        mine = {run.info.run_name: run for run in runs if run.data.tags.get("dvc_exp_name") == name}
        trained = {model for model in ("mlp", "resnet", "ensemble") if f"{model}-{name}" in mine}
        assert trained == set(models), sorted(mine)
        metrics = json.loads(project.run("git", "show", f"{experiments(project)[name]}:metrics/resnet.json").stdout)
        resnet = mine[f"resnet-{name}"]
        assert resnet.info.status == "FINISHED"
        lr, seed = next(key for key, value in names.items() if value == name) if name != other_data else (0.001, 42)
        assert (float(resnet.data.params["params.lr"]), int(resnet.data.params["params.seed"])) == (lr, seed)
        assert resnet.data.metrics["test_mae"] == pytest.approx(metrics["test_mae"])
    assert read["most_runs"] == len(runs)  # the reader saw every run land
    # the queue ran in copies under .dvc/tmp/exps; their runs landed in the root's store
    assert not list((project.root / ".dvc").rglob("mlflow.db"))
