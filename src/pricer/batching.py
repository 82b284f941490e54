"""Mini-batches straight from a CSR matrix, without densifying and without per-batch scipy.

Once per epoch the rows are permuted (one scipy row gather in C); a batch is then a contiguous
row range, so its column ids and values are zero-copy slices of the CSR arrays and its offsets
one subtraction. This keeps per-step Python overhead to a few tensor views at batch size 64.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from pricer.models import SparseBatch


@dataclass(frozen=True)
class CSRTensors:
    """A CSR matrix (and optional targets) held as torch tensors."""

    indptr: torch.Tensor  # int64, rows + 1
    indices: torch.Tensor  # int64
    values: torch.Tensor  # float32
    targets: torch.Tensor | None  # float32, one per row

    @classmethod
    def from_scipy(cls, matrix: sp.csr_matrix, targets: np.ndarray | None = None) -> "CSRTensors":
        matrix = sp.csr_matrix(matrix)
        if targets is not None and len(targets) != matrix.shape[0]:
            raise ValueError(f"{len(targets)} targets for {matrix.shape[0]} rows")
        return cls(
            indptr=torch.from_numpy(matrix.indptr.astype(np.int64)),
            indices=torch.from_numpy(matrix.indices.astype(np.int64)),
            values=torch.from_numpy(matrix.data.astype(np.float32)),
            targets=None if targets is None else torch.from_numpy(np.asarray(targets, dtype=np.float32)),
        )

    @property
    def rows(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def batch(self, start: int, stop: int) -> SparseBatch:
        """Rows ``start:stop`` as a SparseBatch (views into this matrix)."""
        first, last = int(self.indptr[start]), int(self.indptr[stop])
        return SparseBatch(
            indices=self.indices[first:last],
            offsets=self.indptr[start:stop] - first,
            values=self.values[first:last],
        )

    def take_rows(self, rows: np.ndarray) -> "CSRTensors":
        """A new CSRTensors with the given rows, in that order (used once per epoch)."""
        rows_t = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        starts = self.indptr[rows_t]
        lengths = self.indptr[rows_t + 1] - starts
        indptr = torch.zeros(len(rows_t) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=indptr[1:])
        # position of every kept non-zero in the source arrays: row start + offset within row
        row_of_nnz = torch.repeat_interleave(torch.arange(len(rows_t)), lengths)
        gather = starts[row_of_nnz] + (torch.arange(int(indptr[-1])) - indptr[:-1][row_of_nnz])
        return CSRTensors(
            indptr=indptr,
            indices=self.indices[gather],
            values=self.values[gather],
            targets=None if self.targets is None else self.targets[rows_t],
        )


def epoch_order(rows: int, seed: int, epoch: int, *, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """The shuffled row order of one epoch, a pure function of (seed, epoch).

    Every data-parallel rank draws the same permutation and takes every world_size-th row, so
    ranks see disjoint rows; resuming at an epoch reproduces that epoch's order exactly.
    """
    generator = np.random.default_rng([seed, epoch])
    order = generator.permutation(rows)
    return order[rank::world_size]


def iterate_batches(data: CSRTensors, batch_size: int) -> Iterator[tuple[SparseBatch, torch.Tensor | None]]:
    """Consecutive batches of ``batch_size`` rows (the last may be shorter)."""
    for start in range(0, data.rows, batch_size):
        stop = min(start + batch_size, data.rows)
        targets = None if data.targets is None else data.targets[start:stop]
        yield data.batch(start, stop), targets
