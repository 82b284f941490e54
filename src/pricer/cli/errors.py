"""The one error type the ``pricer`` commands raise for the user."""

from __future__ import annotations

from pricer.errors import PricerError


class CliError(PricerError, RuntimeError):
    """A problem that stops the command (exit status 1), with a one-line message for the user."""
