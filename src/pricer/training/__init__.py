"""Training: the loop (``loop``), its checkpoint, data-parallel processes on one or more machines
(``distributed``, and ``launcher``: torchrun's agent with one-line failures),
params → recipes (``recipes``) and one training stage as library calls (``runner``).

The loop's public names are importable from here.
"""

from pricer.training.checkpoint import Checkpointing
from pricer.training.loop import (
    DivergedError,
    EpochRecord,
    FitResult,
    Recipe,
    fit,
    make_optimizer,
    model_outputs,
    rank_seed,
    select_device,
    uses_sparse_gradients,
)

__all__ = ["Checkpointing", "DivergedError", "EpochRecord", "FitResult", "Recipe", "fit", "make_optimizer",
           "model_outputs", "rank_seed", "select_device", "uses_sparse_gradients"]
