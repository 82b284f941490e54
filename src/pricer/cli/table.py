"""Aligned plain-text tables, as the ``pricer`` commands print them to a terminal."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(lines: Sequence[Sequence[str]], right: set[int] = frozenset()) -> str:
    """Aligned columns two spaces apart; the columns numbered in ``right`` are right-aligned."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "".join(
        "  ".join(cell.rjust(width) if i in right else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(line, widths, strict=False))).rstrip() + "\n"
        for line in lines
    )
