"""What kind of source a ``data.source`` string names.

- ``"synthetic"``: :func:`pricer.catalogue.generate_catalogue` (one split).
- an existing local path: a ``.parquet``, ``.jsonl`` or ``.json`` file (one split); a directory
  laid out like a Hub dataset repo (``data/train-*.parquet`` ..., or top-level ``train*.parquet``
  ...; a directory straight from ``hf download --local-dir`` works); a ``datasets.save_to_disk``
  directory (``DatasetDict`` or a single ``Dataset``).
- ``owner/name``: a Hugging Face Hub dataset (``ed-donner/items_lite``), optionally pinned to a
  revision. An existing local path always wins over a Hub id of the same spelling.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pricer.layout import in_dvc_temp_copy
from pricer.sources.errors import DataError
from pricer.sources.local import is_saved_dataset, parquet_files

SourceKind = Literal["synthetic", "local_file", "hub_layout_dir", "saved_dataset", "hub"]
FILE_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
# Suffixes that make a missing source read as a mistyped path rather than a Hub id or a typo.
PATH_LIKE_SUFFIXES = frozenset(FILE_FORMATS) | {".pq", ".arrow", ".csv", ".tsv", ".txt", ".gz", ".zip", ".pkl"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
ACCEPTED_KINDS = (
    "'synthetic'; an existing .parquet, .jsonl or .json file; a directory of Hub-layout parquet "
    "files (data/train-*.parquet ...); a datasets.save_to_disk directory; or a Hugging Face Hub "
    "dataset id such as 'ed-donner/items_lite'"
)


@dataclass(frozen=True)
class ResolvedSource:
    kind: SourceKind
    location: str  # expanded path for local kinds, the dataset id for the Hub, "synthetic"
    file_format: str | None = None  # "parquet" | "json" for local_file


def resolve_source(source: str) -> ResolvedSource:
    """Decide what kind of source ``source`` names; raises DataError for anything unusable."""
    if source == "synthetic":
        return ResolvedSource("synthetic", source)
    path = Path(source).expanduser()
    if source and path.exists():
        return _resolve_local_path(source, path.resolve())
    if source and path.is_symlink():
        raise DataError(_broken_link_message(source, path))
    if source.startswith((".", "/", "~")) or path.suffix.lower() in PATH_LIKE_SUFFIXES:
        raise DataError(f"{source}: no such file or directory{_temp_copy_hint()}")
    if HUB_ID.match(source) and ".." not in source:
        return ResolvedSource("hub", source)
    raise DataError(f"{source!r}: not a known data source; expected {ACCEPTED_KINDS}{_temp_copy_hint()}")


def _temp_copy_hint() -> str:
    if not in_dvc_temp_copy():
        return ""
    return ("; this run is a `dvc exp run --temp` or queued experiment, whose copy of the project holds only the "
            "files git or DVC track: track the source (`dvc add <path>`, then commit), give its absolute path, "
            "or run `dvc exp run` without --temp")


def _broken_link_message(source: str, path: Path) -> str:
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"{source}: a symbolic link that loops back on itself (directly or through other links)"
    return f"{source}: a symbolic link to {os.readlink(path)}, which does not exist"


def _resolve_local_path(source: str, path: Path) -> ResolvedSource:
    if path.is_file():
        file_format = FILE_FORMATS.get(path.suffix.lower())
        if file_format is None:
            raise DataError(f"{source}: unsupported file type {path.suffix!r}; expected one of {sorted(FILE_FORMATS)}")
        return ResolvedSource("local_file", str(path), file_format)
    if path.is_dir():
        if is_saved_dataset(path):
            return ResolvedSource("saved_dataset", str(path))
        if parquet_files(path):
            return ResolvedSource("hub_layout_dir", str(path))
        raise DataError(
            f"{source}: directory has no parquet files and is not a datasets.save_to_disk directory "
            "(expected data/train-*.parquet ... or dataset_dict.json / state.json)"
        )
    raise DataError(f"{source}: neither a regular file nor a directory")
