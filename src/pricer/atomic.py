"""Atomic file writes: a stage killed at any moment leaves the old file or the new one.

Each writer writes into a temporary file in the destination's directory (same filesystem,
so ``os.replace`` is an atomic rename) and renames it into place only once it is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``destination``."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp" + destination.suffix, dir=destination.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(destination: str | Path, text: str) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(destination: str | Path, payload: Any) -> None:
    """Write JSON with sorted keys and a trailing newline, so equal content is equal bytes."""
    write_text(destination, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_directory(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary directory to fill; on success it takes the place of ``destination``."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    try:
        yield tmp
        if destination.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".old", dir=destination.parent))
            os.replace(destination, retired / destination.name)
            os.replace(tmp, destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
