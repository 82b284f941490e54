"""A team's services failing under a member's work (docs/team.md, "When a service fails"), on the
same real services on 127.0.0.1 as test_team.py but a set of their own: a direct database URI
without the experiment's artifact location, a PostgreSQL restart, the MLflow server killed mid-stage,
a failing artifact store and S3 down during `dvc push` / `dvc pull`. Each is one line, within a
bounded time, and loses nothing. The S3 outage runs last (it empties the bucket)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from .conftest import Project, copy_project
from .team_services import (
    BUCKET,
    STAGE_ERROR,
    cache_files,
    create_bucket,
    s3_keys,
    s3_server,
    team_clone,
    train,
    versions,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def clone_a(services, pipeline, tmp_path_factory) -> Project:
    """A member's clone with results: a copy of the session's reproduced pipeline (the faults need
    trained features and cached outputs, not another `dvc repro`: test_team.py reproduces against
    the server as docs/team.md says), its local MLflow store removed (the team's is the server),
    its DVC remote on S3 and `dvc push`, and its commits on a bare git repository (``remote``)
    that other clones start from."""
    root = tmp_path_factory.mktemp("team-faults")
    remote = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True, timeout=30)
    project = team_clone(copy_project(pipeline, root / "a"), services)
    (project.root / "mlflow.db").unlink()
    shutil.rmtree(project.root / "mlartifacts")
    project.dvc("remote", "add", "-d", "storage", f"s3://{BUCKET}/dvc")
    project.run("git", "remote", "add", "origin", str(remote))
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "baseline results on the team's remote")
    project.run("git", "push", "-q", "origin", "main")
    project.dvc("push", timeout=300)
    project.remote = remote
    return project


def test_a_direct_database_uri_needs_the_experiments_artifact_location(services, clone_a):
    direct = {"MLFLOW_TRACKING_URI": services.postgres.uri}
    clone_a.set_params({"tracking": {"experiment": "direct"}})
    try:
        done = train(clone_a, "mlp", env=direct)
        errors = STAGE_ERROR.findall(done.stderr)
        assert done.returncode == 1 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert "has no experiment 'direct'" in errors[0] and "--artifact-location" in errors[0]
        assert not (clone_a.root / "mlartifacts").exists()
        created = subprocess.run(["mlflow", "experiments", "create", "--experiment-name", "direct",
                                  "--artifact-location", f"s3://{BUCKET}/direct"], cwd=clone_a.root,
                                 env=clone_a.env | direct, capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stderr[-3000:]
        done = train(clone_a, "mlp", env=direct)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        clone_a.set_params({"tracking": {"experiment": "pricer"}})
    assert any(key.endswith("/weights.pt") for key in s3_keys(services.s3_endpoint, "direct/"))
    assert not (clone_a.root / "mlartifacts").exists()


def test_a_postgres_restart_between_stages_loses_nothing(services, clone_a):
    before = len(versions(services, "pricer-mlp"))
    services.postgres.restart()
    done = train(clone_a, "mlp")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(versions(services, "pricer-mlp")) == before + 1


def test_the_server_killed_mid_stage_is_one_line_and_the_rerun_completes(services, clone_a, tmp_path):
    before = len(versions(services, "pricer-resnet"))
    clone_a.set_params({"resnet": {"epochs": 30}})
    log = tmp_path / "train.log"
    stage = clone_a.start("python", "stages/train.py", "resnet", log=log)
    deadline = time.monotonic() + 300
    while "epoch 2/" not in log.read_text() and stage.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stage.poll() is None, log.read_text()[-3000:]
    services.stop_server(signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        status = stage.wait(timeout=240)
    finally:
        if stage.poll() is None:
            stage.kill()
        services.start_server()
    output = log.read_text()
    assert status == 1 and "Traceback" not in output, output[-3000:]
    assert time.monotonic() - killed_at < 240
    errors = STAGE_ERROR.findall(output)
    assert len(errors) == 1 and services.tracking_uri in errors[0] and "does not answer" in errors[0], output[-3000:]
    assert len(versions(services, "pricer-resnet")) == before  # nothing half-registered
    clone_a.set_params({"resnet": {"epochs": 2}})
    done = train(clone_a, "resnet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(versions(services, "pricer-resnet")) == before + 1


def test_a_failing_artifact_store_and_s3_down_are_one_line_each(services, clone_a, tmp_path):
    """Runs last: the S3 server stops (moto keeps its objects in memory), and comes back empty."""
    before = len(versions(services, "pricer-mlp"))
    port = int(services.s3_endpoint.rsplit(":", 1)[1])
    cache = cache_files(clone_a)
    services.s3_process.terminate()
    services.s3_process.wait(timeout=30)

    started = time.monotonic()
    done = train(clone_a, "mlp")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = STAGE_ERROR.findall(done.stderr)
    assert len(errors) == 1 and "artifact store" in errors[0] and services.tracking_uri in errors[0], errors
    assert time.monotonic() - started < 240
    assert len(versions(services, "pricer-mlp")) == before  # nothing half-registered

    # botocore's default 5 attempts per file make each of these a 2-minute wait (docs/team.md)
    fail_fast = {"AWS_MAX_ATTEMPTS": "1"}
    pushed = clone_a.with_env(fail_fast).dvc("push", check=False, timeout=300)
    assert pushed.returncode != 0 and "Traceback" not in pushed.stderr, pushed.stderr[-3000:]
    assert cache_files(clone_a) == cache  # nothing lost from the local cache
    done = subprocess.run(["git", "clone", "-q", str(clone_a.remote), str(tmp_path / "e")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    clone_e = team_clone(Project(tmp_path / "e"), services)
    pulled = clone_e.with_env(fail_fast).dvc("pull", check=False, timeout=300)
    assert pulled.returncode != 0 and "Traceback" not in pulled.stderr, pulled.stderr[-3000:]

    with s3_server(services.scratch, port=port):  # S3 is back, empty: the same commands complete
        create_bucket(services.s3_endpoint)
        clone_a.dvc("push", timeout=300)
        clone_e.dvc("pull", timeout=300)
        assert "up to date" in clone_e.dvc("status").stdout
