"""What a person at a terminal sees from a stage: log lines, progress bars, one-line errors."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from pricer.errors import PricerError
from pricer.signals import sigterm_raises


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


def run_stage(name: str, body: Callable[[], int | None]) -> int:
    """Run a stage's body: its exit code, or 1 after one log line for a ``PricerError``; SIGTERM
    ends it with SystemExit(143) after its clean-up (``sigterm_raises``)."""
    configure_logging()
    log = logging.getLogger(f"pricer.stages.{name}")
    try:
        with sigterm_raises(lambda: SystemExit(128 + signal.SIGTERM)):
            return body() or 0
    except PricerError as error:
        log.error("%s", error)
        return 1
