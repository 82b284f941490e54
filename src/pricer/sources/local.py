"""Local sources: parquet/JSON(L) files, Hub-layout directories, ``datasets.save_to_disk`` directories.

Everything is read through the ``datasets`` library (``load_dataset("parquet"/"json", ...)``,
``load_from_disk``) and converted batch by batch with :func:`batch_frame`, which the Hub loader shares.

- A missing ``price`` in a plain ``float64`` column is indistinguishable from NaN; Arrow nulls
  read from files are kept apart (an Arrow-backed column) so validation counts them as
  ``missing_price`` rather than ``non_finite_price``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from pricer.sources.batches import SOURCE_BATCH_ROWS, SplitBatches
from pricer.sources.diagnose import check_json_text, check_parquet_header, check_same_columns, unreadable_files_error
from pricer.sources.errors import DataError, describe_error

if TYPE_CHECKING:
    import datasets
    import pyarrow.parquet as pq

logger = logging.getLogger(__name__)


def is_saved_dataset(directory: Path) -> bool:
    # The marker files datasets.save_to_disk writes for a DatasetDict / a single Dataset.
    return (directory / "dataset_dict.json").is_file() or (directory / "state.json").is_file()


def parquet_files(directory: Path) -> list[Path]:
    # Hidden folders are skipped: `hf download --local-dir` keeps its bookkeeping in .cache/.
    return sorted(
        path
        for path in directory.rglob("*.parquet")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def load_local_file(source: str, path: Path, file_format: str) -> dict[str, SplitBatches]:
    if file_format == "parquet":
        return _load_parquet_files(source, {"train": [path]})
    check_json_text(source, path)
    return _load_data_files(source, file_format, {"train": [path]})


def load_hub_layout_dir(source: str, directory: Path) -> dict[str, SplitBatches]:
    data_files = _hub_layout_data_files(directory)
    logger.info(
        "%s: parquet files per split: %s",
        source,
        {split: [str(path.relative_to(directory)) for path in files] for split, files in data_files.items()},
    )
    return _load_parquet_files(source, data_files)


def _hub_layout_data_files(directory: Path) -> dict[str, list[Path]]:
    """Split name -> parquet files, named the way the Hub names them (datasets' own inference:
    data/train-00000-of-00001.parquet, train.parquet, dev.parquet -> validation, ...)."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    patterns = get_data_patterns(str(directory))
    resolved = DataFilesDict.from_patterns(patterns, base_path=str(directory), allowed_extensions=[".parquet"])
    data_files = {str(split): sorted(Path(name) for name in files) for split, files in resolved.items() if files}
    # Split names may match only non-parquet files (train.csv next to items.parquet): then the
    # parquet files form one split, like a single file.
    return data_files or {"train": parquet_files(directory)}


def _load_data_files(source: str, file_format: str, data_files: Mapping[str, list[Path]]) -> dict[str, SplitBatches]:
    """The one loader for local parquet/JSON files, single files and directories alike."""
    import datasets

    try:
        loaded = datasets.load_dataset(
            file_format, data_files={split: [str(path) for path in files] for split, files in data_files.items()}
        )
    except Exception as error:  # datasets wraps parser errors in several types; all mean "unreadable"
        raise unreadable_files_error(source, file_format, data_files, error) from error
    return {str(split): dataset_batches(source, str(split), dataset) for split, dataset in loaded.items()}


def load_saved_dataset(source: str, directory: Path) -> dict[str, SplitBatches]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(directory))
    except FileNotFoundError as error:
        what = f"{error.filename} is missing" if error.filename else describe_error(error)
        raise DataError(f"{source}: not a readable datasets.save_to_disk directory: {what}") from error
    except Exception as error:
        raise DataError(f"{source}: not a readable datasets.save_to_disk directory: {describe_error(error)}") from error
    if isinstance(loaded, datasets.Dataset):
        return {"train": dataset_batches(source, "train", loaded)}
    return {str(split): dataset_batches(source, str(split), dataset) for split, dataset in loaded.items()}


def _load_parquet_files(source: str, data_files: Mapping[str, list[Path]]) -> dict[str, SplitBatches]:
    """Parquet files checked one by one (so errors name the file), then loaded through datasets.

    datasets 5.2 fails on a 0-row parquet file ("BatchSize must be greater than 0"), so such
    files are left out, and a split made only of them becomes an empty frame: the split rules
    then decide whether it matters (an empty test split does, an ignored extra split does not).
    """
    import pyarrow.parquet as pq

    footers = {path: _parquet_footer(source, path) for files in data_files.values() for path in files}
    check_same_columns(source, {path: footer.schema.to_arrow_schema().names for path, footer in footers.items()})
    with_rows: dict[str, list[Path]] = {}
    empty: dict[str, Path] = {}
    for split, files in data_files.items():
        kept = [path for path in files if footers[path].num_rows > 0]
        if not kept:
            empty[split] = files[0]
            continue
        if len(kept) < len(files):
            logger.info("%s: split '%s': skipping %d parquet files with 0 rows", source, split, len(files) - len(kept))
        with_rows[split] = kept
    frames = _load_data_files(source, "parquet", with_rows) if with_rows else {}
    for split, path in empty.items():
        frames[split] = SplitBatches.of_frame(pq.read_schema(path).empty_table().to_pandas())
    return frames


def _parquet_footer(source: str, path: Path) -> pq.FileMetaData:
    # Reads only the footer; datasets reports these failures without the file name.
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError(f"{source}: {path} is an empty file")
    check_parquet_header(source, path)
    try:
        return pq.read_metadata(path)
    except Exception as error:
        raise DataError(
            f"{source}: {path} is not a readable parquet file (truncated or corrupt?): {describe_error(error)}"
        ) from error


def dataset_batches(source: str, split: str, dataset: datasets.Dataset) -> SplitBatches:
    """A ``datasets`` split (memory-mapped Arrow) as batches of :data:`SOURCE_BATCH_ROWS` rows."""
    rows = len(dataset)

    def items() -> Iterable[tuple[tuple[datasets.Dataset, int], int]]:
        for start in range(0, rows, SOURCE_BATCH_ROWS):
            yield (dataset.select(range(start, min(start + SOURCE_BATCH_ROWS, rows))), start), start

    return SplitBatches(rows, items, functools.partial(batch_frame, source, split))


def batch_frame(source: str, split: str, batch: tuple[datasets.Dataset, int]) -> pd.DataFrame:
    """One batch as a frame (decoded by its features, as ``datasets`` does), its text checked for
    valid UTF-8 (errors name the row in the split)."""
    dataset, first_row = batch
    table = dataset.with_format("arrow")[:]
    _check_utf8(source, split, table, first_row)
    try:
        frame = dataset.to_pandas()
    except Exception as error:
        raise DataError(f"{source}: split '{split}' cannot be converted to a table: {describe_error(error)}") from error
    if "price" in table.column_names:
        frame["price"] = _price_keeping_nulls(table["price"], frame["price"])
    return frame


def _check_utf8(source: str, split: str, table: pa.Table, first_row: int) -> None:
    """Every text column must be valid UTF-8: a parquet writer that skipped validation lets
    invalid bytes through, which pandas only trips over when a value is read (mid-vectorize)."""
    for name in table.column_names:
        column = table[name]
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            binary = column.cast(pa.large_binary()).to_pylist()
            for row, value in enumerate(binary):
                try:
                    value is None or value.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise DataError(
                        f"{source}: split '{split}' row {first_row + row}, column '{name}': invalid UTF-8 "
                        f"({error.reason} at byte {error.start}); re-encode the text as UTF-8"
                    ) from None
            raise


def _price_keeping_nulls(column: pa.ChunkedArray, converted: pd.Series) -> pd.Series:
    # to_pandas turns Arrow nulls in a float column into NaN; an Arrow-backed column keeps
    # null (missing_price) apart from a stored NaN (non_finite_price).
    if pa.types.is_floating(column.type) and column.null_count > 0:
        return pd.Series(pd.arrays.ArrowExtensionArray(column), index=converted.index, name="price")
    return converted
