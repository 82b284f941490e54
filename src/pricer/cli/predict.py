"""``pricer predict``: price products given as arguments, on standard input, or in a file."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from pricer.cli.errors import CliError
from pricer.cli.models import LoadedModel, load_models
from pricer.cli.readers import INPUT_FORMATS, Record, batched, parquet_rows, read_records, resolve_source
from pricer.cli.writers import (
    FORMATS,
    WRITERS,
    Result,
    check_output,
    open_output,
    output_format,
    plain,
    range_columns,
)
from pricer.intervals import DEFAULT_LEVEL, check_level
from pricer.text import MAX_TEXT_CHARS, NO_WORDS, cut_text, text_problem, wordless

log = logging.getLogger("pricer.cli")

MAX_ROW_ERRORS_LOGGED = 20


def predict_batch(models: Sequence[LoadedModel], records: Sequence[Record], batch_rows: int,
                  level: float = DEFAULT_LEVEL) -> list[Result]:
    """Each valid record's price from each model, with ``<label>_low``/``<label>_high`` (its range
    at ``level``; None for a model saved without a calibration)."""
    problems = [record.error or text_problem(record.text) for record in records]
    readable = [position for position, problem in enumerate(problems) if problem is None]
    texts = [cut_text(records[position].text) for position in readable]
    for model in models:
        without_words = wordless(texts, model.predictor.vectorizer.stop_words)
        for position, no_words in zip(readable, without_words, strict=True):
            if no_words:
                problems[position] = NO_WORDS
    valid = [cut_text(record.text) for record, problem in zip(records, problems, strict=False) if problem is None]
    for record, problem in zip(records, problems, strict=False):
        length = record.length or (len(record.text) if problem is None else 0)
        if problem is None and length > MAX_TEXT_CHARS:
            log.warning("row %d: text of %s characters cut to %s, as in training", record.row, f"{length:,}",
                        f"{MAX_TEXT_CHARS:,}")
    priced: dict[str, list[float | None]] = {}
    for model in models:
        prices = model.predictor.predict(valid, batch_rows=batch_rows) if valid else np.zeros(0)
        calibration = model.predictor.calibration
        ranged = calibration.ranges(prices, level) if calibration is not None else None
        priced[model.label] = prices.tolist()
        for column, bound in zip(range_columns(model.label), (ranged.low, ranged.high) if ranged else (None, None),
                                 strict=False):
            priced[column] = bound.tolist() if bound is not None else [None] * len(valid)
    results, position = [], 0
    for record, problem in zip(records, problems, strict=False):
        if problem is None:
            prices = {label: None if values[position] is None else round(float(values[position]), 2)
                      for label, values in priced.items()}
            position += 1
        else:
            prices = dict.fromkeys(priced)
        results.append(Result(record.row, plain(record.id), record.text, prices, problem))
    return results


def _progress_on(setting: str, quiet: bool) -> bool:
    if setting == "off" or quiet:
        return False
    if setting == "on":
        return True
    from pricer.console import progress_enabled

    return progress_enabled("auto")


def _chain_first(first: list[Record], rest: Iterator[list[Record]]) -> Iterator[list[Record]]:
    if first:
        yield first
    yield from rest


def cmd_predict(args: argparse.Namespace) -> int:
    source = resolve_source(args.texts, args.input, args.input_format)
    out_format = output_format(args.format, args.output)
    output = check_output(args.output, source.path) if args.output else None
    models = load_models(args.model, device=args.device)
    for model in models:
        if model.predictor.calibration is None:
            log.warning("%s: saved without a calibration (no calibration.json): its %s columns stay empty; "
                        "retrain it for price ranges", model.path, "/".join(range_columns(model.label)))
    fields = {model.predictor.vectorizer.text_field for model in models}
    text_column = args.text_column or models[0].predictor.vectorizer.text_field
    if not args.text_column and len(fields) > 1:
        log.warning("the models were trained on different fields (%s); reading %r", ", ".join(sorted(fields)),
                    text_column)

    records = read_records(source, text_column=text_column, id_column=args.id_column, batch_rows=args.batch_size)
    from tqdm import tqdm

    progress = _progress_on(args.progress, args.quiet > 0) and source.kind != "args"
    summary = {"rows": 0, "priced": 0, "failed": 0}
    batches = batched(records, args.batch_size)
    first = next(batches, [])  # reads a file's header: a missing column stops here, before any output
    if not first:
        raise CliError(f"{source.name}: no rows to price "
                       f"(the input is empty{' but for its header' if source.kind == 'csv' else ''})")
    has_id = any(record.id is not None for record in first)
    with open_output(output) as stream:
        writer = WRITERS[out_format](stream, models, source.has_ids and (has_id or args.id_column is not None),
                                     args.level)
        writer.start()
        with tqdm(total=parquet_rows(source), desc="pricing", unit="row", disable=not progress, file=sys.stderr) as bar:
            for batch in _chain_first(first, batches):
                results = predict_batch(models, batch, args.batch_size, args.level)
                for result in results:
                    summary["rows"] += 1
                    if result.error:
                        summary["failed"] += 1
                        if summary["failed"] <= MAX_ROW_ERRORS_LOGGED:
                            log.warning("row %d: %s", result.row, result.error)
                    else:
                        summary["priced"] += 1
                writer.write(results)
                bar.update(len(batch))
        writer.finish(summary)
    if summary["failed"] > MAX_ROW_ERRORS_LOGGED:
        log.warning("... and %d more rows with errors (see the error column)",
                    summary["failed"] - MAX_ROW_ERRORS_LOGGED)
    if summary["priced"] == 0:
        log.error("no row could be priced (%d rows read from %s)", summary["rows"], source.name)
        return 1
    log.info("priced %d of %d rows from %s with %s", summary["priced"], summary["rows"], source.name,
             ", ".join(model.label for model in models))
    return 0


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _level(value: str) -> float:
    try:
        return check_level(float(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r}: {error}") from None


def _torch_device(value: str) -> str:
    """A device this machine has: an unknown name, or CUDA/MPS where there is none, is a usage error."""
    import torch

    try:
        device = torch.device(value)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a torch device (cpu, cuda, cuda:N, mps)") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise argparse.ArgumentTypeError(f"{value!r} is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{value!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return value


DESCRIPTION = """\
Price products with one or more trained models (default: models/mlp, models/resnet and
models/ensemble). Each price comes with its calibrated range at --level (default 0.80: about
80% of products like it sell inside the range): <model>_low and <model>_high beside <model>.

Where the products come from:
  TEXT ...               each argument is one product
  (nothing) or -         standard input, one product per line
  --input-format text    standard input (or --input FILE) is one product, newlines and all
  -i FILE                a .csv, .jsonl/.ndjson, .json (array of objects), .parquet or .txt
                         (one product per line) file; the text is read from --text-column

A row whose text is missing, empty, not a string, not valid UTF-8 or without a word the model
reads (only stop words, punctuation or one-letter words) gets an error (on stderr and in the
output's error column) and every other row is still priced. A text longer than
100,000 characters is cut to that length, as in training.

-o FILE is written whole or not at all: into a hidden temporary file beside it
(.FILE.<random>.tmp.<ext>), renamed over FILE once every row is written. An error, Ctrl-C or
SIGTERM leaves the old FILE as it was. The input file itself is refused as -o."""

EPILOG = r"""examples:
  pricer predict $'Title: Cordless drill 20V\nCategory: Tools & Home Improvement'   # bash: $'' makes \n a newline
  cut -f2 titles.tsv | pricer predict -f csv > prices.csv
  pricer predict -i data/raw/test.parquet -m models/resnet -o prices.json

exit status: 0 when at least one row was priced; 1 when none could be (or the input, the
output or a model could not be read or written); 2 for a usage error.

Models price best the kind of text they were trained on: `pricer models` shows the field
(normally summary: "Title: ...\nCategory: ...\nBrand: ...\nDescription: ...\nDetails: ...")."""


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "predict", parents=parents,
        help="price products given as arguments, on standard input, or in a CSV/JSONL/JSON/parquet file",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="product text(s) to price, one per argument")
    parser.add_argument("-i", "--input", metavar="FILE",
                        help="read products from FILE (.csv, .jsonl/.ndjson, .json array, .parquet, .txt = one "
                             "per line); '-' = standard input")
    parser.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                        help="format of --input/stdin (default: from the file extension; stdin: lines)")
    parser.add_argument("--text-column", metavar="NAME",
                        help="column/field holding the product text (default: the field the model was trained "
                             "on, normally 'summary')")
    parser.add_argument("--id-column", metavar="NAME",
                        help="column/field copied to the output to identify rows (default: 'id' when present)")
    parser.add_argument("-m", "--model", action="append", metavar="MODEL",
                        help="a trained model directory, a pipeline model's name (mlp, resnet, ensemble: "
                             "models/<name>) or an MLflow model URI (runs:/<run id>/model, "
                             "models:/pricer-resnet@champion); repeat for several; default: models/mlp, "
                             "models/resnet and models/ensemble")
    parser.add_argument("--level", type=_level, default=DEFAULT_LEVEL, metavar="FRACTION",
                        help="the price ranges' level: the share of products whose price should lie inside "
                             "their range (default: 0.80); any level, without retraining")
    parser.add_argument("-f", "--format", choices=FORMATS, default=None,
                        help="output format (default: from -o's extension .csv/.json/.jsonl/.ndjson, else table; "
                             "an -f that contradicts the extension is refused). csv: a line per input row with a "
                             "price column per model (and its _low and _high), an error column and each "
                             "model's version; json: one "
                             "document with the models and every row; jsonl: one object per row")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the output to FILE, atomically (default: standard output)")
    parser.add_argument("--batch-size", type=_positive_int, default=1024, metavar="N",
                        help="rows priced per batch (default: 1024)")
    parser.add_argument("--device", type=_torch_device, default="cpu",
                        help="torch device for the models: cpu, cuda, cuda:N or mps (default: cpu)")
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                        help="progress bar on stderr for files and stdin (auto: only at a terminal and when CI "
                             "is not set)")
    parser.set_defaults(handler=cmd_predict)
