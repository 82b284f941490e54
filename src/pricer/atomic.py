"""Atomic file writes: a stage killed at any moment leaves the old file or the new one.

Each writer writes into a temporary file in the destination's directory (same filesystem,
so ``os.replace`` is an atomic rename) and renames it into place only once it is complete.
The result gets the permissions any newly created file gets (0644 under umask 022), not the
owner-only mode of ``tempfile``'s private temporaries: a team shares these files through a
DVC cache, a remote or a served model directory.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pricer.errors import PricerError
from pricer.signals import sigterm_held

log = logging.getLogger(__name__)

# What a full disk, a quota, a read-only or unwritable place, a file where a directory should
# be (or the reverse), or a failing device raise.
_WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                   errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


class OutputError(PricerError):
    """An output could not be written; the old one, if any, is untouched."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason  # the system's word for it: "No space left on device", ...


@contextlib.contextmanager
def _reported_as_output_error(destination: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        if error.errno not in _WRITE_FAILURES:
            raise
        raise OutputError(f"{destination}: cannot write it ({error.strerror}); nothing was replaced, "
                          "the previous version (if any) is intact", error.strerror) from None


def refuse_outputs_outside(root: str | Path, outputs: Iterable[str | Path]) -> None:
    """Refuse, before anything is written, an output that resolves outside ``root`` (through a
    symbolic link on its way: ``models -> ../other-project/models``): writing it would replace
    files of another project, which DVC notices only after the stage has run."""
    root = Path(root).resolve()
    for output in map(Path, outputs):
        try:
            resolved = (root / output).resolve()
        except (OSError, RuntimeError) as error:  # a link loop
            raise OutputError(f"{output}: cannot tell where it leads ({error}); refusing to write it") from None
        if not resolved.is_relative_to(root):
            raise OutputError(f"{output}: resolves to {resolved}, outside the project {root} (a symbolic link?); "
                              "refusing to write there: replace the link with a directory of this project")


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
    with _reported_as_output_error(destination):
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


def write_whole(destination: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """``write(handle)`` into ``destination``, atomically and whole even when SIGTERM arrives
    meanwhile (``sigterm_held``: the stage then ends as terminated, the file complete). For
    ``torch.save``: through a handle, because given a path torch names the zip's root folder after
    the (random) temporary file's name, and equal tensors would be written as unequal bytes."""
    with sigterm_held(), atomic_path(destination) as tmp, open(tmp, "wb") as handle:
        write(handle)


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
    with _reported_as_output_error(destination):
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: give it the mode mkdir would
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


def remove_stale_temporaries(*destinations: str | Path) -> list[Path]:
    """Delete what a killed writer of ``destinations`` left beside them: the hidden
    ``.<name>.*.tmp*`` files/folders and ``.<name>.*.old`` folders of the writers above.

    A SIGKILL skips the writers' cleanup, so a stage calls this for its own outputs when it
    starts; only the one process that writes those destinations may call it.
    """
    removed = []
    for destination in map(Path, destinations):
        if not destination.parent.is_dir():
            continue
        name = glob.escape(destination.name)
        for pattern in (f".{name}.*.tmp*", f".{name}.*.old"):
            for path in destination.parent.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                log.info("removed %s, left by an interrupted run", path)
                removed.append(path)
    return removed

