"""Helpers shared by several test modules: a loopback fake Hub, a deep merge of params,
data-parallel ranks started from one server process, and stage scripts run in this process
(``run_stage_here``) or in such ranks (``run_stage_ranks``)."""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from zygote import exit_status


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
                "pricer.target", "pricer.training", "pricer.training.distributed", "pricer.training.runner",
                "pricer.tracking", "pricer.console"]


def spawn_ranks(worker: Callable[..., None], world_size: int, args: tuple) -> None:
    """``worker(rank, *args)`` in ``world_size`` processes, waited for, as ``torch.multiprocessing.spawn``
    does, but forked from one server process that imported torch and pricer once per test process:
    with 'spawn' every rank is a fresh interpreter that imports them anew, 3-4 CPU-seconds a rank.
    Each rank still starts from a clean interpreter state (the server's, never this process's), and
    a rank's exception fails the call, as with spawn."""
    import torch.multiprocessing

    multiprocessing.set_forkserver_preload(RANK_PRELOAD)  # used when the server first starts
    torch.multiprocessing.start_processes(worker, args=args, nprocs=world_size, start_method="forkserver")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server or a rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def as_its_command(directory: Path, environment: Mapping[str, str], argv: list[str] | None = None) -> Iterator[None]:
    """This process, for the duration, as a command run in ``directory`` with exactly
    ``environment`` (and ``argv``); what such a command may change in a process (its argv,
    torch's threads, determinism and random state, the SIGTERM handler, the root logger) is put
    back afterwards."""
    import torch

    root = logging.getLogger()
    saved = (os.getcwd(), sys.argv, dict(os.environ), torch.get_num_threads(),
             torch.are_deterministic_algorithms_enabled(), torch.get_rng_state(), signal.getsignal(signal.SIGTERM),
             root.handlers, root.level)
    try:
        os.chdir(directory)
        os.environ.clear()
        os.environ.update(environment)
        if argv is not None:
            sys.argv = argv
        yield
    finally:
        cwd, sys.argv, environ, threads, deterministic, rng, sigterm, root.handlers, level = saved
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng)
        signal.signal(signal.SIGTERM, sigterm)
        root.setLevel(level)


def run_stage_here(directory: Path, script: str | Path, *args: str, environment: Mapping[str, str],
                   check: bool = False) -> subprocess.CompletedProcess:
    """``python <script> <args>`` run in ``directory`` in this test's own process: a new interpreter
    spends seconds of CPU importing torch, MLflow and scikit-learn before a tiny stage's work, and
    the suite starts hundreds. For tests of what a stage writes and says, not of its process (its
    exit on a signal, settings read at import): the script runs as ``__main__`` with exactly
    ``environment`` (``as_its_command``). Its exit status is what it passes to ``sys.exit``, its
    stderr holds its log lines (INFO, the stage's format) and, had it raised, the traceback. With
    ``check``, a failure fails the test with that output."""
    stdout, stderr = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    argv = [str(script), *args]
    with (as_its_command(directory, environment, argv), contextlib.redirect_stderr(stderr),
          contextlib.redirect_stdout(stdout)):
        root = logging.getLogger()
        root.handlers = [handler]  # the stage's logging.basicConfig then adds none of its own
        root.setLevel(logging.INFO)
        try:
            runpy.run_path(str(script), run_name="__main__")
            status = 0
        except SystemExit as stage_exit:  # what `sys.exit(run_stage(...))` ends with
            status = exit_status(stage_exit)
        except Exception:
            traceback.print_exc()
            status = 1
    done = subprocess.CompletedProcess(argv, status, stdout.getvalue(), stderr.getvalue())
    if check and status != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({status}):\n{done.stdout}\n{done.stderr}")
    return done


def _stage_rank(rank: int, world_size: int, directory: Path, script: str, args: tuple[str, ...],
                environment: dict[str, str], port: int, logs: str) -> None:
    # what torchrun's agent gives each worker of a one-node run (torch.distributed.run)
    ranked = environment | {"RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0",
                            "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    done = run_stage_here(directory, script, *args, environment=ranked)
    Path(logs, f"rank{rank}.log").write_text(done.stderr)
    if done.returncode != 0:
        raise AssertionError(f"rank {rank}: {script} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def run_stage_ranks(directory: Path, script: str, *args: str, environment: Mapping[str, str],
                    world_size: int = 2) -> list[str]:
    """``torchrun --standalone --nproc_per_node=<world_size> <script> <args>`` without torchrun's
    agent and its fresh interpreters: the stage's ranks, forked (``spawn_ranks``) with the
    environment torchrun gives its workers, each ``run_stage_here``; each rank's stderr. For tests
    of what data-parallel ranks train, not of the launch (tests/e2e/test_nodes.py and
    test_interruption.py launch through torchrun). A rank that fails fails the call with its output."""
    with tempfile.TemporaryDirectory() as logs:
        spawn_ranks(_stage_rank, world_size, (world_size, directory, script, tuple(args), dict(environment),
                                              free_port(), logs))
        return [Path(logs, f"rank{rank}.log").read_text() for rank in range(world_size)]


def _forked_stage(directory: Path, script: str, args: tuple[str, ...], environment: dict[str, str],
                  before: Callable[[], None] | None) -> None:
    if before is not None:
        before()
    done = run_stage_here(directory, script, *args, environment=environment)
    sys.stderr.write(done.stderr)
    sys.exit(done.returncode)


def start_stage_forked(directory: Path, script: str, *args: str, environment: Mapping[str, str],
                       before: Callable[[], None] | None = None) -> multiprocessing.Process:
    """``run_stage_here`` started in a process of its own, forked from the server that imported
    torch and pricer once (``spawn_ranks``), after ``before()`` there (a picklable callable: an
    audit hook that kills the process at some write, say); its exit code is the stage's. For tests
    of a stage's process that die with it, without a fresh interpreter's seconds of imports."""
    multiprocessing.set_forkserver_preload(RANK_PRELOAD)
    process = multiprocessing.get_context("forkserver").Process(
        target=_forked_stage, args=(directory, script, tuple(args), dict(environment), before))
    process.start()
    return process


def run_stage_forked(directory: Path, script: str, *args: str, environment: Mapping[str, str],
                     before: Callable[[], None] | None = None, timeout: float = 300) -> int:
    """``start_stage_forked`` waited for: its exit code, negative when a signal ended it."""
    process = start_stage_forked(directory, script, *args, environment=environment, before=before)
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join()
        raise AssertionError(f"{script} {' '.join(args)} still ran after {timeout:g} s: killed")
    return process.exitcode
