"""The per-epoch checkpoint that lets a killed training stage resume where it stopped."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pricer.atomic import write_whole

#: 2: ``torch_rng`` holds every data-parallel rank's generator state (rank order), not rank 0's alone.
#: 3: the identity holds the digest of pricer's source (``code``).
CHECKPOINT_FORMAT = 3


@dataclass(frozen=True)
class Checkpointing:
    """Checkpoint every completed epoch to ``path``; with ``resume``, restart after the last epoch
    found there, provided it was written for the same recipe and ``identity`` (architecture, data
    fingerprint, code...)."""

    path: Path
    identity: dict[str, Any] = field(default_factory=dict)
    resume: bool = False


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_whole(path, functools.partial(torch.save, state))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint's state, or None when the file is not a readable checkpoint (cut short by a
    kill or a full disk, say): losing it costs the epochs it held, never the run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # data, never code
    except Exception:  # torch raises anything from RuntimeError to UnpicklingError on a torn file
        return None
    return state if isinstance(state, dict) else None


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat |= _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return flat
    return {prefix: value}


def _shown(value: Any) -> str:
    text = "absent" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def identity_difference(saved: Any, current: dict[str, Any]) -> str | None:
    """The first key in which a checkpoint's identity differs from this run's, as
    ``train.processes differs (2 vs 1)`` (saved value first), or None when they are equal."""
    if saved == current:
        return None
    if not isinstance(saved, dict):
        return "its identity is unreadable"
    old, new = _flat(saved), _flat(current)
    for key in [*new, *(key for key in old if key not in new)]:
        if old.get(key) != new.get(key):
            return f"{key} differs ({_shown(old.get(key))} vs {_shown(new.get(key))})"
    return "its identity differs"
