import os
import signal
import sys
import threading
import time

import pytest

from pricer.signals import sigterm_held, sigterm_raises


class _SigtermWhenCollected:
    """A finalizer that the signal lands in, as it landed in SQLAlchemy's session clean-up."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # the interpreter runs the handler between bytecodes: here
            pass


class _Stop(BaseException):
    pass


def test_sigterm_raises_the_exception_where_the_main_thread_is():
    with pytest.raises(_Stop), sigterm_raises(_Stop):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)


def test_a_sigterm_swallowed_by_a_finalizer_is_raised_again_after_it_quietly(capsys):
    # a finalizer cannot raise: Python printed "Exception ignored in ..." with a traceback, dropped the
    # exception, and the stage went on as if it had not been told to stop
    started = time.monotonic()
    with pytest.raises(_Stop), sigterm_raises(_Stop):
        _SigtermWhenCollected()
        while time.monotonic() - started < 5:
            time.sleep(0.001)
    assert time.monotonic() - started < 4
    assert capsys.readouterr().err == ""


def test_a_block_that_ends_before_the_swallowed_sigterm_comes_again_raises_at_its_end(capsys):
    with pytest.raises(_Stop), sigterm_raises(_Stop):
        _SigtermWhenCollected()
    assert capsys.readouterr().err == ""


def test_other_exceptions_in_finalizers_go_to_the_hook_before_and_both_are_put_back(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    handler_before = signal.getsignal(signal.SIGTERM)

    class RaisesWhenCollected:
        def __del__(self):
            raise ValueError("from a finalizer")

    with sigterm_raises(_Stop):
        RaisesWhenCollected()
    assert [type(unraisable.exc_value) for unraisable in reported] == [ValueError]
    assert sys.unraisablehook == reported.append
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_sigterm_held_runs_the_block_whole_and_then_the_handler():
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: received.append(signum))
    try:
        with sigterm_held():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the interpreter checks for signals between bytecodes
                pass
            assert received == []
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_held_outside_the_main_thread_runs_the_block_as_it_is():
    ran = []

    def block():
        with sigterm_held():
            ran.append(True)

    worker = threading.Thread(target=block)
    worker.start()
    worker.join(timeout=10)
    assert ran == [True]
