"""Where the data stages' per-row work runs: this process, local worker processes, or a Dask cluster.

A deployment setting, not a param: the environment variable :data:`SCHEDULER_ENV` names a Dask
distributed scheduler (``tcp://host:port``); without it, work runs on ``n_jobs`` local processes
as before. The work is a pure function of each item and results come back in input order, so the
outputs are the same bytes wherever it ran; that is why the address is in neither dvc.lock nor
MLflow's params.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from pricer.errors import PricerError

log = logging.getLogger(__name__)

SCHEDULER_ENV = "PRICER_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 10
# Work items in flight per worker process: enough to keep each busy, few enough that memory
# follows the window and not the data.
IN_FLIGHT_PER_WORKER = 2

Item = TypeVar("Item")
Result = TypeVar("Result")
OrderedMap = Callable[[Callable[..., Any], Iterable[Any]], Iterator[Any]]


class EngineError(PricerError):
    """The configured Dask scheduler cannot be used."""


def scheduler_address(environ: dict[str, str] | None = None) -> str | None:
    address = (os.environ if environ is None else environ).get(SCHEDULER_ENV, "").strip()
    return address or None


@contextlib.contextmanager
def ordered_map(n_jobs: int = 1) -> Iterator[OrderedMap]:
    """Yield ``run(function, items)``: an iterator of ``function(item)`` in the order of ``items``,
    computed on the Dask cluster named by :data:`SCHEDULER_ENV`, else on ``n_jobs`` local processes
    (in this process when 1). At most a few items per worker are in flight at once."""
    address = scheduler_address()
    if address is not None:
        with _dask_client(address) as client:
            workers = max(1, sum(client.nthreads().values()))
            log.info("running on the Dask cluster at %s (%d worker threads)", address, workers)
            yield lambda function, items: _windowed(client, function, items, workers * IN_FLIGHT_PER_WORKER)
        return
    if n_jobs <= 1:
        yield lambda function, items: map(function, items)
        return
    from joblib import Parallel, delayed

    with Parallel(n_jobs=n_jobs, return_as="generator", pre_dispatch=f"{IN_FLIGHT_PER_WORKER}*n_jobs") as parallel:
        yield lambda function, items: parallel(delayed(function)(item) for item in items)


@contextlib.contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    from dask.distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise EngineError(f"{SCHEDULER_ENV}={address}: cannot reach the Dask scheduler within "
                          f"{CONNECT_TIMEOUT_S} s ({error}); start it, or unset {SCHEDULER_ENV} "
                          "to run on this machine") from None
    except ValueError as error:
        raise EngineError(f"{SCHEDULER_ENV}={address}: not a scheduler address ({error}); "
                          "expected tcp://host:port") from None
    try:
        yield client
    finally:
        client.close()


def _windowed(client: Any, function: Callable[[Item], Result], items: Iterable[Item], window: int) -> Iterator[Result]:
    pending: deque[Any] = deque()
    for item in items:
        # pure=False: the same item submitted twice is computed twice, never mixed up by key.
        pending.append(client.submit(function, item, pure=False))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
