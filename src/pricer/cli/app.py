"""The ``pricer`` command line: the parser, logging to stderr, and one-line errors.

Exit status: 0 on success, 1 when a command fails (a one-line ``pricer: ...`` message on stderr,
never a traceback), 2 for a usage error, 130 after Ctrl-C and 143 after SIGTERM (files being
written are removed first, so an ``-o`` file keeps its old content).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from pricer.cli import compare, models, predict, promote, train_worker
from pricer.errors import PricerError
from pricer.signals import sigterm_raises

log = logging.getLogger("pricer.cli")


class Terminated(BaseException):
    """SIGTERM arrived: raised like Ctrl-C's KeyboardInterrupt so that cleanup code runs. Like it, not
    an ``Exception``: the signal lands wherever the main thread is, and an ``except Exception`` there
    (in pricer or in a library it is importing or running) would swallow it and leave the command
    running, e.g. waiting on stdin for rows that never come."""


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own_version = version("pricer")
    except PackageNotFoundError:
        own_version = "unknown"
    parser = argparse.ArgumentParser(
        prog="pricer",
        description="Predict a product's price from its text with the models the DVC pipeline trained "
                    "(models/mlp, models/resnet and their ensemble, each price with its range), and compare "
                    "experiments with confidence intervals.",
        epilog="Run `pricer COMMAND --help` for a command's options. Comparing experiments, plots and "
               "MLflow: docs/comparing.md.",
    )
    parser.add_argument("--version", action="version", version=f"pricer {own_version}")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="more log messages (debug)")
    verbosity.add_argument("-q", "--quiet", action="count", default=0,
                           help="fewer log messages: -q warnings and errors only (no progress bar), -qq errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (predict, models, compare, promote, train_worker):
        command.add_parser(commands, [verbosity])
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so in-process callers can capture it)."""

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


@contextmanager
def _logging_to_stderr(verbose: int, quiet: int) -> Iterator[None]:
    level = logging.DEBUG if verbose else logging.ERROR if quiet > 1 else logging.WARNING if quiet else logging.INFO
    logger = logging.getLogger("pricer")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("pricer: %(levelname)s: %(message)s" if verbose else "pricer: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def one_line(message: str) -> str:
    """A message on one line: torch's own errors (a model that does not load) span several."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    with _logging_to_stderr(args.verbose, args.quiet):
        try:
            with sigterm_raises(Terminated):
                return args.handler(args)
        except PricerError as error:  # CliError, and the library's own (a model, a store, the registry)
            log.error("%s", one_line(str(error)))
            return 1
        except BrokenPipeError:  # `pricer predict ... | head` closed the pipe: not an error
            with suppress(OSError, ValueError, io.UnsupportedOperation):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except MemoryError:  # a file too large for this machine (a huge CSV field, a giant JSON document)
            log.error("out of memory while running %s; give it smaller input (split the file)", args.command)
            return 1
        except KeyboardInterrupt:
            log.error("interrupted")
            return 130
        except Terminated:
            log.error("terminated")
            return 128 + signal.SIGTERM
