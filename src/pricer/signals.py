"""SIGTERM in pricer: raised as an exception where it is safe, held where it is not.

A stage or a command ends on SIGTERM (a `kill`, a CI time-out, DVC cancelling a queued run) the way
it ends on Ctrl-C: an exception unwinds it, so its clean-up runs. Some blocks must not be cut
part-way by that exception (a library's file writer, a transaction with the MLflow store): they
hold the signal until they are over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any


@contextlib.contextmanager
def sigterm_raises(exception: Callable[[], BaseException]) -> Iterator[None]:
    """While the block runs, SIGTERM raises ``exception()`` in the main thread, so the same clean-up
    as Ctrl-C runs: temporary files go, an MLflow run is marked KILLED. Outside the main thread the
    block runs as it is.

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


@contextlib.contextmanager
def sigterm_held() -> Iterator[None]:
    """SIGTERM waits until the block has ended, then takes its course: the handler in place runs
    (``sigterm_raises``'s raises), or the default action ends the process.

    For library code that must not be cut by the exception a SIGTERM handler raises. torch's zip
    writer, interrupted by it, raises its own RuntimeError while unwinding, which replaces the
    SystemExit, and the stage ended with a traceback and status 1 instead of as a terminated run.
    An MLflow store call, interrupted mid-transaction, kept the SQLite store locked for the
    call that marks the run KILLED.
    Only the main thread handles signals; elsewhere, or under a handler installed outside Python
    (which could not be put back), the block runs as it is."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            signal.raise_signal(signal.SIGTERM)  # the handler runs before this returns
