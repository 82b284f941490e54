"""What a person at a terminal sees from a stage: log lines, progress bars, one-line errors."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from pricer.errors import PricerError


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("PRICER_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def progress_enabled(setting: bool | str) -> bool:
    """Progress bars: on for a person at a terminal, off in CI and in logs."""
    if setting == "auto":
        return not os.environ.get("CI") and sys.stderr.isatty()
    return bool(setting)


def _terminated(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (a `kill`, a CI timeout, DVC cancelling a queued run) becomes an exception, so the
    # same clean-up as Ctrl-C runs: temporary files go, an MLflow run is marked KILLED.
    raise SystemExit(128 + signum)


def run_stage(name: str, body: Callable[[], int | None]) -> int:
    """Run a stage's body: its exit code, or 1 after one log line for a ``PricerError``."""
    configure_logging()
    signal.signal(signal.SIGTERM, _terminated)
    log = logging.getLogger(f"pricer.stages.{name}")
    try:
        return body() or 0
    except PricerError as error:
        log.error("%s", error)
        return 1
