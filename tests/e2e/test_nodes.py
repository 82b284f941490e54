"""Training across machines on loopback: node 0 runs the stage, node 1 `pricer train-worker` in
its own clone of the same commit; PRICER_RENDEZVOUS / PRICER_NODE_RANK say where they meet."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from pricer.predictor import PricePredictor

from .conftest import Project, copy_project, make_project
from .servers import free_port

pytestmark = pytest.mark.e2e

# Small enough for a loaded CI machine, large enough that a node that never arrives is told
# apart from a slow start-up of the one that did.
RENDEZVOUS_TIMEOUT_S = 20
# The whole failing run: interpreter, torch and torchrun start-up plus the wait above.
FAILURE_BOUND_S = 150
NODES = {"data": {"synthetic_items": 1000}, "mlp": {"epochs": 2}, "tracking": {"enabled": False},
         "train": {"nodes": 2, "processes": 1, "threads": 1}}


def _environment(port: int, node_rank: int | None = None) -> dict[str, str]:
    env = {"PRICER_RENDEZVOUS": f"127.0.0.1:{port}", "PRICER_RENDEZVOUS_TIMEOUT_S": str(RENDEZVOUS_TIMEOUT_S)}
    return env if node_rank is None else env | {"PRICER_NODE_RANK": str(node_rank)}


def _on_node_0(project: Project, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return project.with_env(env).run(*args, check=False, timeout=600)


def _worker(project: Project, log: Path, env: dict[str, str]) -> subprocess.Popen:
    return project.start("pricer", "train-worker", "mlp", log=log, env=env)


def _finish(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        raise


def _weights(project: Project) -> dict[str, torch.Tensor]:
    return PricePredictor.load(project.root / "models" / "mlp").model.state_dict()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> tuple[Project, Project]:
    """Node 0's project (features built) and node 1's copy of it: the same commit and features
    (README: its own checkout and `dvc repro vectorize` or `dvc pull`, which give those bytes)."""
    node0 = make_project(tmp_path_factory.mktemp("node0"), NODES)
    node0.dvc("repro", "vectorize")
    node1 = copy_project(node0, tmp_path_factory.mktemp("node1") / "pricer")
    return node0, node1


def test_two_nodes_on_loopback_train_the_bytes_of_one_node_with_two_processes(nodes, tmp_path):
    node0, node1 = nodes
    port = free_port()
    worker = _worker(node1, tmp_path / "node1.log", _environment(port, node_rank=1))
    done = _on_node_0(node0, _environment(port), "python", "-m", "dvc", "repro", "train_mlp")
    assert _finish(worker, timeout=120) == 0, (tmp_path / "node1.log").read_text()
    assert done.returncode == 0, done.stderr
    assert "2 nodes x 1 processes, this is node 0, meeting at 127.0.0.1" in done.stderr
    two_nodes = _weights(node0)
    assert not (node1.root / "models" / "mlp").exists()  # node 0 alone writes
    assert "PRICER" not in (node0.root / "dvc.lock").read_text()  # deployment, not results

    # one node, two processes: per rank the same thread (train.threads is per machine); the
    # reference's launch is not under test, so its ranks are forked (helpers.run_stage_ranks)
    node0.set_params({"train": {"nodes": 1, "processes": 2, "threads": 2}})
    node0.run_stage_ranks("train.py", "mlp", world_size=2)
    one_node = _weights(node0)
    assert two_nodes.keys() == one_node.keys()
    for name, tensor in two_nodes.items():
        assert tensor.numpy().tobytes() == one_node[name].numpy().tobytes(), name
    node0.set_params(NODES)


def test_a_node_that_never_arrives_fails_in_one_line_naming_the_rendezvous(nodes, tmp_path):
    """Node 0 whose node 1 never comes, and a worker whose node 0 never comes (the two wait at once,
    at two addresses)."""
    node0, node1 = nodes
    port, worker_port = free_port(), free_port()
    while worker_port == port:
        worker_port = free_port()
    started = time.monotonic()
    worker = _worker(node1, tmp_path / "node1.log", _environment(worker_port, node_rank=1))
    done = _on_node_0(node0, _environment(port), "python", "stages/train.py", "mlp")
    assert done.returncode == 1
    assert f"node 0 waited {RENDEZVOUS_TIMEOUT_S} s at PRICER_RENDEZVOUS=127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr

    assert _finish(worker, timeout=FAILURE_BOUND_S) == 1
    assert time.monotonic() - started < FAILURE_BOUND_S
    log = (tmp_path / "node1.log").read_text()
    assert f"node 1 waited {RENDEZVOUS_TIMEOUT_S} s at PRICER_RENDEZVOUS=127.0.0.1:{worker_port}" in log
    assert "Traceback" not in log


def test_a_node_with_other_params_is_refused_on_both_nodes_naming_the_difference(nodes, tmp_path):
    node0, node1 = nodes
    params = (node1.root / "params.yaml").read_text()
    node1.set_params({"mlp": {"lr": 0.5}})
    try:
        port = free_port()
        worker = _worker(node1, tmp_path / "node1.log", _environment(port, node_rank=1))
        started = time.monotonic()
        done = _on_node_0(node0, _environment(port), "python", "stages/train.py", "mlp")
        assert _finish(worker, timeout=FAILURE_BOUND_S) == 1
        assert time.monotonic() - started < FAILURE_BOUND_S
    finally:
        (node1.root / "params.yaml").write_text(params)
    log = (tmp_path / "node1.log").read_text()
    for output in (done.stderr, log):
        assert "node 1 (rank 1) is not training what node 0 trains: params mlp.lr: 0.5 vs 0.01" in output, output
        assert "Traceback" not in output
    assert done.returncode == 1


def test_the_environment_is_checked_before_any_node_starts(nodes):
    node0, node1 = nodes
    done = node0.run_stage_here("train.py", "mlp", check=False)
    assert done.returncode == 1 and "train.nodes is 2: set PRICER_RENDEZVOUS=host:port on every node" in done.stderr
    done = node1.cli_here("train-worker", "mlp", check=False)
    assert done.returncode == 1 and "set PRICER_NODE_RANK to this machine's node number, 1..1" in done.stderr
    assert "Traceback" not in done.stderr
