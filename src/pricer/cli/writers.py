"""What ``pricer predict`` writes: a table for people, CSV, JSON or JSON lines.

Output to a file is atomic: it is written to a hidden temporary file beside ``-o``
(``.<name>.<random>.tmp<suffix>``, see :mod:`pricer.atomic`) and renamed over ``-o`` only
once every row is written. An error, Ctrl-C or SIGTERM part-way removes the temporary and
leaves the old ``-o`` as it was; after a SIGKILL the temporary stays, hidden, and nothing reads it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from pricer.atomic import OutputError, atomic_path
from pricer.cli.errors import CliError
from pricer.cli.models import LoadedModel
from pricer.cli.table import text_table
from pricer.intervals import DEFAULT_LEVEL

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
OUTPUT_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
BINARY_FORMATS = {"parquet"}  # written to a file (-o) only, never to a terminal
TABLE_TEXT_WIDTH = 48


@dataclass
class Result:
    row: int
    id: Any
    text: Any
    prices: dict[str, float | None]  # per model label: the price, and its range as <label>_low, <label>_high
    error: str | None


def range_columns(label: str) -> tuple[str, str]:
    """The columns that hold the range of ``label``'s price: ``resnet_low``, ``resnet_high``."""
    return f"{label}_low", f"{label}_high"


def plain(value: Any) -> Any:
    """A value as JSON can hold it and UTF-8 can write it (numpy/pyarrow scalars and NaN become
    plain values; bytes that were not UTF-8 in the input are written as \\x escapes)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, float):
        return None if math.isnan(value) else value
    item = getattr(value, "item", None)
    return plain(item()) if callable(item) else plain(str(value))


class Writer:
    def __init__(self, stream: IO[str], models: Sequence[LoadedModel], show_id: bool,
                 level: float = DEFAULT_LEVEL) -> None:
        self.stream, self.models, self.show_id, self.level = stream, models, show_id, level

    def start(self) -> None: ...

    def write(self, results: Sequence[Result]) -> None: ...

    def finish(self, summary: dict[str, int]) -> None: ...


def result_columns(results: Sequence[Result], models: Sequence[LoadedModel], show_id: bool) -> dict[str, list[Any]]:
    """The columns of a batch of results, as CSV and parquet write them: row, [id], per model its
    price and range (<model>, <model>_low, <model>_high), error, then each model's version."""
    columns: dict[str, list[Any]] = {"row": [result.row for result in results]}
    if show_id:
        columns["id"] = [result.id for result in results]
    for model in models:
        for column in (model.label, *range_columns(model.label)):
            columns[column] = [result.prices.get(column) for result in results]
    columns["error"] = [result.error for result in results]
    for model in models:
        columns[f"{model.label}_version"] = [model.version] * len(results)
    return columns


class CsvWriter(Writer):
    """One line per input row: row, [id], per model its price and range (<model>, <model>_low,
    <model>_high), error, model versions."""

    def start(self) -> None:
        self.header_written = False

    def write(self, results: Sequence[Result]) -> None:
        columns = result_columns(results, self.models, self.show_id)
        frame = pd.DataFrame({name: pd.Series(values, dtype=object if name == "id" else None)
                              for name, values in columns.items()})
        frame.to_csv(self.stream, index=False, header=not self.header_written, float_format="%.2f",
                     lineterminator="\n")
        self.header_written = True

    def finish(self, summary: dict[str, int]) -> None:
        if not self.header_written:  # no row: the header alone
            self.write([])


class ParquetWriter(Writer):
    """The CSV's columns in a parquet file, one row group per batch; ids as text (an input's ids
    may mix numbers and text), prices and ranges as doubles, null where a row has no price."""

    def start(self) -> None:
        import pyarrow as pa

        fields = [pa.field("row", pa.int64())] + ([pa.field("id", pa.string())] if self.show_id else [])
        for model in self.models:
            fields += [pa.field(column, pa.float64()) for column in (model.label, *range_columns(model.label))]
        fields += [pa.field("error", pa.string())]
        fields += [pa.field(f"{model.label}_version", pa.string()) for model in self.models]
        self.schema = pa.schema(fields)
        self.sink = None

    def write(self, results: Sequence[Result]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = result_columns(results, self.models, self.show_id)
        if "id" in columns:
            columns["id"] = [None if value is None else str(plain(value)) for value in columns["id"]]
        table = pa.Table.from_pydict(columns, schema=self.schema)
        if self.sink is None:
            self.sink = pq.ParquetWriter(self.stream.buffer, self.schema)
        self.sink.write_table(table)

    def finish(self, summary: dict[str, int]) -> None:
        if self.sink is None:  # no row: a file with the columns alone
            self.write([])
        self.sink.close()


class JsonLinesWriter(Writer):
    """One JSON object per input row, each with the versions of the models that priced it and the
    level of the ranges (``prices`` holds ``<model>_low``/``<model>_high`` beside ``<model>``)."""

    def write(self, results: Sequence[Result]) -> None:
        versions = {model.label: model.version for model in self.models}
        for result in results:
            obj = {"row": result.row, **({"id": result.id} if self.show_id else {}), "prices": result.prices,
                   "error": result.error, "versions": versions, "level": self.level}
            self.stream.write(json.dumps(obj, ensure_ascii=False) + "\n")


class JsonWriter(Writer):
    """One JSON document: {"models": [...], "level": ..., "predictions": [...], "summary": {...}}."""

    def start(self) -> None:
        self.rows: list[dict] = []

    def write(self, results: Sequence[Result]) -> None:
        self.rows += [{"row": result.row, **({"id": result.id} if self.show_id else {}), "prices": result.prices,
                       "error": result.error} for result in results]

    def finish(self, summary: dict[str, int]) -> None:
        document = {"models": [model.describe() for model in self.models], "level": self.level,
                    "predictions": self.rows,
                    "summary": summary}
        json.dump(document, self.stream, ensure_ascii=False, indent=2)
        self.stream.write("\n")


def _table_text(text: Any) -> str:
    shown = " ".join(plain(text).split()) if isinstance(text, str) else ("" if text is None else repr(text))
    return shown[: TABLE_TEXT_WIDTH - 1] + "…" if len(shown) > TABLE_TEXT_WIDTH else shown


class TableWriter(Writer):
    """A table for people: the models and their versions, then a line per input row, each price
    with its range: ``$45.20 ($31.10–$68.40, 80%)``."""

    def start(self) -> None:
        self.results: list[Result] = []

    def write(self, results: Sequence[Result]) -> None:
        self.results += results

    def finish(self, summary: dict[str, int]) -> None:
        for model in self.models:
            self.stream.write(f"# {model.label}: {model.path} (version {model.version})\n")
        header = ["row"] + (["id"] if self.show_id else []) + ["text"] + [m.label for m in self.models] + ["error"]
        lines = [header]
        for result in self.results:
            prices = [price_with_range(result.prices, m.label, self.level) for m in self.models]
            ident = [("" if result.id is None else str(result.id))] if self.show_id else []
            lines.append([str(result.row)] + ident + [_table_text(result.text)] + prices + [result.error or ""])
        numeric = {0} | set(range(len(header) - 1 - len(self.models), len(header) - 1))
        self.stream.write(text_table(lines, right=numeric))


def price_with_range(prices: dict[str, float | None], label: str, level: float) -> str:
    """``$45.20 ($31.10–$68.40, 80%)``; the price alone where there is no range, ``-`` for none."""
    price = prices.get(label)
    if price is None:
        return "-"
    low, high = (prices.get(column) for column in range_columns(label))
    if low is None or high is None:
        return f"${price:,.2f}"
    return f"${price:,.2f} (${low:,.2f}–${high:,.2f}, {100 * level:g}%)"


WRITERS = {"table": TableWriter, "csv": CsvWriter, "json": JsonWriter, "jsonl": JsonLinesWriter,
           "parquet": ParquetWriter}


def output_format(requested: str | None, output: str | None) -> str:
    """``-f``, or the format ``-o``'s extension names; an ``-f`` the extension contradicts is refused."""
    implied = OUTPUT_EXTENSIONS.get(Path(output).suffix.lower()) if output else None
    if requested is None:
        return implied or "table"
    if implied and requested != implied:
        raise CliError(f"-o {output}: the extension says {implied}, -f says {requested}; "
                       f"pass -f {implied} or another file name")
    if requested in BINARY_FORMATS and output is None:
        raise CliError(f"-f {requested} writes a binary file: name it with -o FILE.{requested}")
    return requested


def check_output(output: str, input_path: Path | None) -> Path:
    """Refuse an ``-o`` that cannot be written, before any model is loaded or row read."""
    path = Path(output)
    if path.is_dir():
        raise CliError(f"-o {output}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"-o {output}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"-o {output}: no permission to write in {parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise CliError(f"-o {output}: no permission to write the file")
    # Pricing a file into itself would replace the products with their prices: refused.
    if input_path is not None and path.exists() and os.path.samefile(path, input_path):
        raise CliError(f"-o {output}: is the input file; write the prices to another file")
    return path


@contextlib.contextmanager
def open_output(output: Path | None) -> Iterator[IO[str]]:
    """Standard output, or a temporary file that replaces ``output`` when the block succeeds."""
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        with atomic_path(output, make_parents=False) as tmp, open(tmp, "w", encoding="utf-8", newline="") as stream:
            yield stream
    except OutputError as error:  # refused, disk full, or the directory became unwritable part-way
        raise CliError(f"-o {output}: cannot write: {error.reason}") from None
