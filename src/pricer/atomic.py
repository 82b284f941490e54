"""Atomic file writes: a stage killed at any moment leaves the old file or the new one.

Each writer writes into a temporary file in the destination's directory (same filesystem,
so ``os.replace`` is an atomic rename) and renames it into place only once it is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


TEMPORARY_MARK = ".tmp"  # every temporary file is named `.<destination name>.<random>.tmp<suffix>`


def create_temporary(destination: Path) -> Path:
    """Create an empty, recognisable temporary file beside ``destination`` and return its path.

    Created with mode 0666 less the umask (0644 under umask 022), as ``open`` would create the
    destination itself: ``tempfile.mkstemp`` would make every written file 0600. A temporary
    left by a killed process is hidden, named after its destination, and never read.
    """
    for _ in range(100):
        tmp = destination.parent / f".{destination.name}.{secrets.token_hex(4)}{TEMPORARY_MARK}{destination.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{destination.parent}: could not create a temporary file for {destination.name}")


def _umask() -> int:
    """The process's umask (reading it means setting it: it is put straight back)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(destination: str | Path, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``destination``."""
    destination = Path(destination)
    if make_parents:
        destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temporary(destination)
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
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: give it the mode mkdir would
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
