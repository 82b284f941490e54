"""The ``pricer`` command: price products from their text with the trained models.

    pricer predict "Title: Cordless drill, 20V ..."         # each argument is one product
    printf '%s\\n' "red lamp" "steel drill" | pricer predict  # stdin: one product per line
    pricer predict --input-format text < product.txt         # stdin: the whole input is one product
    pricer predict -i items.csv -f csv -o prices.csv          # CSV / JSONL / JSON / parquet file
    pricer models                                             # what is in models/

Every row of a file gets a row number; a row whose text is missing, empty or not a string gets
an error (on stderr and in the output's ``error`` column) and the other rows are still priced.
Exit status: 0 when at least one row was priced, 1 when none could be (no valid row, unreadable
input or model), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("pricer.cli")

DEFAULT_MODELS = ("models/mlp", "models/resnet")
FORMATS = ("table", "csv", "json", "jsonl")
INPUT_FORMATS = ("auto", "csv", "jsonl", "json", "parquet", "lines", "text")
EXTENSIONS = {
    ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "lines",
}
MAX_ROW_ERRORS_LOGGED = 20
TABLE_TEXT_WIDTH = 48


class CliError(RuntimeError):
    """A problem that stops the command (exit status 1), with a message for the user."""


# --------------------------------------------------------------------------- models


@dataclass
class LoadedModel:
    label: str  # column name in the output: the model's name, made unique if needed
    path: Path
    version: str  # short sha256 of weights.pt: `sha256sum <dir>/weights.pt` starts with it
    predictor: Any  # pricer.predictor.PricePredictor
    mlflow_run_id: str | None = None

    @property
    def name(self) -> str:
        return self.predictor.name

    def describe(self) -> dict[str, Any]:
        p = self.predictor
        info = dict(p.info)
        return {
            "label": self.label,
            "name": p.name,
            "version": self.version,
            "path": str(self.path),
            "kind": p.architecture.get("kind"),
            "text_field": p.vectorizer.text_field,
            "n_features": p.vectorizer.n_features,
            "target": p.target.kind,
            "parameters": info.get("parameters"),
            "best_epoch": info.get("best_epoch"),
            "best_val_mae": info.get("best_val_mae"),
            "mlflow_run_id": self.mlflow_run_id,
        }


def weights_version(directory: Path) -> str:
    from pricer.predictor import WEIGHTS_FILE

    digest = hashlib.sha256()
    with open(directory / WEIGHTS_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:8]


def load_models(paths: Sequence[str] | None, *, device: str = "cpu") -> list[LoadedModel]:
    """Load ``paths`` (default: the pipeline's models/mlp and models/resnet, whichever exist)."""
    from pricer.predictor import ModelLoadError, PricePredictor

    explicit = bool(paths)
    candidates = list(paths) if explicit else list(DEFAULT_MODELS)
    models: list[LoadedModel] = []
    seen: set[tuple[str, str]] = set()
    for raw in candidates:
        path = Path(raw)
        if not explicit and not path.exists():
            log.warning("%s: not found, skipped", path)
            continue
        try:
            predictor = PricePredictor.load(path, device=device)
            version = weights_version(path)
        except (ModelLoadError, OSError) as error:
            raise CliError(str(error)) from None
        if (predictor.name, version) in seen:
            log.warning("%s: the same model (%s %s) was given twice; using it once", path, predictor.name, version)
            continue
        seen.add((predictor.name, version))
        run_id = None
        try:
            run_id = json.loads((path / "run.json").read_text(encoding="utf-8")).get("mlflow_run_id")
        except (OSError, ValueError, AttributeError):
            pass
        models.append(LoadedModel(predictor.name, path, version, predictor, run_id))
        log.debug("loaded %s from %s (version %s)", predictor.name, path, version)
    if not models:
        raise CliError(
            "no trained models found under models/ (run `dvc repro` or `dvc pull` first, "
            "or pass --model DIR)"
        )
    names = [m.label for m in models]
    for model in models:
        if names.count(model.name) > 1:
            model.label = f"{model.name}@{model.version}"
    return models


# --------------------------------------------------------------------------- input


@dataclass
class Record:
    row: int  # 1-based: the argument, the line, or the data row after a CSV header
    text: Any
    id: Any = None
    error: str | None = None  # set when the record could not even be read


def text_problem(value: Any) -> str | None:
    """Why ``value`` cannot be priced, or None when it is a usable product text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing text"
    if not isinstance(value, str):
        return f"text is not a string (got {type(value).__name__}: {str(value)[:40]!r})"
    if not value.strip():
        return "empty text"
    return None


@dataclass
class Source:
    """Where the product texts come from, resolved from the command line."""

    kind: str  # args | csv | jsonl | json | parquet | lines | text
    name: str  # for messages: "arguments", "<stdin>" or the path
    path: Path | None = None
    texts: list[str] = field(default_factory=list)

    def open_binary(self) -> IO[bytes]:
        if self.path is None:
            return sys.stdin.buffer
        return open(self.path, "rb")

    def open_text(self) -> IO[str]:
        if self.path is None:
            return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace", newline="")
        return open(self.path, encoding="utf-8-sig", errors="replace", newline="")


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
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    kind = input_format
    if kind == "auto":
        kind = EXTENSIONS.get(path.suffix.lower(), "")
        if not kind:
            raise CliError(f"{path}: cannot tell the format from the extension; pass --input-format")
    return Source(kind, str(path), path=path)


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
            yield Record(1, handle.read())
    elif source.kind == "lines":
        with source.open_text() as handle:
            for row, line in enumerate(handle, start=1):
                yield Record(row, line.rstrip("\r\n"))
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


def _read_jsonl(source: Source, text_column: str, id_column: str | None) -> Iterator[Record]:
    with source.open_text() as handle:
        for row, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as error:
                yield Record(row, None, error=f"not valid JSON: {error.msg} (column {error.colno})")
                continue
            yield _record_from_object(row, obj, text_column, id_column)


def _read_json(source: Source, text_column: str, id_column: str | None) -> Iterator[Record]:
    with source.open_text() as handle:
        try:
            document = json.load(handle)
        except json.JSONDecodeError as error:
            raise CliError(f"{source.name}: not valid JSON: {error}") from None
    if isinstance(document, dict) and isinstance(document.get("rows"), list):
        document = document["rows"]
    if not isinstance(document, list):
        raise CliError(f"{source.name}: expected a JSON array of objects (or use --input-format jsonl)")
    for row, obj in enumerate(document, start=1):
        yield _record_from_object(row, obj, text_column, id_column)


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
                texts = batch.column(text_column).to_pylist()
                ids = batch.column(id_column).to_pylist() if id_column else [None] * len(texts)
                for text, ident in zip(texts, ids):
                    row += 1
                    yield Record(row, text, ident)
        except (pa.ArrowException, OSError) as error:
            raise CliError(f"{source.name}: unreadable after row {row}: {error}") from None
    finally:
        if source.path is not None:
            handle.close()


def parquet_rows(source: Source) -> int | None:
    if source.kind != "parquet" or source.path is None:
        return None
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source.path).metadata.num_rows
    except Exception:  # the reader reports it properly
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


# --------------------------------------------------------------------------- prediction


@dataclass
class Result:
    row: int
    id: Any
    text: Any
    prices: dict[str, float | None]
    error: str | None


def predict_batch(models: Sequence[LoadedModel], records: Sequence[Record], batch_rows: int) -> list[Result]:
    problems = [record.error or text_problem(record.text) for record in records]
    valid = [record.text for record, problem in zip(records, problems) if problem is None]
    priced: dict[str, list[float]] = {}
    for model in models:
        priced[model.label] = model.predictor.predict(valid, batch_rows=batch_rows).tolist() if valid else []
    results, position = [], 0
    for record, problem in zip(records, problems):
        if problem is None:
            prices = {label: round(float(values[position]), 2) for label, values in priced.items()}
            position += 1
        else:
            prices = {model.label: None for model in models}
        results.append(Result(record.row, _plain(record.id), record.text, prices, problem))
    return results


def _plain(value: Any) -> Any:
    """An id as JSON can hold it (numpy/pyarrow scalars and NaN become plain values)."""
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    item = getattr(value, "item", None)
    return _plain(item()) if callable(item) else str(value)


# --------------------------------------------------------------------------- output


class Writer:
    def __init__(self, stream: IO[str], models: Sequence[LoadedModel], show_id: bool) -> None:
        self.stream, self.models, self.show_id = stream, models, show_id

    def start(self) -> None: ...

    def write(self, results: Sequence[Result]) -> None: ...

    def finish(self, summary: dict[str, int]) -> None: ...


class CsvWriter(Writer):
    """One line per input row: row, [id], a price column per model, error, model versions."""

    def start(self) -> None:
        self.writer = csv.writer(self.stream, lineterminator="\n")
        header = ["row"] + (["id"] if self.show_id else []) + [m.label for m in self.models] + ["error"]
        self.writer.writerow(header + [f"{m.label}_version" for m in self.models])

    def write(self, results: Sequence[Result]) -> None:
        versions = [m.version for m in self.models]
        for r in results:
            prices = ["" if r.prices[m.label] is None else f"{r.prices[m.label]:.2f}" for m in self.models]
            ident = [("" if r.id is None else r.id)] if self.show_id else []
            self.writer.writerow([r.row] + ident + prices + [r.error or ""] + versions)


class JsonLinesWriter(Writer):
    """One JSON object per input row, each with the versions of the models that priced it."""

    def write(self, results: Sequence[Result]) -> None:
        versions = {m.label: m.version for m in self.models}
        for r in results:
            obj = {"row": r.row, **({"id": r.id} if self.show_id else {}), "prices": r.prices,
                   "error": r.error, "versions": versions}
            self.stream.write(json.dumps(obj, ensure_ascii=False) + "\n")


class JsonWriter(Writer):
    """One JSON document: {"models": [...], "predictions": [...], "summary": {...}}."""

    def start(self) -> None:
        self.rows: list[dict] = []

    def write(self, results: Sequence[Result]) -> None:
        self.rows += [{"row": r.row, **({"id": r.id} if self.show_id else {}), "prices": r.prices, "error": r.error}
                      for r in results]

    def finish(self, summary: dict[str, int]) -> None:
        document = {"models": [m.describe() for m in self.models], "predictions": self.rows, "summary": summary}
        json.dump(document, self.stream, ensure_ascii=False, indent=2)
        self.stream.write("\n")


class TableWriter(Writer):
    """A table for people: the models and their versions, then a line per input row."""

    def start(self) -> None:
        self.results: list[Result] = []

    def write(self, results: Sequence[Result]) -> None:
        self.results += results

    def finish(self, summary: dict[str, int]) -> None:
        for m in self.models:
            self.stream.write(f"# {m.label}: {m.path} (version {m.version})\n")
        header = ["row"] + (["id"] if self.show_id else []) + ["text"] + [m.label for m in self.models] + ["error"]
        lines = [header]
        for r in self.results:
            text = " ".join(str(r.text).split()) if isinstance(r.text, str) else ("" if r.text is None else repr(r.text))
            if len(text) > TABLE_TEXT_WIDTH:
                text = text[: TABLE_TEXT_WIDTH - 1] + "…"
            prices = ["-" if r.prices[m.label] is None else f"${r.prices[m.label]:,.2f}" for m in self.models]
            ident = [("" if r.id is None else str(r.id))] if self.show_id else []
            lines.append([str(r.row)] + ident + [text] + prices + [r.error or ""])
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        numeric = {0} | set(range(len(header) - 1 - len(self.models), len(header) - 1))
        for line in lines:
            cells = [cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))]
            self.stream.write("  ".join(cells).rstrip() + "\n")


WRITERS = {"table": TableWriter, "csv": CsvWriter, "json": JsonWriter, "jsonl": JsonLinesWriter}


# --------------------------------------------------------------------------- commands


def _progress_on(setting: str, quiet: bool) -> bool:
    if setting == "off" or quiet:
        return False
    if setting == "on":
        return True
    from pricer.pipeline import progress_enabled

    return progress_enabled("auto")


def cmd_predict(args: argparse.Namespace) -> int:
    source = resolve_source(args.texts, args.input, args.input_format)
    models = load_models(args.model, device=args.device)
    fields = {m.predictor.vectorizer.text_field for m in models}
    text_column = args.text_column or models[0].predictor.vectorizer.text_field
    if not args.text_column and len(fields) > 1:
        log.warning("the models were trained on different fields (%s); reading %r", ", ".join(sorted(fields)), text_column)
    for m in models:
        log.debug("model %s: %s (version %s)", m.label, m.path, m.version)

    records = read_records(source, text_column=text_column, id_column=args.id_column, batch_rows=args.batch_size)
    show_id = source.kind in ("csv", "jsonl", "json", "parquet")
    from tqdm import tqdm

    progress = _progress_on(args.progress, args.quiet > 0) and source.kind != "args"
    summary = {"rows": 0, "priced": 0, "failed": 0}
    batches = batched(records, args.batch_size)
    first = next(batches, [])  # reads a file's header: a missing column stops here, before any output
    has_id = any(r.id is not None for r in first)
    output = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        writer = WRITERS[args.format](output, models, show_id and (has_id or args.id_column is not None))
        writer.start()
        with tqdm(total=parquet_rows(source), desc="pricing", unit="row", disable=not progress, file=sys.stderr) as bar:
            for batch in _chain_first(first, batches):
                results = predict_batch(models, batch, args.batch_size)
                for r in results:
                    summary["rows"] += 1
                    if r.error:
                        summary["failed"] += 1
                        if summary["failed"] <= MAX_ROW_ERRORS_LOGGED:
                            log.warning("row %d: %s", r.row, r.error)
                    else:
                        summary["priced"] += 1
                writer.write(results)
                bar.update(len(batch))
        writer.finish(summary)
    finally:
        if args.output:
            output.close()
        else:
            output.flush()
    if summary["failed"] > MAX_ROW_ERRORS_LOGGED:
        log.warning("... and %d more rows with errors (see the error column)", summary["failed"] - MAX_ROW_ERRORS_LOGGED)
    if summary["priced"] == 0:
        log.error("no row could be priced (%d rows read from %s)", summary["rows"], source.name)
        return 1
    log.info("priced %d of %d rows from %s with %s", summary["priced"], summary["rows"], source.name,
             ", ".join(m.label for m in models))
    return 0


def _chain_first(first: list[Record], rest: Iterator[list[Record]]) -> Iterator[list[Record]]:
    if first:
        yield first
    yield from rest


def cmd_models(args: argparse.Namespace) -> int:
    models = load_models(args.model, device="cpu")
    described = [m.describe() for m in models]
    if args.format == "json":
        sys.stdout.write(json.dumps(described, indent=2) + "\n")
        return 0
    keys = ["label", "version", "path", "kind", "parameters", "text_field", "best_epoch", "best_val_mae", "mlflow_run_id"]
    lines = [keys] + [["" if d[k] is None else str(d[k]) for k in keys] for d in described]
    widths = [max(len(line[i]) for line in lines) for i in range(len(keys))]
    for line in lines:
        sys.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n")
    return 0


# --------------------------------------------------------------------------- parser


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


PREDICT_DESCRIPTION = """\
Price products with one or more trained models (default: models/mlp and models/resnet).

Where the products come from:
  TEXT ...               each argument is one product
  (nothing) or -         standard input, one product per line
  --input-format text    standard input (or --input FILE) is one product, newlines and all
  -i FILE                a .csv, .jsonl/.ndjson, .json (array of objects), .parquet or .txt
                         (one product per line) file; the text is read from --text-column

A row whose text is missing, empty or not a string gets an error (on stderr and in the
output's error column) and every other row is still priced."""

PREDICT_EPILOG = r"""examples:
  pricer predict $'Title: Cordless drill 20V\nCategory: Tools & Home Improvement'   # bash: $'' makes \n a newline
  cut -f2 titles.tsv | pricer predict -f csv > prices.csv
  pricer predict -i data/raw/test.parquet -m models/resnet -f json -o prices.json

exit status: 0 when at least one row was priced; 1 when none could be (or the input or a
model could not be read); 2 for a usage error.

Models price best the kind of text they were trained on: `pricer models` shows the field
(normally summary: "Title: ...\nCategory: ...\nBrand: ...\nDescription: ...\nDetails: ...")."""


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own_version = version("pricer")
    except PackageNotFoundError:
        own_version = "unknown"
    parser = argparse.ArgumentParser(
        prog="pricer",
        description="Predict a product's price from its text with the models the DVC pipeline trained "
                    "(models/mlp and models/resnet).",
        epilog="Run `pricer COMMAND --help` for a command's options. Comparing experiments, plots and "
               "MLflow: docs/comparing.md.",
    )
    parser.add_argument("--version", action="version", version=f"pricer {own_version}")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="more log messages (debug)")
    verbosity.add_argument("-q", "--quiet", action="count", default=0,
                           help="fewer log messages: -q warnings and errors only (no progress bar), -qq errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = commands.add_parser(
        "predict", parents=[verbosity],
        help="price products given as arguments, on standard input, or in a CSV/JSONL/JSON/parquet file",
        description=PREDICT_DESCRIPTION,
        epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="product text(s) to price, one per argument")
    predict.add_argument("-i", "--input", metavar="FILE",
                         help="read products from FILE (.csv, .jsonl/.ndjson, .json array, .parquet, .txt = one "
                              "per line); '-' = standard input")
    predict.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                         help="format of --input/stdin (default: from the file extension; stdin: lines)")
    predict.add_argument("--text-column", metavar="NAME",
                         help="column/field holding the product text (default: the field the model was trained "
                              "on, normally 'summary')")
    predict.add_argument("--id-column", metavar="NAME",
                         help="column/field copied to the output to identify rows (default: 'id' when present)")
    predict.add_argument("-m", "--model", action="append", metavar="DIR",
                         help="a trained model directory (repeat for several; default: models/mlp and models/resnet)")
    predict.add_argument("-f", "--format", choices=FORMATS, default="table",
                         help="output format (default: table). csv: a line per input row with a price column per "
                              "model, an error column and each model's version; json: one document with the "
                              "models and every row; jsonl: one object per row")
    predict.add_argument("-o", "--output", metavar="FILE", help="write the output to FILE (default: standard output)")
    predict.add_argument("--batch-size", type=_positive_int, default=1024, metavar="N",
                         help="rows priced per batch (default: 1024)")
    predict.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    predict.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                         help="progress bar on stderr for files and stdin (auto: only at a terminal and when CI "
                              "is not set)")
    predict.set_defaults(handler=cmd_predict)

    models = commands.add_parser(
        "models", parents=[verbosity], help="show the trained models: version, architecture, training summary",
        description="Show each model's label, version (the first 8 hex digits of sha256(weights.pt)), path, "
                    "architecture, the text field it reads, its best epoch and validation MAE, and the MLflow "
                    "run that trained it.",
    )
    models.add_argument("-m", "--model", action="append", metavar="DIR",
                        help="a model directory (repeat; default: models/mlp and models/resnet)")
    models.add_argument("-f", "--format", choices=("table", "json"), default="table", help="output format")
    models.set_defaults(handler=cmd_models)
    return parser


# --------------------------------------------------------------------------- logging


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so in-process callers can capture it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it
        pass


def _configure_logging(verbose: int, quiet: int) -> tuple[logging.Logger, logging.Handler, int, bool]:
    level = logging.DEBUG if verbose else logging.ERROR if quiet > 1 else logging.WARNING if quiet else logging.INFO
    logger = logging.getLogger("pricer")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("pricer: %(levelname)s: %(message)s" if verbose else "pricer: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger, handler, *saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    logger, handler, level, propagate = _configure_logging(args.verbose, args.quiet)
    try:
        return args.handler(args)
    except CliError as error:
        log.error("%s", error)
        return 1
    except BrokenPipeError:  # `pricer predict ... | head` closed the pipe: not an error
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 0
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


if __name__ == "__main__":
    sys.exit(main())
