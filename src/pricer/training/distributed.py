"""Data-parallel training: the stage relaunches itself under ``torchrun`` and each worker
joins one process group (gloo on CPU, NCCL on GPUs); rank 0 alone tracks and writes outputs.

Across machines (``train.nodes`` > 1), node 0 is the machine that runs the stage (``dvc repro``
or ``dvc exp run``) and every other node runs ``pricer train-worker <model>`` in its own
checkout of the same commit. Where they meet is deployment, never a param:
``PRICER_RENDEZVOUS=host:port`` (node 0's address, reachable from every node) and
``PRICER_NODE_RANK`` (1, 2, ... on the other nodes; 0 or unset on node 0). The rendezvous is
torchrun's static one, so global rank 0, the one that writes, is node 0's first process. A node
waits at most ``PRICER_RENDEZVOUS_TIMEOUT_S`` (default 300) for the others.

A worker must never outlive the stage that started it (it would go on writing ``models/`` and
``checkpoints/`` after a kill), so on Linux every process of the tree asks the kernel to kill
it when its parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pricer.cores import available_cores
from pricer.errors import PricerError
from pricer.layout import checkout_commit
from pricer.params import TrainParams, flatten
from pricer.training.loop import select_device

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
RENDEZVOUS_ENV = "PRICER_RENDEZVOUS"
NODE_RANK_ENV = "PRICER_NODE_RANK"
RENDEZVOUS_TIMEOUT_ENV = "PRICER_RENDEZVOUS_TIMEOUT_S"
DEFAULT_RENDEZVOUS_TIMEOUT_S = 300


class DistributedError(PricerError):
    """Data-parallel training cannot start as configured."""


@dataclass(frozen=True)
class Processes:
    """This process's place in a (possibly single-process) training run."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    node: int = 0  # the machine (node rank) this process runs on

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def needs_relaunch(train: TrainParams) -> bool:
    return (train.processes > 1 or train.nodes > 1) and "LOCAL_RANK" not in os.environ


def _available_workers(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.device_count(), "CUDA devices"
    return available_cores(), "CPU cores"


@dataclass(frozen=True)
class Rendezvous:
    """Where the nodes of a multi-machine run meet, from the environment."""

    host: str
    port: int
    node_rank: int
    timeout_s: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def node_rank_from(environ: Mapping[str, str]) -> int:
    """``PRICER_NODE_RANK`` (0 when unset)."""
    value = environ.get(NODE_RANK_ENV, "0").strip() or "0"
    if not value.isdigit():
        raise DistributedError(f"{NODE_RANK_ENV} must be a node number (0 on the machine that runs the stage), "
                               f"got {value!r}")
    return int(value)


def rendezvous_from(environ: Mapping[str, str], nodes: int) -> Rendezvous:
    """The rendezvous of a ``nodes``-machine run, from ``PRICER_RENDEZVOUS`` and friends."""
    address = environ.get(RENDEZVOUS_ENV, "").strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        got = f"got {address!r}" if address else "it is not set"
        raise DistributedError(f"params.yaml: train.nodes is {nodes}: set {RENDEZVOUS_ENV}=host:port on every node "
                               f"(node 0's address and a free port, the same everywhere); {got}")
    node_rank = node_rank_from(environ)
    if node_rank >= nodes:
        raise DistributedError(f"{NODE_RANK_ENV} is {node_rank} but params.yaml: train.nodes is {nodes}: "
                               f"use 1..{nodes - 1} on the other nodes")
    timeout = environ.get(RENDEZVOUS_TIMEOUT_ENV, str(DEFAULT_RENDEZVOUS_TIMEOUT_S)).strip()
    if not timeout.isdigit() or int(timeout) < 1:
        raise DistributedError(f"{RENDEZVOUS_TIMEOUT_ENV} must be a whole number of seconds >= 1, got {timeout!r}")
    return Rendezvous(host.strip("[]"), int(port), node_rank, int(timeout))


def relaunch_under_torchrun(script: str, arguments: Sequence[str], train: TrainParams, *,
                            environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Run ``script`` on ``train.processes`` workers of this node under torchrun; its exit code.

    With ``train.nodes`` > 1 this node joins the static rendezvous at ``PRICER_RENDEZVOUS`` as
    node ``PRICER_NODE_RANK``.
    """
    environ = os.environ if environ is None else environ
    available, what = _available_workers(select_device(train.device))
    if train.processes > available:
        raise DistributedError(
            f"params.yaml: train.processes is {train.processes} but this machine has {available} {what}; "
            f"use at most {available}"
        )
    launcher = [sys.executable, "-m", "pricer.training.launcher"]
    if train.nodes == 1:
        if node_rank_from(environ):
            raise DistributedError(f"{NODE_RANK_ENV} is {environ[NODE_RANK_ENV]} but params.yaml: train.nodes is 1")
        command = [*launcher, "--standalone", f"--nproc_per_node={train.processes}", script, *arguments]
        log.info("data-parallel training on %d processes: %s", train.processes, " ".join(command))
    else:
        rendezvous = rendezvous_from(environ, train.nodes)
        command = [*launcher, f"--nnodes={train.nodes}", f"--nproc_per_node={train.processes}",
                   f"--node_rank={rendezvous.node_rank}", "--rdzv_backend=static",
                   f"--master_addr={rendezvous.host}", f"--master_port={rendezvous.port}",
                   f"--rdzv_conf=timeout={rendezvous.timeout_s}", script, *arguments]
        log.info("data-parallel training on %d nodes x %d processes, this is node %d, meeting at %s "
                 "(waiting up to %d s for the others): %s", train.nodes, train.processes, rendezvous.node_rank,
                 rendezvous.address, rendezvous.timeout_s, " ".join(command))
    return subprocess.run(command, check=False, preexec_fn=die_with_parent, cwd=cwd).returncode


@contextlib.contextmanager
def process_group(train: TrainParams) -> Iterator[Processes]:
    """Join the torchrun process group (when launched by torchrun), set threads and determinism."""
    try:
        device = select_device(train.device)
    except RuntimeError as error:  # an explicit device that this machine lacks
        raise DistributedError(f"params.yaml: {error}") from None
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world_size > 1:
        die_with_parent()
        if rank != 0:
            logging.getLogger().setLevel(logging.WARNING)  # one rank tells the story
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if train.threads:
        # train.threads is per machine: this node's processes share it, whatever the node count
        torch.set_num_threads(max(1, train.threads // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    if train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    try:
        yield Processes(device=device, rank=rank, world_size=world_size, node=int(os.environ.get("GROUP_RANK", 0)))
    finally:
        if world_size > 1:
            torch.distributed.destroy_process_group()


def run_fingerprint(commit: str, params: Mapping[str, Any], feature_md5s: Mapping[str, str]) -> dict[str, Any]:
    """What every rank must share before the first step: the code's commit, every param (flat
    dotted keys) and the md5 of each feature file."""
    return {"commit": commit, "params": flatten(params), "features": dict(feature_md5s)}


def fingerprint_differences(reference: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """Each way ``other`` differs from ``reference`` (both from ``run_fingerprint``), worded."""
    differences = []
    if reference["commit"] != other["commit"]:
        differences.append(f"commit {other['commit'][:12] or '(none)'} vs {reference['commit'][:12] or '(none)'}")
    for kind, what in (("params", "params"), ("features", "feature file")):
        for key in sorted(set(reference[kind]) | set(other[kind])):
            mine, theirs = other[kind].get(key, "(absent)"), reference[kind].get(key, "(absent)")
            if mine != theirs:
                differences.append(f"{what} {key}: {mine!r} vs {theirs!r}")
    return differences


def check_same_run(processes: Processes, params: Mapping[str, Any], feature_md5s: Mapping[str, str]) -> None:
    """Refuse, on every rank, a run whose ranks differ in commit, params or features (a
    collective: every rank calls it before the first step; nothing to compare in one process)."""
    if not processes.distributed:
        return
    fingerprint = run_fingerprint(checkout_commit(), params, feature_md5s)
    gathered: list[Any] = [None] * processes.world_size
    torch.distributed.all_gather_object(gathered, {"node": processes.node, "fingerprint": fingerprint})
    reference = gathered[0]["fingerprint"]
    for rank, theirs in enumerate(gathered):
        differences = fingerprint_differences(reference, theirs["fingerprint"])
        if differences:
            shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
            raise DistributedError(
                f"node {theirs['node']} (rank {rank}) is not training what node 0 trains: {shown} "
                "(node 0's last); every node needs the same commit, params.yaml and features"
            )


