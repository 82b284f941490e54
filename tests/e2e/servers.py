"""Background servers for end-to-end tests (started on loopback, waited on with a deadline, always
stopped with their process group), and headless Chromium to look at their pages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import free_port  # noqa: F401 (re-exported: the e2e modules import it from here)

from .conftest import run_bounded

# What every `mlflow server` / `mlflow ui` here runs with, as docs/team.md advises: without it, MLflow
# 3 starts job runners for its GenAI features (pricer uses none) that poll while idle, about 14
# CPU-seconds a minute per server on this 2-core machine.
NO_SERVER_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _wait_healthy(process: subprocess.Popen, health_url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"{health_url}: the server exited ({process.returncode}):\n{log_path.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{health_url}: not healthy in {timeout_s:g} s:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.5)


@contextmanager
def running(command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path, health_url: str,
            timeout_s: float = 180) -> Iterator[subprocess.Popen]:
    """``command`` in its own process group, healthy at ``health_url`` within ``timeout_s``;
    SIGTERM (then SIGKILL) to the whole group on the way out."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            _wait_healthy(process, health_url, log_path, timeout_s)
            yield process
        finally:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_run(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url`` with ``args`` (``--dump-dom``, ``--screenshot=FILE``), in a
    throwaway profile, given 20 s of virtual time for the page's scripts to render."""
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"pricer-chromium-{os.getpid()}-{time.monotonic_ns()}"
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,2000",
               "--virtual-time-budget=20000", *args, url]
    try:
        return run_bounded(command, cwd=profile.parent, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
