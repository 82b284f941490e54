"""The ceiling the CPU cores set on params that start processes or threads."""

from __future__ import annotations

import os

import pytest

from pricer.cores import available_cores, check_at_most_cores
from pricer.params import ParamsError


def test_the_cores_are_those_this_process_may_use():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cores() == expected >= 1


def test_more_workers_than_cores_are_refused_naming_the_key():
    check_at_most_cores("vectorize.n_jobs", 2, cores=2)
    with pytest.raises(ParamsError, match=r"^params.yaml: vectorize.n_jobs is 24 but this machine has 2 CPU cores; "
                                          r"use at most 2$"):
        check_at_most_cores("vectorize.n_jobs", 24, cores=2)
    with pytest.raises(ParamsError, match="train.threads is 2 but this machine has 1 CPU core; use at most 1"):
        check_at_most_cores("train.threads", 2, cores=1)
