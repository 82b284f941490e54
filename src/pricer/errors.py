"""The one base class of every error pricer reports to a person as a single line.

A command or stage catches ``PricerError`` at its edge and prints the message alone: each
subclass's message already names the file, row, key or command at fault.
"""

from __future__ import annotations


class PricerError(Exception):
    """A problem the user can fix; the message says what and where."""
