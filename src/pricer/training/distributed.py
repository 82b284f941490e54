"""Data-parallel training: the stage relaunches itself under ``torchrun`` and each worker
joins one process group (gloo on CPU, NCCL on GPUs); rank 0 alone tracks and writes outputs.

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from pricer.cores import available_cores
from pricer.errors import PricerError
from pricer.params import TrainParams
from pricer.training.loop import select_device

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


class DistributedError(PricerError):
    """Data-parallel training cannot start as configured."""


@dataclass(frozen=True)
class Processes:
    """This process's place in a (possibly single-process) training run."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

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
    return train.processes > 1 and "LOCAL_RANK" not in os.environ


def _available_workers(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.device_count(), "CUDA devices"
    return available_cores(), "CPU cores"


def relaunch_under_torchrun(script: str, arguments: Sequence[str], train: TrainParams) -> int:
    """Run ``script`` on ``train.processes`` workers under torchrun; its exit code."""
    available, what = _available_workers(select_device(train.device))
    if train.processes > available:
        raise DistributedError(
            f"params.yaml: train.processes is {train.processes} but this machine has {available} {what}; "
            f"use at most {available}"
        )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={train.processes}", script, *arguments]
    log.info("data-parallel training on %d processes: %s", train.processes, " ".join(command))
    return subprocess.run(command, check=False, preexec_fn=die_with_parent).returncode


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
        torch.set_num_threads(max(1, train.threads // world_size))
    if train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    try:
        yield Processes(device=device, rank=rank, world_size=world_size)
    finally:
        if world_size > 1:
            torch.distributed.destroy_process_group()
