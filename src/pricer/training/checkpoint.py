"""The per-epoch checkpoint that lets a killed training stage resume where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pricer.atomic import atomic_path

#: 2: ``torch_rng`` holds every data-parallel rank's generator state (rank order), not rank 0's alone.
CHECKPOINT_FORMAT = 2


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: see PricePredictor.save
        torch.save(state, handle)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint's state, or None when the file is not a readable checkpoint (cut short by a
    kill or a full disk, say): losing it costs the epochs it held, never the run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # data, never code
    except Exception:  # torch raises anything from RuntimeError to UnpicklingError on a torn file
        return None
    return state if isinstance(state, dict) else None
