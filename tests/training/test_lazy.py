"""The lazy input optimizer against dense AdamW: equal on rows touched every step; frozen
moments and deferred (but exact) weight decay on the others; clipping that counts sparse grads."""

import math

import numpy as np
import pytest
import torch
from helpers import spawn_ranks
from torch import nn

from pricer.models import SparseBatch, SparseLinear
from pricer.training.lazy import LazyInputAdamW, clip_gradients

LR, WEIGHT_DECAY, STEPS, SCHEDULE_EVERY = 0.01, 0.1, 12, 4


class TinyNet(nn.Module):
    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.input = SparseLinear(n_features, 8)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(8, 1))

    def forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.head(self.input(batch)).squeeze(-1)


def _batches(columns_per_step: list[list[int]], rows: int = 6, seed: int = 0) -> list[tuple[SparseBatch, torch.Tensor]]:
    """One batch per step; every row of a step's batch holds all that step's columns."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for columns in columns_per_step:
        indices = torch.tensor(columns * rows, dtype=torch.int64)
        offsets = torch.arange(rows, dtype=torch.int64) * len(columns)
        values = torch.rand(rows * len(columns), generator=generator)
        batches.append((SparseBatch(indices, offsets, values), torch.randn(rows, generator=generator)))
    return batches


def _train(model: TinyNet, batches, *, lazy: bool, clip: float | None = 0.5, on_step=None) -> torch.optim.Optimizer:
    model.input.sparse_gradient = lazy
    if lazy:
        rest = [p for p in model.parameters() if p is not model.input.weight]
        optimizer = LazyInputAdamW([model.input.weight], rest, lr=LR, weight_decay=WEIGHT_DECAY)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)  # lr changes mid-run
    for step, (batch, targets) in enumerate(batches, start=1):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.l1_loss(model(batch), targets).backward()
        if clip is not None:
            (clip_gradients if lazy else nn.utils.clip_grad_norm_)(model.parameters(), clip)
        optimizer.step()
        if on_step is not None:
            on_step(step, optimizer)
        if step % SCHEDULE_EVERY == 0:
            scheduler.step()
    return optimizer


def _twins(n_features: int) -> tuple[TinyNet, TinyNet]:
    torch.manual_seed(3)
    first = TinyNet(n_features)
    second = TinyNet(n_features)
    second.load_state_dict(first.state_dict())
    return first, second


def _lrs() -> list[float]:
    """The lr of each step under CosineAnnealingLR(T_max=5) stepped every SCHEDULE_EVERY steps."""
    return [LR * (1 + math.cos(math.pi * ((step - 1) // SCHEDULE_EVERY) / 5)) / 2 for step in range(1, STEPS + 1)]


def test_rows_touched_at_every_step_train_exactly_like_dense_adamw():
    dense, lazy = _twins(6)
    batches = _batches([[0, 1, 2, 3, 4, 5]] * STEPS)
    _train(dense, batches, lazy=False)
    _train(lazy, batches, lazy=True)
    for (name, expected), (_, actual) in zip(dense.state_dict().items(), lazy.state_dict().items(), strict=False):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=name)


def test_a_row_never_touched_only_decays_and_its_moments_stay_zero():
    _, model = _twins(6)
    start = model.input.weight.detach().clone()
    optimizer = _train(model, _batches([[0, 1, 2, 3]] * STEPS), lazy=True)
    optimizer.apply_pending_decay()
    decay = np.prod([1 - lr * WEIGHT_DECAY for lr in _lrs()])  # every step's factor, cosine lr included
    torch.testing.assert_close(model.input.weight[4:], start[4:] * decay, rtol=1e-6, atol=0)
    state = optimizer.state[model.input.weight]
    assert torch.count_nonzero(state["exp_avg"][4:]) == 0 and torch.count_nonzero(state["exp_avg_sq"][4:]) == 0


def test_a_row_left_untouched_keeps_its_moments_and_catches_up_on_decay_when_touched_again():
    _, model = _twins(6)
    snapshots = {}

    def remember(step, optimizer):
        state = optimizer.state[model.input.weight]
        snapshots[step] = (model.input.weight[5].clone(), state["exp_avg"][5].clone(), state["exp_avg_sq"][5].clone())

    # column 5 is in the batch at step 1 and at step STEPS only
    steps = [[0, 1, 5]] + [[0, 1]] * (STEPS - 2) + [[0, 1, 5]]
    _train(model, _batches(steps), lazy=True, on_step=remember)
    weight_1, exp_avg_1, exp_avg_sq_1 = snapshots[1]
    for step in range(2, STEPS):  # untouched: nothing about the row changes, not even its decay
        assert all(torch.equal(now, then) for now, then in zip(snapshots[step], snapshots[1], strict=False)), step
    # the first update at step STEPS applies the decay of the steps 2..STEPS it had missed
    lrs = _lrs()
    missed_decay = np.prod([1 - lr * WEIGHT_DECAY for lr in lrs[1:]])
    weight_last, exp_avg_last, exp_avg_sq_last = snapshots[STEPS]
    beta1, beta2 = 0.9, 0.999
    gradient = (exp_avg_last - beta1 * exp_avg_1) / (1 - beta1)  # the step's clipped gradient
    torch.testing.assert_close(exp_avg_sq_last, beta2 * exp_avg_sq_1 + (1 - beta2) * gradient**2, rtol=1e-4, atol=1e-9)
    adam_step = (lrs[-1] / (1 - beta1**STEPS) * exp_avg_last
                 / (exp_avg_sq_last.sqrt() / math.sqrt(1 - beta2**STEPS) + 1e-8))
    torch.testing.assert_close(weight_last, weight_1 * missed_decay - adam_step, rtol=1e-5, atol=1e-6)


def test_clipping_counts_the_sparse_gradient_like_the_dense_one():
    dense, lazy = _twins(6)
    batch, targets = _batches([[0, 2, 2, 5]])[0]  # a repeated column: its rows must be summed first
    lazy.input.sparse_gradient = True
    for model in (dense, lazy):
        nn.functional.l1_loss(model(batch), targets).mul(50).backward()
    nn.utils.clip_grad_norm_(dense.parameters(), 0.1)
    clip_gradients(lazy.parameters(), 0.1)
    assert lazy.input.weight.grad.is_sparse
    torch.testing.assert_close(lazy.input.weight.grad.to_dense(), dense.input.weight.grad)
    torch.testing.assert_close(lazy.head[1].weight.grad, dense.head[1].weight.grad)


def test_optimizer_state_survives_a_checkpoint_with_its_float64_decay_log(tmp_path):
    _, model = _twins(6)
    optimizer = _train(model, _batches([[0, 1]] * 3), lazy=True)
    torch.save(optimizer.state_dict(), tmp_path / "state.pt")
    _, other = _twins(6)
    restored = LazyInputAdamW([other.input.weight], [p for p in other.parameters() if p is not other.input.weight],
                              lr=LR, weight_decay=WEIGHT_DECAY)
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    saved, loaded = optimizer.state[model.input.weight], restored.state[other.input.weight]
    assert loaded["decayed_to"].dtype == torch.float64 and torch.equal(loaded["decayed_to"], saved["decayed_to"])
    assert int(loaded["step"]) == 3 and torch.equal(loaded["exp_avg"], saved["exp_avg"])
    assert len(restored.dense.state) == len(optimizer.dense.state) == 3  # input bias and the head


def test_a_dense_gradient_or_an_impossible_decay_is_refused():
    _, model = _twins(6)
    rest = [p for p in model.parameters() if p is not model.input.weight]
    with pytest.raises(ValueError, match="lr \\* weight_decay must be < 1"):
        LazyInputAdamW([model.input.weight], rest, lr=1.0, weight_decay=1.0)
    optimizer = LazyInputAdamW([model.input.weight], rest, lr=LR, weight_decay=WEIGHT_DECAY)
    batch, targets = _batches([[0, 1]])[0]
    nn.functional.l1_loss(model(batch), targets).backward()  # sparse_gradient is off
    with pytest.raises(ValueError, match="needs a sparse gradient"):
        optimizer.step()


# ------------------------------------------------------------------------------------------
# Data-parallel: the ranks' gradient sum that stands in for DDP
# ------------------------------------------------------------------------------------------

# each rank's batch touches its own rows and some shared ones (different counts: the all-gather
# pads), and rows 0 and 9 are touched by neither
RANK_COLUMNS = ([1, 2, 3], [3, 4, 5, 6, 7])
ALL_ROWS = 2 * 6  # the rows of both ranks' batches (_batches' 6 each)


def _gradient_worker(rank: int, world_size: int, rendezvous: str, out: str) -> None:
    import torch.distributed as dist

    from pricer.training.lazy import sum_gradients

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        model, _ = _twins(10)
        model.input.sparse_gradient = True
        batch, targets = _batches([RANK_COLUMNS[rank]], seed=rank)[0]
        # each rank's part of the two-batch mean: its rows' summed loss over all the rows
        (nn.functional.l1_loss(model(batch), targets, reduction="sum") / ALL_ROWS).backward()
        sum_gradients(model.parameters(), world_size)
        torch.save({name: p.grad for name, p in model.named_parameters()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_summed_gradients_across_two_ranks_are_the_whole_batch_gradient_on_the_rows_touched(tmp_path):
    spawn_ranks(_gradient_worker, 2, (2, str(tmp_path / "rendezvous"), str(tmp_path)))
    # one process, both ranks' rows in one batch: its mean loss
    model, _ = _twins(10)
    losses = []
    for rank, columns in enumerate(RANK_COLUMNS):
        batch, targets = _batches([columns], seed=rank)[0]
        losses.append(nn.functional.l1_loss(model(batch), targets, reduction="sum"))
    (sum(losses) / ALL_ROWS).backward()
    for rank in range(2):
        grads = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        input_grad = grads.pop("input.weight")
        assert input_grad.is_sparse
        assert input_grad.indices()[0].tolist() == [1, 2, 3, 4, 5, 6, 7]  # the union, no padding rows
        torch.testing.assert_close(input_grad.to_dense(), model.input.weight.grad)
        for name, parameter in model.named_parameters():
            if name != "input.weight":
                torch.testing.assert_close(grads[name], parameter.grad)
