"""The CPU cores this process may use, and the ceiling they set on params that start processes
or threads (``vectorize.n_jobs``, ``train.threads``; ``train.processes`` also counts CUDA devices).

More workers than cores only costs memory (each hashing process holds its chunks, 28 processes
took 4.2 GB on 2 cores) and time spent switching between them, so such a value is refused before
any work, naming the key.
"""

from __future__ import annotations

import os

from pricer.params import ParamsError


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as ``taskset`` or a container's cpuset
    leaves it), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on macOS and Windows
        return os.cpu_count() or 1


def check_at_most_cores(key: str, value: int, cores: int | None = None) -> None:
    """Raise a ParamsError naming ``key`` when ``value`` workers would exceed the cores."""
    cores = available_cores() if cores is None else cores
    if value > cores:
        raise ParamsError(f"params.yaml: {key} is {value} but this machine has {cores} CPU core"
                          f"{'s' if cores != 1 else ''}; use at most {cores}")
