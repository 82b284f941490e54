"""Mini-batches straight from a CSR matrix, without densifying and without per-batch scipy.

Once per epoch the rows are permuted (one vectorised numpy gather); a batch is then a contiguous
row range, so its column ids and values are zero-copy slices of the CSR arrays and its offsets
one subtraction. This keeps per-step Python overhead to a few tensor views at batch size 64.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pricer.models import SparseBatch


@dataclass(frozen=True)
class CSRTensors:
    """A CSR matrix (and optional targets) held as torch tensors."""

    indptr: torch.Tensor  # int64, rows + 1
    indices: torch.Tensor  # int64
    values: torch.Tensor  # float32
    targets: torch.Tensor | None  # float32, one per row

    @classmethod
    def from_scipy(cls, matrix: sp.csr_matrix, targets: np.ndarray | None = None) -> CSRTensors:
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

    def take_rows(self, rows: np.ndarray) -> CSRTensors:
        """A new CSRTensors with the given rows, in that order (used once per epoch).

        Done in numpy on the tensors' shared memory: one repeat and one gather per array, which
        at 800,000 rows is 4x faster and needs 0.6 GB less scratch than the same in torch ops.
        """
        rows = np.asarray(rows, dtype=np.int64)
        source = self.indptr.numpy()
        starts = source[rows]
        lengths = source[rows + 1] - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # source position of every kept non-zero: its new position + (row's source start - new start)
        gather = np.repeat(starts - indptr[:-1], lengths)
        gather += np.arange(indptr[-1], dtype=np.int64)
        return CSRTensors(
            indptr=torch.from_numpy(indptr),
            indices=torch.from_numpy(self.indices.numpy()[gather]),
            values=torch.from_numpy(self.values.numpy()[gather]),
            targets=None if self.targets is None else self.targets[torch.from_numpy(rows)],
        )


def epoch_order(rows: int, seed: int, epoch: int) -> np.ndarray:
    """One epoch's shuffled row order, a pure function of (seed, epoch): resuming at an epoch
    reproduces that epoch's order exactly, and every data-parallel rank draws the same one."""
    return np.random.default_rng([seed, epoch]).permutation(rows)


@dataclass(frozen=True)
class RowShare:
    """The rows ``[start, stop)`` of a split of ``total`` rows that one data-parallel rank owns.

    Shares are contiguous, so a rank reads only its own rows from disk, and differ by at most
    one row; ``of_rank(total, 0, 1)`` is the whole split.
    """

    start: int
    stop: int
    total: int

    @classmethod
    def of_rank(cls, total: int, rank: int, world_size: int) -> RowShare:
        return cls(total * rank // world_size, total * (rank + 1) // world_size, total)

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class RankShares:
    """Where one data-parallel rank stands: its ``rank`` among ``world_size``, and the rows of the
    train and validation splits it holds (None: the data it is given is the whole split, and it
    takes its ``RowShare.of_rank`` of it). The default is one process holding everything."""

    rank: int = 0
    world_size: int = 1
    train: RowShare | None = None
    validation: RowShare | None = None


ONE_PROCESS = RankShares()


@dataclass(frozen=True)
class ShareOfEpoch:
    """A rank's part of one epoch: its rows in the epoch's order, cut at the global batches."""

    rows: np.ndarray  # rows of the share (0 = share.start), in the order the global permutation visits them
    batch_ends: np.ndarray  # end of each global batch's part in ``rows`` (a part may be empty)
    batch_lengths: np.ndarray  # each global batch's full length, over all ranks


def share_of_epoch(share: RowShare, seed: int, epoch: int, batch_size: int) -> ShareOfEpoch:
    """The rows of ``share`` in each global batch of the epoch (``epoch_order`` of every row, cut
    every ``batch_size``): the ranks' parts of one step are together exactly the one-process
    batch of that step, whatever the row count, the world size or the batch size."""
    order = epoch_order(share.total, seed, epoch)
    positions = np.flatnonzero((order >= share.start) & (order < share.stop))
    steps = -(-share.total // batch_size)
    batch_lengths = np.full(steps, batch_size, dtype=np.int64)
    if steps:
        batch_lengths[-1] = share.total - (steps - 1) * batch_size
    return ShareOfEpoch(rows=order[positions] - share.start,
                        batch_ends=np.cumsum(np.bincount(positions // batch_size, minlength=steps)),
                        batch_lengths=batch_lengths)


def iterate_batches(data: CSRTensors, batch_size: int) -> Iterator[tuple[SparseBatch, torch.Tensor | None]]:
    """Consecutive batches of ``batch_size`` rows (the last may be shorter)."""
    for start in range(0, data.rows, batch_size):
        stop = min(start + batch_size, data.rows)
        targets = None if data.targets is None else data.targets[start:stop]
        yield data.batch(start, stop), targets


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def model_outputs(
    model: nn.Module,
    data: CSRTensors,
    device: torch.device,
    *,
    batch_rows: int = 8192,
    precision: str = "fp32",
) -> torch.Tensor:
    """Raw model outputs for every row of ``data``, in large batches, on the CPU, float32."""
    was_training = model.training
    model.eval()
    outputs = []
    with autocast(device, precision):
        for batch, _ in iterate_batches(data, batch_rows):
            outputs.append(model(batch.to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0)
