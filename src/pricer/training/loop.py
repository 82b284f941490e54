"""The training loop: plain, explicit, one epoch after another.

Both regressors share it; a ``Recipe`` carries everything that differs between them
(optimizer, loss, schedule, clipping). The LR schedule is explicit: cosine annealing stepped
once per epoch when ``cosine_t_max`` is set, else constant.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pricer.batching import (
    ONE_PROCESS,
    CSRTensors,
    RankShares,
    RowShare,
    ShareOfEpoch,
    autocast,
    batch_ends,
    epoch_order,
    model_outputs,
    share_of_epoch,
    shuffled_batches,
)
from pricer.errors import PricerError
from pricer.models import SparseLinear
from pricer.target import TargetTransform
from pricer.training.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpointing,
    identity_difference,
    load_checkpoint,
    save_checkpoint,
)
from pricer.training.lazy import LazyInputAdamW, broadcast_parameters, clip_gradients, sum_gradients

log = logging.getLogger(__name__)

LOSS_CHECK_EVERY = 256  # steps between finiteness checks: each check is a host sync


class DivergedError(PricerError):
    """Training produced a non-finite loss; no metrics are written from such a model."""

    def __str__(self) -> str:
        return (f"{super().__str__()}; no model or metrics written. "
                "Try a lower lr, or mlp.target=standardized_log for the MLP")


@dataclass(frozen=True)
class Recipe:
    optimizer: str  # "sgd" | "adamw"
    lr: float
    loss: str  # "mse" | "l1"
    batch_size: int
    epochs: int
    weight_decay: float = 0.0
    cosine_t_max: int | None = None
    grad_clip: float | None = None
    keep_best: bool = True
    precision: str = "fp32"  # "fp32" | "bf16" autocast
    seed: int = 42
    input_optimizer: str = "dense"  # "dense" | "lazy": AdamW's input layer (training.lazy)

    def to_dict(self) -> dict[str, Any]:
        recipe = asdict(self)
        # recipes from before the option (and every default one) keep their bytes in model
        # files, checkpoints and tracking
        if recipe["input_optimizer"] == "dense":
            del recipe["input_optimizer"]
        return recipe


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_mae: float  # dollars
    lr: float
    seconds: float


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_mae: float = math.inf


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of one data-parallel rank: ``seed`` itself on rank 0 (so a single-process
    run is unchanged), an independent stream from ``(seed, rank)`` on the others, so that the
    ranks' dropout masks differ instead of repeating one another."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def select_device(requested: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit request must be available."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("train.device is 'mps' but MPS is not available")
    return torch.device(requested)


def _loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    losses = {"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss}
    if name not in losses:
        raise ValueError(f"loss must be one of {sorted(losses)}, got {name!r}")
    return losses[name]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.input_optimizer not in ("dense", "lazy"):
        raise ValueError(f"input_optimizer must be 'dense' or 'lazy', got {recipe.input_optimizer!r}")
    if recipe.input_optimizer == "lazy" and recipe.optimizer != "adamw":
        raise ValueError(f"input_optimizer 'lazy' is an AdamW variant; the {recipe.optimizer!r} recipe "
                         "has no use for it")
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr)
    if recipe.optimizer == "adamw" and recipe.input_optimizer == "lazy":
        inputs = [module.weight for module in model.modules() if isinstance(module, SparseLinear)]
        rest = [parameter for parameter in model.parameters() if all(parameter is not weight for weight in inputs)]
        return LazyInputAdamW(inputs, rest, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        # fused: one pass over each parameter per step instead of ~10 tensor ops (and as many
        # temporaries the size of the 5000-row input weight): 1.5-2x faster steps on CPU
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {recipe.optimizer!r}")


def uses_sparse_gradients(recipe: Recipe, device: torch.device) -> bool:
    """Whether the optimizer takes the input layer's weight gradient sparse: plain SGD, and AdamW
    with the lazy input optimizer (which consumes it and clips it with the rest).

    SGD's update ``w -= lr * grad`` then touches just the rows of the batch's columns instead
    of zero-filling, scattering into and reading back the whole (n_features, width) gradient.
    Dense AdamW and plain SGD with weight decay or clipping need the dense gradient (in a
    data-parallel run they get it after the ranks' sparse gradients are summed).
    """
    if recipe.input_optimizer == "lazy":
        _check_lazy_runs_here(device)
        return True
    return (
        recipe.optimizer == "sgd"
        and not recipe.weight_decay
        and not recipe.grad_clip
        and device.type in ("cpu", "cuda")
    )


def _check_lazy_runs_here(device: torch.device) -> None:
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"input_optimizer 'lazy' needs sparse tensors (cpu or cuda), not {device.type}")


@contextlib.contextmanager
def _sparse_gradients(model: nn.Module, enabled: bool) -> Iterator[None]:
    layers = [module for module in model.modules() if isinstance(module, SparseLinear)] if enabled else []
    previous = [layer.sparse_gradient for layer in layers]
    for layer in layers:
        layer.sparse_gradient = True
    try:
        yield
    finally:
        for layer, value in zip(layers, previous, strict=False):
            layer.sparse_gradient = value


def _copy_weights(model: nn.Module, into: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """A copy of the model's state, written into ``into``'s tensors when it has them: a fresh
    copy at every improving epoch would allocate (and page-fault in) the whole input layer,
    268 MB at 2^18 features x 256."""
    state = model.state_dict()
    if into is None or into.keys() != state.keys():
        return copy.deepcopy(state)
    for name, tensor in state.items():
        into[name].copy_(tensor)
    return into


def _rng_states_of_every_rank(world_size: int) -> list[torch.Tensor]:
    """The CPU generator state of each rank, in rank order (a collective when distributed)."""
    state = torch.get_rng_state()
    if world_size == 1:
        return [state]
    states: list[torch.Tensor | None] = [None] * world_size
    torch.distributed.all_gather_object(states, state)
    return [s for s in states if s is not None]


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler:
    if recipe.cosine_t_max:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.cosine_t_max)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _train_epoch(
    model: nn.Module,
    train: CSRTensors,
    order: np.ndarray,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    recipe: Recipe,
    device: torch.device,
    *,
    model_name: str,
    epoch: int,
    progress: bool,
    share: ShareOfEpoch | None = None,
    synchronize: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, int]:
    """One pass over the rows of ``train`` in this epoch's ``order``: (sum of batch losses, steps).
    The rows are copied in that order a block of batches at a time (``batching.shuffled_batches``).

    One process: consecutive batches of the recipe's size, each loss the batch mean. A
    data-parallel rank (``share``, whose rows ``order`` is): its part of each global batch, each
    loss its rows' summed loss over the global batch length, so that the ranks' summed gradients
    (``synchronize``, after each backward pass and before clipping) are the one-process gradient."""
    if share is None:
        ends = batch_ends(len(order), recipe.batch_size)
        global_lengths: list[int | None] = [None] * len(ends)
    else:
        ends, global_lengths = share.batch_ends, share.batch_lengths.tolist()
    steps = len(ends)
    batches = ((batch, targets, length)
               for (batch, targets), length in zip(shuffled_batches(train, order, ends), global_lengths, strict=True))
    loss_sum = torch.zeros((), device=device)
    bar = tqdm(batches, total=steps, desc=f"{model_name} epoch {epoch}/{recipe.epochs}",
               unit="batch", disable=not progress, leave=False)
    for step, (batch, targets, global_length) in enumerate(bar, start=1):
        batch, targets = batch.to(device), targets.to(device, non_blocking=True)
        with autocast(device, recipe.precision):
            predictions = model(batch)
        if global_length is None:
            loss = loss_fn(predictions.float(), targets)
        else:
            loss = loss_fn(predictions.float(), targets, reduction="sum") / global_length
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if synchronize is not None:
            synchronize()
        if recipe.grad_clip:
            clip_gradients(model.parameters(), recipe.grad_clip)
        optimizer.step()
        loss_sum += loss.detach()
        if step % LOSS_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
            raise DivergedError(f"{model_name}: loss became non-finite in epoch {epoch} (step {step})")
    return loss_sum, steps


def _synchronize_gradients(parameters: list[nn.Parameter], world_size: int, densify: bool) -> None:
    """Sum the ranks' gradients; then, for an optimizer that takes dense ones, densify the input's."""
    sum_gradients(parameters, world_size)
    if densify:
        for parameter in parameters:
            if parameter.grad is not None and parameter.grad.is_sparse:
                parameter.grad = parameter.grad.to_dense()


def _held_share(data: CSRTensors, share: RowShare | None, rank: int, world_size: int) -> tuple[RowShare, int]:
    """The rows this rank trains on, and where they start in ``data``: ``share`` when ``data``
    holds just those rows; else ``data`` is the whole split and the rank takes its share of it."""
    if share is None:
        share = RowShare.of_rank(data.rows, rank, world_size)
        return share, share.start
    if share.rows != data.rows:
        raise ValueError(f"the share of rows [{share.start}, {share.stop}) has {share.rows} rows, the data {data.rows}")
    return share, 0


def _read_checkpoint(path: Path, world_size: int, rank: int) -> tuple[bool, dict[str, Any] | None]:
    """(whether the checkpoint exists, its state or None when unreadable), as rank 0 reads it:
    the other ranks (on other machines too) get rank 0's copy."""
    found_state: list[Any] = [None]
    if rank == 0:
        found = path.exists()
        found_state = [(found, load_checkpoint(path) if found else None)]
    if world_size > 1:
        torch.distributed.broadcast_object_list(found_state, src=0)
    return found_state[0]


def _validation_means(outputs: torch.Tensor, targets: torch.Tensor | None, prices: np.ndarray,
                      target: TargetTransform, loss_fn: Callable[..., torch.Tensor], total: int,
                      device: torch.device) -> tuple[float, float]:
    """(validation loss, MAE in dollars) over every rank's validation rows: the sums of each
    rank's rows, added up across ranks and divided by the split's length."""
    loss_sum = float(loss_fn(outputs, targets, reduction="sum")) if targets is not None else math.nan
    sums = torch.tensor([loss_sum, float(np.sum(np.abs(target.decode(outputs) - prices)))], dtype=torch.float64,
                        device=device)  # NCCL reduces GPU tensors only
    torch.distributed.all_reduce(sums)
    return float(sums[0]) / max(total, 1), float(sums[1]) / max(total, 1)


def fit(
    model: nn.Module,
    train: CSRTensors,
    validation: CSRTensors,
    validation_prices: np.ndarray,
    target: TargetTransform,
    recipe: Recipe,
    *,
    device: torch.device,
    model_name: str,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    checkpoint: Checkpointing | None = None,
    ranks: RankShares = ONE_PROCESS,
    progress: bool = False,
) -> FitResult:
    """Train ``model`` in place; return the per-epoch history and the best epoch.

    With ``ranks.world_size`` > 1 each rank owns a contiguous share of the train rows and of the
    validation rows: ``ranks.train`` / ``ranks.validation`` when ``train`` / ``validation`` hold
    only those rows, else the rank takes its share of the whole split they hold. Every epoch's
    global batches are the one-process batches; each rank computes its rows' part of the loss
    and ``fit`` sums the gradients across ranks (:func:`training.lazy.sum_gradients`: the input
    layer's sparsely, its touched rows), so W ranks train what one process trains up to float
    summation order (and their own dropout masks). ``model`` must be unwrapped (no DDP). With
    ``keep_best`` the weights of the epoch with the lowest validation MAE are loaded back at the
    end. With ``checkpoint`` every completed epoch is checkpointed, and ``checkpoint.resume``
    restarts after the last one it finds (rank 0's file), provided it was written for the same
    recipe and ``checkpoint.identity``.
    """
    rank, world_size = ranks.rank, ranks.world_size
    identity = {"recipe": recipe.to_dict(), **(checkpoint.identity if checkpoint else {})}
    loss_fn = _loss_function(recipe.loss)
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    sparse_in_backward = uses_sparse_gradients(recipe, device) or (world_size > 1 and device.type in ("cpu", "cuda"))
    synchronize: Callable[[], None] | None = None
    if world_size > 1:
        # the ranks start from rank 0's weights and sum their gradients each step themselves
        broadcast_parameters(model)
        synchronize = functools.partial(_synchronize_gradients, list(model.parameters()), world_size,
                                        not uses_sparse_gradients(recipe, device))
        train_share, train_offset = _held_share(train, ranks.train, rank, world_size)
        validation_share, validation_offset = _held_share(validation, ranks.validation, rank, world_size)
        if validation_offset or validation_share.rows != validation.rows:
            mine = np.arange(validation_offset, validation_offset + validation_share.rows)
            validation, validation_prices = validation.take_rows(mine), validation_prices[mine]
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    first_epoch = 1
    torch.manual_seed(rank_seed(recipe.seed, rank))  # dropout masks: each rank draws its own

    checkpoint_path = checkpoint.path if checkpoint else None
    found, state = (_read_checkpoint(checkpoint.path, world_size, rank) if checkpoint and checkpoint.resume
                    else (False, None))
    if found:
        difference = None if state is None else (
            f"checkpoint format differs ({state.get('format')!r} vs {CHECKPOINT_FORMAT})"
            if state.get("format") != CHECKPOINT_FORMAT else identity_difference(state.get("identity"), identity))
        if state is None:
            log.warning("%s is not a readable checkpoint (truncated?); training from epoch 1", checkpoint_path)
        elif difference is not None:
            log.warning("%s: checkpoint %s ignored: %s; training from epoch 1", model_name, checkpoint_path, difference)
        elif len(state["history"]) >= recipe.epochs:
            # Same identity, yet the stage reruns (`--force`, other library versions, outputs
            # removed): retrain rather than pass the old weights off as this run's training.
            log.info("%s: checkpoint %s holds a complete run (%d of %d epochs), not an interrupted one; "
                     "training afresh from epoch 1", model_name, checkpoint_path, len(state["history"]), recipe.epochs)
        else:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"][rank])  # this rank's own dropout stream
            result.history = [EpochRecord(**record) for record in state["history"]]
            result.best_epoch, result.best_val_mae = state["best_epoch"], state["best_val_mae"]
            best_state = state["best_model"]
            first_epoch = len(result.history) + 1
            log.info("%s: resuming after epoch %d of %d from %s", model_name, first_epoch - 1, recipe.epochs,
                     checkpoint_path)

    targets_val = validation.targets
    for epoch in range(first_epoch, recipe.epochs + 1):
        started = time.perf_counter()
        model.train()
        share: ShareOfEpoch | None = None
        if world_size > 1:
            share = share_of_epoch(train_share, recipe.seed, epoch, recipe.batch_size)
            order = share.rows + train_offset
        else:
            order = epoch_order(train.rows, recipe.seed, epoch)
        with _sparse_gradients(model, sparse_in_backward):
            loss_sum, steps = _train_epoch(
                model, train, order, optimizer, loss_fn, recipe, device,
                model_name=model_name, epoch=epoch, progress=progress, share=share, synchronize=synchronize,
            )
        if isinstance(optimizer, LazyInputAdamW):
            optimizer.apply_pending_decay()  # validation, best weights and checkpoint see every row decayed
        if world_size > 1:
            torch.distributed.all_reduce(loss_sum)  # each rank's part of every batch's mean loss
        train_loss = float(loss_sum) / max(steps, 1)
        if not math.isfinite(train_loss):
            raise DivergedError(f"{model_name}: loss became non-finite in epoch {epoch}")
        current_lr = optimizer.param_groups[0]["lr"]
        scheduler.step()

        outputs = model_outputs(model, validation, device, precision=recipe.precision)
        if world_size > 1:
            val_loss, val_mae = _validation_means(outputs, targets_val, validation_prices, target, loss_fn,
                                                  validation_share.total, device)
        else:
            val_loss = float(loss_fn(outputs, targets_val)) if targets_val is not None else math.nan
            val_mae = float(np.mean(np.abs(target.decode(outputs) - validation_prices)))
        if not math.isfinite(val_loss) or not math.isfinite(val_mae):
            raise DivergedError(f"{model_name}: validation loss became non-finite in epoch {epoch}")
        record = EpochRecord(epoch, train_loss, val_loss, val_mae, current_lr, time.perf_counter() - started)
        result.history.append(record)
        if val_mae < result.best_val_mae:
            result.best_epoch, result.best_val_mae = epoch, val_mae
            if recipe.keep_best:
                best_state = _copy_weights(model, best_state)
        log.info(
            "%s epoch %d/%d: train loss %.4f, val loss %.4f, val MAE $%.2f (%.1fs)",
            model_name, epoch, recipe.epochs, train_loss, val_loss, val_mae, record.seconds,
        )
        if on_epoch is not None and rank == 0:
            on_epoch(record)
        if checkpoint_path is not None:
            # every rank's generator (each draws its own dropout masks), so a resumed
            # data-parallel run continues each rank's stream rather than rank 0's on all
            rng_states = _rng_states_of_every_rank(world_size)
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(
                checkpoint_path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "identity": identity,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": rng_states,
                    # without the epochs' wall-clock seconds: equal training, equal checkpoint bytes
                    # (the checkpoint is a DVC output, so its hash is in dvc.lock)
                    "history": [asdict(r) | {"seconds": 0.0} for r in result.history],
                    "best_epoch": result.best_epoch,
                    "best_val_mae": result.best_val_mae,
                    "best_model": best_state,
                },
            )

    if recipe.keep_best and best_state is not None:
        model.load_state_dict(best_state)
    return result
