"""What a person at a terminal sees from a stage: log lines, progress bars, one-line errors."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

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


@contextlib.contextmanager
def sigterm_raises(exception: Callable[[], BaseException]) -> Iterator[None]:
    """While the block runs, SIGTERM (a `kill`, a CI timeout, DVC cancelling a queued run) raises
    ``exception()`` in the main thread, so the same clean-up as Ctrl-C runs: temporary files go, an
    MLflow run is marked KILLED. Outside the main thread the block runs as it is.

    The signal lands wherever the main thread is, and that may be a finalizer (a ``__del__``, a
    weakref callback such as SQLAlchemy's session clean-up), which cannot raise: Python prints the
    exception as "ignored" and goes on. Such a swallowed exception is kept quiet and SIGTERM comes
    again a moment later, when the finalizer is over; should the block end first, it raises there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised: list[BaseException] = []
    resend: list[threading.Timer] = []

    def terminated(signum: int, frame: FrameType | None) -> None:
        raised.append(exception())
        raise raised[-1]

    def swallowed(unraisable: Any) -> None:
        if not raised or unraisable.exc_value is not raised[-1]:
            previous_hook(unraisable)
            return
        timer = threading.Timer(_RESEND_AFTER_S, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        resend.append(timer)
        timer.start()

    previous_handler = signal.signal(signal.SIGTERM, terminated)
    previous_hook, sys.unraisablehook = sys.unraisablehook, swallowed
    try:
        yield
        if any(timer.is_alive() for timer in resend):
            raise exception()
    finally:
        for timer in resend:
            timer.cancel()
        signal.signal(signal.SIGTERM, previous_handler)
        sys.unraisablehook = previous_hook


_RESEND_AFTER_S = 0.01  # finalizers are short; a swallowed SIGTERM lands again outside them


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
