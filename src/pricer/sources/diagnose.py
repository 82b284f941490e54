"""Which local file is broken, and where: ``datasets``' own errors name a buffer or a
block-relative row, so the files are re-read with plain pyarrow / json to name file and line.

Invalid UTF-8 in a JSON/JSONL file is an error naming the file and line, not decoded with
replacement: ``datasets`` 5.2 lets invalid bytes through into its Arrow cache and only fails
later in ``to_pandas`` with an unrelated-looking message, and silently replacing characters
would change the texts the model learns from. Re-encode the file (``iconv -f <enc> -t utf-8``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pricer.sources.errors import DataError, describe_error


def check_json_text(source: str, path: Path) -> None:
    """Strict UTF-8 (datasets 5.2 lets invalid bytes into its cache) and at least one record."""
    if path.stat().st_size == 0:
        raise DataError(f"{source}: {path} is an empty file")
    has_content = False
    with open(path, "rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{source}: {path} line {number}: invalid UTF-8 ({error.reason} at byte {error.start}); "
                    "re-encode the file as UTF-8"
                ) from None
            has_content = has_content or bool(line.strip())
    if not has_content:
        raise DataError(f"{source}: {path} is an empty file (no JSON records)")


def unreadable_files_error(
    source: str, file_format: str, data_files: Mapping[str, list[Path]], error: Exception
) -> DataError:
    files = [path for split_files in data_files.values() for path in split_files]
    culprit = _first_broken_file(files, file_format)
    if culprit is None:
        named = str(files[0]) if len(files) == 1 else f"one of {len(files)} {file_format} files"
        return DataError(f"{source}: could not read {named}: {describe_error(error)}")
    path, detail = culprit
    return DataError(f"{source}: could not read {path}: {detail}")


def _first_broken_file(files: list[Path], file_format: str) -> tuple[Path, str] | None:
    """Which file broke, and where: datasets' own errors name a buffer or a block-relative row."""
    for path in files:
        detail = _json_problem(path) if file_format == "json" else _parquet_problem(path)
        if detail is not None:
            return path, detail
    return None


def _parquet_problem(path: Path) -> str | None:
    import pyarrow.parquet as pq

    try:
        pq.read_table(path)
    except Exception as error:
        return f"corrupt parquet data: {describe_error(error)}"
    return None


def _json_problem(path: Path) -> str | None:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):  # one JSON array rather than JSON Lines
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"line {error.lineno}: invalid JSON ({error.msg})"
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            return f"line {number}: invalid JSON ({error.msg})"
        if not isinstance(record, dict):
            return f"line {number}: expected a JSON object, got {type(record).__name__}"
    return None
