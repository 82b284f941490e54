"""A team's setup with real services on 127.0.0.1 (docs/team.md): ``mlflow server`` on PostgreSQL with
its artifacts in an S3 bucket (moto's server) and the basic-auth app, a DVC remote in the same S3,
and a bare git repository as the team's git host. Clone A follows docs/team.md and pushes; two more
clones run experiments at once, and one of them pushes its experiment, half-lr; clone B, a second
team member, pulls, compares with half-lr, promotes and prices with the champion. One set of
services for the module (``services``); every wait is bounded.
The faults are test_team_faults.py's, on a set of their own, so the two modules run side by side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, Project, make_project
from .servers import free_port, running
from .team_services import ADMIN_PASSWORD, all_runs, s3_keys, team_clone, versions
from .walkthroughs import command_blocks, run_block, runnable

pytestmark = pytest.mark.e2e

TEXT = "Title: Cordless drill, 20V, two batteries\nCategory: Tools & Home Improvement"
AT_ONCE = {"half-lr": 0.0005, "other-lr": 0.003}  # the experiments two clones run at the same time, and their lr


@pytest.fixture(scope="module")
def clone_a(services, tmp_path_factory) -> Project:
    """Clone A follows docs/team.md as written (``follow_the_walkthrough``: the admin's users, bea's
    DVC remote, `dvc repro` against the server and `dvc push` to S3, her promotion, carl's price),
    then publishes its commits to a bare git repository."""
    root = tmp_path_factory.mktemp("team")
    remote = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True, timeout=30)
    project = team_clone(make_project(root / "a"), services)
    project.walkthrough = follow_the_walkthrough(project)
    project.run("git", "remote", "add", "origin", str(remote))
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "baseline results")
    project.run("git", "push", "-q", "origin", "main")
    project.remote = remote
    return project


@pytest.fixture(scope="module")
def experiments_at_once(services, clone_a, tmp_path_factory) -> dict[str, int]:
    """Two more clones of the team's repository (git clone, `dvc pull`) each run an experiment at
    the same time against the same server and S3: `half-lr` (lr 0.0005), which its clone then
    pushes, and `other-lr` (lr 0.003). Each experiment's exit status, by name."""
    root = tmp_path_factory.mktemp("at-once")
    clones = {}
    for name in AT_ONCE:
        done = subprocess.run(["git", "clone", "-q", str(clone_a.remote), str(root / name)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        clone = team_clone(Project(root / name), services)
        clone.dvc("pull", timeout=300)
        clones[name] = clone
    running = {name: clone.start(sys.executable, "-m", "dvc", "exp", "run", "-n", name, "-S", f"lr={lr}",
                                 log=root / f"{name}.log")
               for (name, lr), clone in zip(AT_ONCE.items(), clones.values(), strict=True)}
    statuses = {}
    try:
        for name, process in running.items():
            statuses[name] = process.wait(timeout=900)
    finally:  # neither outlives the fixture, whichever failed or ran out of time
        for process in running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # its stages too: Project.start gave it a session
                process.wait(timeout=30)
    for name, status in statuses.items():
        assert status == 0, (root / f"{name}.log").read_text()[-3000:]
    clones["half-lr"].dvc("exp", "push", "origin", "half-lr", timeout=300)
    return statuses


def follow_the_walkthrough(project: Project) -> str:
    """docs/team.md's blocks, in order, in ``project`` (as the admin where the page says so, as bea
    and carl where its commands say so; its set-up blocks are what ``client_env`` holds); their output."""
    blocks = runnable(command_blocks(REPO_ROOT / "docs" / "team.md"))
    assert len(blocks) >= 4
    return "".join(run_block(project, "docs/team.md", number, body) for number, body in enumerate(blocks, start=1))


def test_clone_a_lands_on_the_server_and_in_the_bucket(services, clone_a):
    runs = all_runs(services)
    names = {run.info.run_name for run in runs}
    assert {"mlp-workspace", "resnet-workspace"} <= names, names
    assert all(run.info.status == "FINISHED" for run in runs)
    workspace = next(run for run in runs if run.info.run_name == "resnet-workspace")
    assert "test_mae" in workspace.data.metrics and workspace.inputs.dataset_inputs
    registered = {int(v.version): v.run_id for v in versions(services, "pricer-resnet")}
    assert registered[1] == workspace.info.run_id  # the first version is clone A's
    assert len(versions(services, "pricer-mlp")) == 1
    artifacts = s3_keys(services.s3_endpoint, "mlartifacts/")
    assert any(key.endswith("/weights.pt") for key in artifacts), artifacts[:20]
    assert len(s3_keys(services.s3_endpoint, "dvc/")) > 0


def test_the_password_is_nowhere_but_the_environment(services, clone_a):
    root = clone_a.root
    written = [root / "params.yaml", root / "dvc.lock", *sorted((root / "metrics").rglob("*")),
               *sorted((root / "models").rglob("*.json"))]
    for path in written:
        if path.is_file():
            assert ADMIN_PASSWORD not in path.read_text(errors="replace"), path
    assert ADMIN_PASSWORD not in clone_a.walkthrough
    assert ADMIN_PASSWORD not in clone_a.run("git", "log", "-p", "--all").stdout
    for run in all_runs(services):
        recorded = json.dumps([run.data.params, run.data.tags])
        assert ADMIN_PASSWORD not in recorded and "MLFLOW_TRACKING_PASSWORD" not in recorded


def test_clone_b_pulls_compares_promotes_and_prices_the_champion(services, clone_a, experiments_at_once, tmp_path):
    done = subprocess.run(["git", "clone", "-q", str(clone_a.remote), str(tmp_path / "b")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    clone_b = team_clone(Project(tmp_path / "b"), services)
    clone_b.dvc("pull", timeout=300)
    assert "up to date" in clone_b.dvc("status").stdout
    clone_b.dvc("exp", "pull", "origin", "half-lr", timeout=300)
    compared = clone_b.cli_here("compare", "workspace", "half-lr")
    assert "half-lr" in compared.stdout and "resnet" in compared.stdout

    promoted = clone_b.cli_here("promote", "resnet", "--exp", "workspace")
    assert "pricer-resnet@champion -> version 1 (experiment workspace)" in promoted.stdout
    local = price(clone_a, "models/resnet")
    assert price(clone_b, "models:/pricer-resnet@champion") == local

    port = free_port()
    serve = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", "models:/pricer-resnet@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with running(serve, cwd=clone_b.root, env=clone_b.env, log_path=tmp_path / "serve.log",
                 health_url=f"http://127.0.0.1:{port}/ping", timeout_s=240):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         data=json.dumps({"dataframe_records": [{"summary": TEXT}]}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            served = json.loads(response.read())["predictions"][0]["price"]
    assert served == pytest.approx(local, abs=0.005)  # the CLI prints cents


def price(project: Project, model: str) -> float:
    """``pricer predict -m model`` of TEXT in ``project``, in dollars (the CLI rounds to cents)."""
    printed = json.loads(project.cli_here("predict", "-m", model, "-f", "json", TEXT).stdout)
    prices = printed["predictions"][0]["prices"]  # the price, and <model>_low/<model>_high: its range
    (dollars,) = [value for column, value in prices.items() if not column.endswith(("_low", "_high"))]
    return dollars


def test_the_team_walkthrough_works_as_written(services, clone_a):
    """Clone A walked docs/team.md's blocks (``follow_the_walkthrough``); carl, who may only read,
    is refused a promotion in one line that names his login and never his password."""
    assert "pricer-resnet@champion -> version 1 (experiment workspace)" in clone_a.walkthrough
    carl = clone_a.env | {"MLFLOW_TRACKING_USERNAME": "carl", "MLFLOW_TRACKING_PASSWORD": "carl-Reads-2027"}
    refused = subprocess.run(["pricer", "promote", "resnet", "--exp", "workspace", "-qq"], cwd=clone_a.root,
                             env=carl, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "the login 'carl' may not" in refused.stderr and "HTTP 403" in refused.stderr
    assert "carl-Reads-2027" not in refused.stderr


def test_two_clones_running_experiments_at_once_both_land(services, experiments_at_once):
    assert experiments_at_once == {name: 0 for name in AT_ONCE}
    runs = all_runs(services)
    trained = {run.info.run_name: run for run in runs if run.info.run_name in {f"resnet-{name}" for name in AT_ONCE}}
    assert sorted(trained) == sorted(f"resnet-{name}" for name in AT_ONCE), sorted(run.info.run_name for run in runs)
    assert all(run.info.status == "FINISHED" and "test_mae" in run.data.metrics for run in trained.values())
    for name, lr in AT_ONCE.items():
        assert trained[f"resnet-{name}"].data.params["params.lr"] == str(lr)
    # each trained model registered its own version, beside clone A's
    assert {int(v.version) for v in versions(services, "pricer-resnet")} == {1, 2, 3}
