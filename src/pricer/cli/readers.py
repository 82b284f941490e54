"""Where ``pricer predict`` reads products from: arguments, standard input, or a file.

Every input row becomes a :class:`Record` with a 1-based row number. A row that cannot be read
(a CSV row with the wrong number of fields, a JSON line that does not parse, bytes that are not
UTF-8) carries an error instead of stopping the run, so the other rows are still priced. That is
why CSV and JSON lines are parsed row by row with the standard library: pandas pads a short CSV
row with NaN silently, drops a long one, and fails a whole JSON-lines chunk on one bad line.
Parquet is read in batches with pyarrow, so a large file never has to fit in memory at once.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pricer.cli.errors import CliError

INPUT_FORMATS = ("auto", "csv", "jsonl", "json", "parquet", "lines", "text")
EXTENSIONS = {
    ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "lines",
}
PARQUET_MAGIC = b"PAR1"
# Bytes that are not UTF-8 are kept as lone surrogates (errors="surrogateescape"), so the row
# they are in gets an error naming the byte instead of being priced on replacement characters.
DECODE_ERRORS = "surrogateescape"
# A line (a JSON line, a line of text) is read at most this deep: a multi-gigabyte line would
# otherwise be held whole in memory. No product row is that long (a text is cut at 100,000
# characters; escaped as JSON, at most six times that).
MAX_LINE_CHARS = 16 * 2**20
TOO_DEEP = "nested too deeply to read"


@dataclass
class Record:
    row: int  # 1-based: the argument, the line, or the data row after a CSV header
    text: Any
    id: Any = None
    error: str | None = None  # set when the record could not even be read
    length: int | None = None  # the text's length where only its start was read (a huge line)


@dataclass
class Source:
    """Where the product texts come from, resolved from the command line."""

    kind: str  # args | csv | jsonl | json | parquet | lines | text
    name: str  # for messages: "arguments", "<stdin>" or the path
    path: Path | None = None
    texts: list[str] = field(default_factory=list)

    @property
    def has_ids(self) -> bool:
        return self.kind in ("csv", "jsonl", "json", "parquet")

    def open_binary(self) -> IO[bytes]:
        if self.path is None:
            return sys.stdin.buffer
        return open(self.path, "rb")

    def open_text(self) -> IO[str]:
        if self.path is None:
            return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors=DECODE_ERRORS, newline="")
        return open(self.path, encoding="utf-8-sig", errors=DECODE_ERRORS, newline="")


def resolve_source(texts: Sequence[str], input_path: str | None, input_format: str) -> Source:
    if list(texts) == ["-"] and input_path is None:  # `pricer predict -`: standard input
        texts, input_path = [], "-"
    if texts and input_path:
        raise CliError("give product texts as arguments or --input, not both")
    if texts:
        return Source("args", "arguments", texts=list(texts))
    if input_path is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("nothing to price: give product texts as arguments, --input FILE, or pipe text on stdin")
        input_path = "-"
    if input_path == "-":
        kind = "lines" if input_format == "auto" else input_format
        return Source(kind, "<stdin>")
    path = Path(input_path)
    if path.is_dir():
        raise CliError(f"{path}: is a directory, not an input file")
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    kind = input_format
    if kind == "auto":
        kind = EXTENSIONS.get(path.suffix.lower(), "")
        if not kind:
            raise CliError(f"{path}: cannot tell the format from the extension; pass --input-format")
    _check_parquet_magic(path, kind)
    return Source(kind, str(path), path=path)


def _check_parquet_magic(path: Path, kind: str) -> None:
    """Refuse a parquet file read as text (and text read as parquet) before reading any row."""
    try:
        with open(path, "rb") as handle:
            starts_as_parquet = handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
    except OSError as error:
        raise CliError(f"{path}: cannot read: {error.strerror}") from None
    if starts_as_parquet and kind != "parquet":
        raise CliError(f"{path}: is a parquet file, not {kind}; pass --input-format parquet")


def _pick_columns(source: Source, columns: Sequence[str], text_column: str, id_column: str | None) -> str | None:
    """Check the text column exists; return the id column to report (None if there is none)."""
    if text_column not in columns:
        shown = ", ".join(map(str, columns[:20])) or "none"
        raise CliError(f"{source.name}: no column {text_column!r} (columns: {shown}); choose one with --text-column")
    if id_column is not None and id_column not in columns:
        raise CliError(f"{source.name}: no id column {id_column!r}")
    if id_column is None and "id" in columns and text_column != "id":
        return "id"
    return id_column


def read_records(source: Source, *, text_column: str, id_column: str | None, batch_rows: int) -> Iterator[Record]:
    """Yield every input record in order, with a row number; never stop at a bad row."""
    if source.kind == "args":
        for row, text in enumerate(source.texts, start=1):
            yield Record(row, text)
    elif source.kind == "text":
        with source.open_text() as handle:
            text = handle.read(MAX_LINE_CHARS)  # held at most this deep, like a line; the rest is counted
            length = len(text) + sum(len(chunk) for chunk in iter(lambda: handle.read(MAX_LINE_CHARS), ""))
            yield Record(1, text, length=length if length > len(text) else None)
    elif source.kind == "lines":
        with source.open_text() as handle:
            for row, (line, length) in enumerate(bounded_lines(handle), start=1):
                yield Record(row, line, length=length if length > len(line) else None)
    elif source.kind == "csv":
        yield from _read_csv(source, text_column, id_column)
    elif source.kind == "jsonl":
        yield from _read_jsonl(source, text_column, id_column)
    elif source.kind == "json":
        yield from _read_json(source, text_column, id_column)
    elif source.kind == "parquet":
        yield from _read_parquet(source, text_column, id_column, batch_rows)
    else:  # argparse limits the choices
        raise CliError(f"unknown input format {source.kind!r}")


def _read_csv(source: Source, text_column: str, id_column: str | None) -> Iterator[Record]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # product descriptions can be long
    with source.open_text() as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise CliError(f"{source.name}: empty file (a CSV needs a header row)") from None
        except csv.Error as error:
            raise CliError(f"{source.name}: not a readable CSV file: {error}") from None
        id_column = _pick_columns(source, header, text_column, id_column)
        text_at = header.index(text_column)
        id_at = header.index(id_column) if id_column else None
        row = 0
        while True:
            row += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield Record(row, None, error=f"unreadable CSV row: {error}")
                continue
            if not values:  # a blank line is not a row
                row -= 1
                continue
            ident = values[id_at] if id_at is not None and id_at < len(values) else None
            if len(values) != len(header):
                yield Record(row, None, ident, f"row has {len(values)} fields, the header has {len(header)}")
                continue
            yield Record(row, values[text_at], ident)


def _record_from_object(row: int, obj: Any, text_column: str, id_column: str | None) -> Record:
    if not isinstance(obj, dict):
        return Record(row, None, error=f"not a JSON object (got {type(obj).__name__})")
    ident = obj.get(id_column if id_column else "id")
    if text_column not in obj:
        return Record(row, None, ident, f"no {text_column!r} field")
    return Record(row, obj[text_column], ident)


def bounded_lines(handle: IO[str], limit: int = MAX_LINE_CHARS) -> Iterator[tuple[str, int]]:
    """Each line of ``handle`` without its line ending, read at most ``limit`` characters deep,
    and the line's full length (the rest of a longer line is skipped, counted, never held)."""
    while True:
        line = handle.readline(limit)
        if not line:
            return
        head = line.rstrip("\r\n")
        length, chunk = len(head), line
        while len(chunk) == limit and not chunk.endswith(("\n", "\r")):  # the line goes on
            chunk = handle.readline(limit)
            length += len(chunk.rstrip("\r\n"))
        yield head, length


def _read_jsonl(source: Source, text_column: str, id_column: str | None) -> Iterator[Record]:
    with source.open_text() as handle:
        for row, (line, length) in enumerate(bounded_lines(handle), start=1):
            if length > len(line):
                yield Record(row, None, error=f"line of {length:,} characters, longer than a row may be "
                                              f"({MAX_LINE_CHARS:,})")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as error:
                yield Record(row, None, error=f"not valid JSON: {error.msg} (column {error.colno})")
                continue
            except RecursionError:  # arrays or objects nested thousands deep
                yield Record(row, None, error=f"JSON {TOO_DEEP}")
                continue
            yield _record_from_object(row, obj, text_column, id_column)


def _read_json(source: Source, text_column: str, id_column: str | None) -> Iterator[Record]:
    with source.open_text() as handle:
        try:
            document = json.load(handle)
        except json.JSONDecodeError as error:
            raise CliError(f"{source.name}: not valid JSON: {error}") from None
        except RecursionError:  # one document: nothing of it can be read
            raise CliError(f"{source.name}: JSON {TOO_DEEP} (arrays or objects nested thousands deep)") from None
    if isinstance(document, dict) and isinstance(document.get("rows"), list):
        document = document["rows"]
    if not isinstance(document, list):
        raise CliError(f"{source.name}: expected a JSON array of objects (or use --input-format jsonl)")
    for row, obj in enumerate(document, start=1):
        yield _record_from_object(row, obj, text_column, id_column)


def _strings(column: Any) -> list[Any]:
    """A parquet string column as Python values; bytes that are not UTF-8 are kept as lone
    surrogates (as the text readers keep them), so only their row gets an error."""
    import pyarrow as pa

    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise
        binary = pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
        return [None if value is None else value.decode("utf-8", DECODE_ERRORS)
                for value in column.cast(binary).to_pylist()]


def _read_parquet(source: Source, text_column: str, id_column: str | None, batch_rows: int) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    handle = source.open_binary()
    try:
        data = handle if source.path is not None else io.BytesIO(handle.read())
        try:
            parquet = pq.ParquetFile(data)
        except (pa.ArrowException, OSError) as error:
            raise CliError(f"{source.name}: not a readable parquet file: {error}") from None
        columns = parquet.schema_arrow.names
        id_column = _pick_columns(source, columns, text_column, id_column)
        wanted = [text_column] + ([id_column] if id_column else [])
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                texts = _strings(batch.column(text_column))
                ids = _strings(batch.column(id_column)) if id_column else [None] * len(texts)
                for text, ident in zip(texts, ids, strict=False):
                    row += 1
                    yield Record(row, text, ident)
        except (pa.ArrowException, OSError, UnicodeDecodeError) as error:
            raise CliError(f"{source.name}: unreadable after row {row}: {error}") from None
    finally:
        if source.path is not None:
            handle.close()


def parquet_rows(source: Source) -> int | None:
    """The number of rows of a parquet file (for the progress bar), None when unknown."""
    if source.kind != "parquet" or source.path is None:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source.path).metadata.num_rows
    except (pa.ArrowException, OSError):  # the reader reports it properly
        return None


def batched(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
