"""The one error every data source raises, and how a library's exception is shown in it."""

from __future__ import annotations

from pricer.errors import PricerError


class DataError(PricerError):
    """The source cannot be loaded or holds unusable data; the message names the source
    (path or Hub id) and, where relevant, the split, row/line and column."""


def describe_error(error: BaseException) -> str:
    """``Type: first line`` of the informative exception, for one-line messages."""
    # datasets often wraps the informative error (DatasetGenerationError -> ArrowInvalid).
    cause = error.__cause__ or error
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
