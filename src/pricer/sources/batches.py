"""A source split as a stream of row batches, so that no stage holds a whole split.

Each batch is described by a small picklable item (a slice of a memory-mapped Arrow table, or
the row range of the generated catalogue) and turned into a frame by a module-level function,
so the work can run in this process or on a Dask worker alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

#: Rows per batch read from a source (the generated catalogue's block, so a batch is one block).
SOURCE_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class SplitBatches:
    """One source split: its row count (None until read) and its batches, each ``(item, first_row)``."""

    rows: int | None
    items: Callable[[], Iterable[tuple[Any, int]]]
    materialise: Callable[[Any], pd.DataFrame]

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> SplitBatches:
        """A split already in memory (an empty one, or a test's)."""
        step = SOURCE_BATCH_ROWS
        return cls(len(frame), lambda: ((frame.iloc[start : start + step], start)
                                        for start in range(0, len(frame), step)), _same)


def _same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame
