"""Which local file is broken, and where: ``datasets``' own errors name a buffer or a
block-relative row, so the files are re-read with plain pyarrow / json to name file and line.

Invalid UTF-8 in a JSON/JSONL file is an error naming the file and line, not decoded with
replacement: ``datasets`` 5.2 lets invalid bytes through into its Arrow cache and only fails
later in ``to_pandas`` with an unrelated-looking message, and silently replacing characters
would change the texts the model learns from. Re-encode the file (``iconv -f <enc> -t utf-8``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from pricer.sources.errors import DataError, describe_error

# What a file's first bytes say it is, for files whose name claims another format.
MAGIC_NUMBERS = {
    b"\x1f\x8b": "gzip-compressed data",
    b"PK\x03\x04": "a zip archive",
    b"BZh": "bzip2-compressed data",
    b"\xfd7zXZ\x00": "xz-compressed data",
    b"\x28\xb5\x2f\xfd": "zstd-compressed data",
    b"PAR1": "a parquet file",
    b"ARROW1": "an Arrow file",
}
PARQUET_MAGIC = b"PAR1"
# The line breaks pyarrow's JSON reader splits records on (not str.splitlines' U+2028 and
# friends, which may stand unescaped inside a JSON string).
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# pyarrow's JSON reader (under datasets) crashes the process (a segmentation fault) on arrays
# or objects nested some thousands deep; Python's json stops near 1,000 with a RecursionError.
# A line with fewer opening brackets than this cannot be nested that deep: only others are parsed.
NESTING_CHECKED_FROM = 500
OPENERS = (b"[", b"{")
CLOSERS = (b"]", b"}")


def sniffed_content(path: Path) -> str | None:
    """What the file's first bytes show it to be, or None when they match no known binary format."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    return next((what for magic, what in MAGIC_NUMBERS.items() if head.startswith(magic)), None)


def check_parquet_header(source: str, path: Path) -> None:
    """A file named .parquet must start like one; say what it holds instead (CSV, JSON, gzip...)."""
    with open(path, "rb") as handle:
        head = handle.read(len(PARQUET_MAGIC))
    if head == PARQUET_MAGIC:
        return
    what = sniffed_content(path)
    if what is None:
        with open(path, "rb") as handle:
            sample = handle.read(4096)
        try:
            sample.decode("utf-8")
            what = "text (CSV or JSON?)"
        except UnicodeDecodeError:
            what = "unrecognised binary data"
    raise DataError(f"{source}: {path} is not a parquet file: it holds {what} (a parquet file starts with PAR1)")


def check_same_columns(source: str, columns_by_file: Mapping[Path, list[str]]) -> None:
    """Every parquet file of a source has the first file's columns, in any order: datasets would
    stop on the first that differs with a bare "Couldn't cast", naming neither file nor column.
    (pandas' ``__index_level_0__``, from ``to_parquet`` of a frame with a non-default index, counts:
    datasets refuses it too.)"""
    first, expected = next(iter(columns_by_file.items()))
    for path, columns in columns_by_file.items():
        missing = [column for column in expected if column not in columns]
        extra = [column for column in columns if column not in expected]
        if missing or extra:
            differences = "; ".join(
                part for part in (missing and f"lacks {missing}", extra and f"has {extra} in addition") if part
            )
            raise DataError(f"{source}: {path} has other columns than {first}: it {differences}")


def check_json_text(source: str, path: Path) -> None:
    """Strict UTF-8 (datasets 5.2 lets invalid bytes into its cache) and at least one record."""
    if path.stat().st_size == 0:
        raise DataError(f"{source}: {path} is an empty file")
    what = sniffed_content(path)
    if what is not None:
        advice = "give it a .parquet name" if what == "a parquet file" else "unpack it to a .jsonl file first"
        raise DataError(f"{source}: {path} is {what}, not JSON text; {advice}")
    has_content = False
    depth, deepest = 0, 0  # brackets open at a line's start; the most that may be open within a line
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
            openers = sum(raw_line.count(bracket) for bracket in OPENERS)
            if openers >= NESTING_CHECKED_FROM and _too_deep(line):
                raise DataError(f"{source}: {path} line {number}: JSON nested too deeply to read "
                                f"(arrays or objects inside one another hundreds of levels deep)")
            deepest = max(deepest, depth + openers)
            depth += openers - sum(raw_line.count(bracket) for bracket in CLOSERS)
    if not has_content:
        raise DataError(f"{source}: {path} is an empty file (no JSON records)")
    if deepest >= NESTING_CHECKED_FROM and _too_deep(path.read_text(encoding="utf-8-sig")):
        raise DataError(f"{source}: {path}: JSON nested too deeply to read "
                        f"(arrays or objects inside one another hundreds of levels deep)")


def _too_deep(text: str) -> bool:
    """Whether ``text`` holds JSON nested deeper than Python's json reads (other errors are
    reported where the file is read)."""
    try:
        json.loads(text)
    except RecursionError:
        return True
    except ValueError:
        return False
    return False


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
    return _parquet_type_difference(files) if file_format == "parquet" else None


def _parquet_type_difference(files: list[Path]) -> tuple[Path, str] | None:
    """Each file reads alone, so together they failed to cast: the first column whose type
    differs from the first file's (a price stored as text in one shard and as a list in another)."""
    import pyarrow.parquet as pq

    first = pq.read_schema(files[0])
    for path in files[1:]:
        schema = pq.read_schema(path)
        for field in schema:
            expected = first.field(field.name).type if field.name in first.names else field.type
            if field.type != expected:
                return path, f"column '{field.name}' is {field.type} here but {expected} in {files[0]}"
    return None


def json_record_line(path: Path, record: int) -> int | None:
    """The 1-based line of the ``record``-th (0-based) record of a JSON Lines file; None for a
    JSON array file, whose records are not one per line."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        return None
    seen = -1
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        if line.strip():
            seen += 1
            if seen == record:
                return number
    return None


def _parquet_problem(path: Path) -> str | None:
    import pyarrow.parquet as pq

    try:
        pq.read_table(path)
    except Exception as error:
        return f"corrupt parquet data: {describe_error(error)}"
    return None


def _json_problem(path: Path) -> str | None:
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):  # one JSON array rather than JSON Lines
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"line {error.lineno}: invalid JSON ({error.msg})"
        return None
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            return f"line {number}: invalid JSON ({error.msg})"
        if not isinstance(record, dict):
            return f"line {number}: expected a JSON object, got {type(record).__name__}"
    return None
