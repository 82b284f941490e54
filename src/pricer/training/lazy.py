"""A lazy (row-sparse) AdamW for the input layer, so that a step costs what the batch touches.

The first layer's weight is (n_features, width). Dense AdamW reads and writes all of it, and
both its moments, every step, although a batch of 64 products uses a few thousand of its rows:
at 2^18 hashed features that is ~800 MB of memory traffic per step for ~4 MB of useful work.
``LazyInputAdamW`` gives that weight a sparse gradient (``embedding_bag(sparse=True)``) and
updates only the rows the batch touched; every other parameter keeps the ordinary fused AdamW.

What it computes, against dense AdamW with the same hyper-parameters (``torch.optim.AdamW``):

* A row touched at every step gets exactly the dense AdamW update (to float rounding): decoupled
  decay ``w *= 1 - lr*wd``, the moment updates, and the bias-corrected step with the global
  step count.
* A row not touched at a step gets no Adam update at that step and its moments stay frozen
  (dense AdamW would decay ``m`` by beta1 and ``v`` by beta2 and still move the row by
  ``lr * m_hat / (sqrt(v_hat) + eps)``, its momentum from earlier batches). This is the
  semantics of ``torch.optim.SparseAdam`` and of TensorFlow's LazyAdam.
* Its weight decay is not lost but deferred: when the row is next touched, or at the end of the
  epoch (``apply_pending_decay``, which ``fit`` calls before validation and checkpointing), it
  is multiplied by the product of the per-step factors ``(1 - lr_i*wd)`` of every step it
  missed. The optimizer keeps the running log of that product in float64, so this is exact for
  any schedule (under cosine annealing too, where the lr changes once per epoch), not only the
  ``(1 - lr*wd)**k`` of a constant lr. At every epoch boundary the decay of every row is
  therefore exactly the dense one; only the skipped momentum steps differ.

Data-parallel training (``train.processes`` x ``train.nodes`` > 1) cannot hand a model with a
sparse input gradient to ``DistributedDataParallel``, whose all-reduce takes dense gradients only
(all-reducing the dense (n_features, width) input gradient would cost the very traffic a sparse
gradient avoids). ``sum_gradients`` does that job instead, after each backward pass: one
all-reduce of the dense gradients, flattened, and an all-gather of each rank's touched rows of
the input gradient, summed into the union of rows. Each rank's loss is its rows' summed loss
divided by the global batch length, so the sum is the one-process batch-mean gradient. Every
rank then holds the same gradient and the same rows touched, so the lazy optimizer's state
(moments, decay logs) stays identical on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


class LazyInputAdamW(torch.optim.Optimizer):
    """AdamW where ``row_weights`` (sparse row gradients) are updated lazily, the rest densely.

    ``param_groups`` holds the row-sparse weights (so an LR scheduler drives them); the dense
    parameters live in an inner fused ``torch.optim.AdamW`` that takes the same lr each step.
    """

    def __init__(
        self,
        row_weights: list[nn.Parameter],
        dense_parameters: list[nn.Parameter],
        *,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if lr * weight_decay >= 1:
            raise ValueError(f"lr * weight_decay must be < 1 for decoupled decay, got {lr} * {weight_decay}")
        super().__init__(row_weights, {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps})
        # the same optimizer the dense recipe uses, so the rest of the network trains identically
        self.dense = torch.optim.AdamW(dense_parameters, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps,
                                       fused=True)

    def _row_state(self, weight: nn.Parameter) -> dict[str, torch.Tensor]:
        state = self.state[weight]
        if not state:
            rows = weight.shape[0]
            state["step"] = torch.zeros((), dtype=torch.int64)
            state["exp_avg"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
            # log of the product of all decay factors so far, and the part of it each row has had
            state["log_decay"] = torch.zeros((), dtype=torch.float64)
            state["decayed_to"] = torch.zeros(rows, dtype=torch.float64, device=weight.device)
        return state

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ValueError("LazyInputAdamW does not take a closure")
        for group in self.param_groups:
            for dense_group in self.dense.param_groups:
                dense_group["lr"] = group["lr"]
            beta1, beta2 = group["betas"]
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                if not weight.grad.is_sparse:
                    raise ValueError("LazyInputAdamW needs a sparse gradient for the input weight "
                                     "(SparseLinear with sparse_gradient=True)")
                state = self._row_state(weight)
                state["step"] += 1
                state["log_decay"] += math.log1p(-group["lr"] * group["weight_decay"])
                self._update_rows(weight, weight.grad.coalesce(), state, group, beta1, beta2)
        self.dense.step()

    @staticmethod
    def _update_rows(weight: nn.Parameter, grad: torch.Tensor, state: dict[str, torch.Tensor],
                     group: dict[str, Any], beta1: float, beta2: float) -> None:
        rows, values = grad.indices()[0], grad.values()
        log_decay = state["log_decay"].item()
        pending = torch.exp(log_decay - state["decayed_to"][rows]).to(weight.dtype).unsqueeze(1)
        state["decayed_to"][rows] = log_decay
        row_weights = weight[rows].mul_(pending)  # this step's decay and any the row had missed
        exp_avg, exp_avg_sq = state["exp_avg"][rows], state["exp_avg_sq"][rows]
        # the kernel dense fused AdamW runs, on the gathered rows; decay is done above, so 0 here
        torch._fused_adamw_([row_weights], [values], [exp_avg], [exp_avg_sq], [],
                            [state["step"].to(torch.float32, copy=True)], amsgrad=False, lr=group["lr"],
                            beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False,
                            grad_scale=None, found_inf=None)
        weight.index_copy_(0, rows, row_weights)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)

    @torch.no_grad()
    def apply_pending_decay(self) -> None:
        """Bring every row's weight decay up to the current step (one pass over the weight)."""
        for group in self.param_groups:
            for weight in group["params"]:
                state = self.state.get(weight)
                if not state:
                    continue
                log_decay = state["log_decay"].item()
                weight.mul_(torch.exp(log_decay - state["decayed_to"]).to(weight.dtype).unsqueeze(1))
                state["decayed_to"].fill_(log_decay)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self.dense.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": super().state_dict(), "dense": self.dense.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict["rows"])
        self.dense.load_state_dict(state_dict["dense"])
        # Optimizer.load_state_dict casts every state tensor to the weight's dtype: the decay
        # logs must stay float64 (float32 would lose the per-step factors over long runs)
        saved = state_dict["rows"]["state"]
        weights = [weight for group in self.param_groups for weight in group["params"]]
        for index, weight in enumerate(weights):
            if index in saved:
                for key in ("log_decay", "decayed_to"):
                    self.state[weight][key] = saved[index][key].to(torch.float64).to(weight.device)


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> None:
    """``nn.utils.clip_grad_norm_`` that also counts sparse gradients (their coalesced values:
    a row's duplicates summed, as the dense gradient holds them)."""
    parameters = [p for p in parameters if p.grad is not None]
    sparse = [p for p in parameters if p.grad.is_sparse]
    if not sparse:
        nn.utils.clip_grad_norm_(parameters, max_norm)
        return
    for weight in sparse:
        weight.grad = weight.grad.coalesce()
    dense = [p for p in parameters if not p.grad.is_sparse]
    total_norm = nn.utils.get_total_norm([p.grad for p in dense] + [p.grad.values() for p in sparse])
    nn.utils.clip_grads_with_norm_(dense, max_norm, total_norm)
    # the same coefficient clip_grads_with_norm_ applies: max_norm / norm, only when norm exceeds it
    coefficient = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for weight in sparse:
        weight.grad.values().mul_(coefficient)  # a coalesced tensor's values: in place


def broadcast_parameters(model: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank, as DDP's constructor does."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor, src=0)


def sum_gradients(parameters: Iterable[nn.Parameter], world_size: int) -> None:
    """Sum every gradient over the ``world_size`` ranks in place, sparse ones included.

    Dense gradients: one all-reduce of their concatenation. A sparse (row) gradient: each rank's
    coalesced rows and values are all-gathered (padded to the longest, the padding cut off
    again, so no rank adds rows it did not touch) and summed per row. Every rank must hold a
    gradient for the same parameters (a rank with no rows in a batch runs the empty batch).
    """
    parameters = [p for p in parameters if p.grad is not None]
    dense = [p for p in parameters if not p.grad.is_sparse]
    if dense:
        flat = torch.cat([p.grad.reshape(-1) for p in dense])
        dist.all_reduce(flat)
        offset = 0
        for parameter in dense:
            count = parameter.grad.numel()
            parameter.grad.copy_(flat[offset:offset + count].view_as(parameter.grad))
            offset += count
    for parameter in parameters:
        if parameter.grad.is_sparse:
            parameter.grad = _summed_rows(parameter.grad.coalesce(), world_size)


def _summed_rows(grad: torch.Tensor, world_size: int) -> torch.Tensor:
    rows, values = grad.indices()[0], grad.values()
    counts = [torch.zeros(1, dtype=torch.int64, device=rows.device) for _ in range(world_size)]
    dist.all_gather(counts, torch.tensor([rows.numel()], dtype=torch.int64, device=rows.device))
    sizes = [int(count) for count in counts]
    longest = max(sizes)
    padded_rows = torch.zeros(longest, dtype=rows.dtype, device=rows.device)
    padded_rows[:rows.numel()] = rows
    padded_values = values.new_zeros((longest, *values.shape[1:]))
    padded_values[:rows.numel()] = values
    gathered_rows = [torch.empty_like(padded_rows) for _ in range(world_size)]
    gathered_values = [torch.empty_like(padded_values) for _ in range(world_size)]
    dist.all_gather(gathered_rows, padded_rows)
    dist.all_gather(gathered_values, padded_values)
    all_rows = torch.cat([part[:size] for part, size in zip(gathered_rows, sizes, strict=False)])
    all_values = torch.cat([part[:size] for part, size in zip(gathered_values, sizes, strict=False)])
    # the rows come from coalesced gradients: valid, so the (costly) invariant checks stay off, said so
    return torch.sparse_coo_tensor(all_rows.unsqueeze(0), all_values, grad.shape, check_invariants=False).coalesce()
