"""Content digests of the pipeline's files: the md5s DVC records, and one per model directory."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def file_md5(path: str | Path) -> str:
    """The md5 DVC records in dvc.lock for a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def directory_md5(directory: str | Path) -> str:
    """One md5 over a directory's files (their relative paths and md5s, in sorted order): equal
    contents, equal digest, wherever the directory lies."""
    root = Path(directory)
    listing = sorted((path.relative_to(root).as_posix(), file_md5(path)) for path in root.rglob("*") if path.is_file())
    return hashlib.md5(json.dumps(listing).encode()).hexdigest()


@functools.cache
def package_source_md5() -> str:
    """One md5 over the Python source of the running pricer package (each ``.py`` file's relative
    path and md5): the code that trains, so that a checkpoint never outlives a change to it."""
    listing = sorted((path.relative_to(PACKAGE_DIR).as_posix(), file_md5(path)) for path in PACKAGE_DIR.rglob("*.py"))
    return hashlib.md5(json.dumps(listing).encode()).hexdigest()
