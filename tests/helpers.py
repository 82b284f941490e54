"""Helpers shared by several test modules: a loopback fake Hub, a deep merge of params, and
data-parallel ranks started from one server process."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _NotFoundHub(BaseHTTPRequestHandler):
    """Answers the dataset-info API the way huggingface.co does for unknown ids and revisions."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        code = "RevisionNotFound" if "/revision/" in self.path else "RepoNotFound"
        self.send_response(404)
        if self.path.startswith("/api/datasets/"):
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def not_found_hub() -> Iterator[str]:
    """Serve on a free loopback port for the duration; yield its address for HF_ENDPOINT."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundHub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s keys replaced, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = deep_merge(base[key], value) if nested else value
    return merged


# What the ranks' server imports once: the test modules' own imports. (Not the test modules themselves:
# Python 3.11's forkserver does not take the test directories' sys.path, and skips what it cannot import.)
RANK_PRELOAD = ["numpy", "scipy.sparse", "pytest", "torch", "torch.distributed", "pricer.batching", "pricer.models",
                "pricer.target", "pricer.training", "pricer.training.distributed"]


def spawn_ranks(worker: Callable[..., None], world_size: int, args: tuple) -> None:
    """``worker(rank, *args)`` in ``world_size`` processes, waited for, as ``torch.multiprocessing.spawn``
    does, but forked from one server process that imported torch and pricer once per test process:
    with 'spawn' every rank is a fresh interpreter that imports them anew, 3-4 CPU-seconds a rank.
    Each rank still starts from a clean interpreter state (the server's, never this process's), and
    a rank's exception fails the call, as with spawn."""
    import torch.multiprocessing

    multiprocessing.set_forkserver_preload(RANK_PRELOAD)  # used when the server first starts
    torch.multiprocessing.start_processes(worker, args=args, nprocs=world_size, start_method="forkserver")
