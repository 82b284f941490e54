"""Fetch stage library: load product items from a source, split them, validate every split.

Pure: returns data frames and a JSON-serialisable report; the stage script writes the files.

Sources (see :func:`resolve_source`):

- ``"synthetic"``: :func:`pricer.catalogue.generate_catalogue` (one split).
- an existing local path: a ``.parquet``, ``.jsonl`` or ``.json`` file (one split); a directory
  laid out like a Hub dataset repo (``data/train-*.parquet`` ..., or top-level ``train*.parquet``
  ...; a directory straight from ``hf download --local-dir`` works); a ``datasets.save_to_disk``
  directory (``DatasetDict`` or a single ``Dataset``).
- ``owner/name``: a Hugging Face Hub dataset (``ed-donner/items_lite``), optionally pinned to
  ``revision``. An existing local path always wins over a Hub id of the same spelling.

Everything is read through the ``datasets`` library (``load_dataset("parquet"/"json", ...)``,
``load_from_disk``, ``load_dataset(<hub id>)``) and then converted with ``.to_pandas()``.

Decisions worth knowing:

- Invalid UTF-8 in a JSON/JSONL file is an error naming the file and line, not decoded with
  replacement: ``datasets`` 5.2 lets invalid bytes through into its Arrow cache and only fails
  later in ``to_pandas`` with an unrelated-looking message, and silently replacing characters
  would change the texts the model learns from. Re-encode the file (``iconv -f <enc> -t utf-8``).
- Before loading a Hub dataset we ask the Hub for the dataset's commit (one API call with a
  :data:`HUB_PROBE_TIMEOUT_S` timeout and no retries): it gives the commit sha for the report,
  pins the download to it, and turns "Hub unreachable" into a clear error in seconds instead
  of ``datasets``' ~25 s of retries (connection refused) or minutes (a host that never answers).
  With ``HF_HUB_OFFLINE=1`` the probe is skipped and only the local Hub cache is used.
- A missing ``price`` in a plain ``float64`` column is indistinguishable from NaN, so there it
  counts as ``non_finite_price``; Arrow nulls read from files are kept apart and count as
  ``missing_price``.
- Rows with a null ``id`` are dropped as ``missing_id`` (an id can be neither int64 nor str
  otherwise); a source without an ``id`` column gets row numbers of the source split.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MAX_TEXT_CHARS = 100_000
# Why rows are dropped, in the order they are checked: a row is counted under its first reason.
DROP_REASONS = (
    "missing_text",
    "empty_text",
    "missing_price",
    "non_numeric_price",
    "non_finite_price",
    "non_positive_price",
    "missing_id",
    "duplicate_id",
)
HUB_PROBE_TIMEOUT_S = 10.0

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


class DataError(Exception):
    """The source cannot be loaded or holds unusable data; the message names the source
    (path or Hub id) and, where relevant, the split, row/line and column."""


@dataclass(frozen=True)
class FetchResult:
    splits: dict[str, pd.DataFrame]  # exactly "train", "validation", "test"; index reset
    report: dict[str, Any]  # JSON-serialisable and free of timestamps, so DVC outputs reproduce


@dataclass(frozen=True)
class ResolvedSource:
    kind: SourceKind
    location: str  # expanded path for local kinds, the dataset id for the Hub, "synthetic"
    file_format: str | None = None  # "parquet" | "json" for local_file


# --------------------------------------------------------------------------------------------
# Source resolution


def resolve_source(source: str) -> ResolvedSource:
    """Decide what kind of source ``source`` names; raises DataError for anything unusable."""
    if source == "synthetic":
        return ResolvedSource("synthetic", source)
    path = Path(source).expanduser()
    if source and path.exists():
        return _resolve_local_path(source, path.resolve())
    if source.startswith((".", "/", "~")) or path.suffix.lower() in PATH_LIKE_SUFFIXES:
        raise DataError(f"{source}: no such file or directory")
    if HUB_ID.match(source) and ".." not in source:
        return ResolvedSource("hub", source)
    raise DataError(f"{source!r}: not a known data source; expected {ACCEPTED_KINDS}")


def _resolve_local_path(source: str, path: Path) -> ResolvedSource:
    if path.is_file():
        file_format = FILE_FORMATS.get(path.suffix.lower())
        if file_format is None:
            raise DataError(f"{source}: unsupported file type {path.suffix!r}; expected one of {sorted(FILE_FORMATS)}")
        return ResolvedSource("local_file", str(path), file_format)
    if path.is_dir():
        if _is_saved_dataset(path):
            return ResolvedSource("saved_dataset", str(path))
        if _parquet_files(path):
            return ResolvedSource("hub_layout_dir", str(path))
        raise DataError(
            f"{source}: directory has no parquet files and is not a datasets.save_to_disk directory "
            "(expected data/train-*.parquet ... or dataset_dict.json / state.json)"
        )
    raise DataError(f"{source}: neither a regular file nor a directory")


def _is_saved_dataset(directory: Path) -> bool:
    # The marker files datasets.save_to_disk writes for a DatasetDict / a single Dataset.
    return (directory / "dataset_dict.json").is_file() or (directory / "state.json").is_file()


def _parquet_files(directory: Path) -> list[Path]:
    # Hidden folders are skipped: `hf download --local-dir` keeps its bookkeeping in .cache/.
    return sorted(
        p
        for p in directory.rglob("*.parquet")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


# --------------------------------------------------------------------------------------------
# Loading: every kind returns {source split name: raw frame}


def _load_synthetic(n_items: int, seed: int) -> dict[str, pd.DataFrame]:
    # Imported here so this module works (and its tests run) without the catalogue module.
    try:
        catalogue = importlib.import_module("pricer.catalogue")
    except ImportError as error:
        raise DataError(f"synthetic: the catalogue generator is not available ({error})") from error
    return {"train": catalogue.generate_catalogue(n_items, seed)}


def _load_local_file(source: str, path: Path, file_format: str) -> dict[str, pd.DataFrame]:
    if file_format == "parquet":
        return _load_parquet_files(source, {"train": [path]})
    _check_json_text(source, path)
    return _load_data_files(source, file_format, {"train": [path]})


def _load_hub_layout_dir(source: str, directory: Path) -> dict[str, pd.DataFrame]:
    data_files = _hub_layout_data_files(directory)
    logger.info(
        "%s: parquet files per split: %s",
        source,
        {split: [str(p.relative_to(directory)) for p in files] for split, files in data_files.items()},
    )
    return _load_parquet_files(source, data_files)


def _hub_layout_data_files(directory: Path) -> dict[str, list[Path]]:
    """Split name -> parquet files, named the way the Hub names them (datasets' own inference:
    data/train-00000-of-00001.parquet, train.parquet, dev.parquet -> validation, ...)."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    patterns = get_data_patterns(str(directory))
    resolved = DataFilesDict.from_patterns(patterns, base_path=str(directory), allowed_extensions=[".parquet"])
    data_files = {str(split): sorted(Path(f) for f in files) for split, files in resolved.items() if files}
    # Split names may match only non-parquet files (train.csv next to items.parquet): then the
    # parquet files form one split, like a single file.
    return data_files or {"train": _parquet_files(directory)}


def _load_data_files(source: str, file_format: str, data_files: Mapping[str, list[Path]]) -> dict[str, pd.DataFrame]:
    """The one loader for local parquet/JSON files, single files and directories alike."""
    import datasets

    try:
        loaded = datasets.load_dataset(
            file_format, data_files={split: [str(p) for p in files] for split, files in data_files.items()}
        )
    except Exception as error:  # datasets wraps parser errors in several types; all mean "unreadable"
        raise _unreadable_files_error(source, file_format, data_files, error) from error
    return {str(split): _to_frame(source, str(split), dataset) for split, dataset in loaded.items()}


def _load_saved_dataset(source: str, directory: Path) -> dict[str, pd.DataFrame]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(directory))
    except Exception as error:
        raise DataError(f"{source}: not a readable datasets.save_to_disk directory: {_describe(error)}") from error
    if isinstance(loaded, datasets.Dataset):
        return {"train": _to_frame(source, "train", loaded)}
    return {str(split): _to_frame(source, str(split), dataset) for split, dataset in loaded.items()}


def _load_hub(dataset_id: str, revision: str | None) -> tuple[dict[str, pd.DataFrame], str | None]:
    import datasets

    commit = _resolve_hub_commit(dataset_id, revision)
    if datasets.config.HF_HUB_OFFLINE:
        snapshot = _cached_hub_snapshot(dataset_id, revision)
        if snapshot is not None:
            logger.info("%s: HF_HUB_OFFLINE is set; reading the cached snapshot %s", dataset_id, snapshot)
            return _load_hub_layout_dir(dataset_id, snapshot), snapshot.name
    try:
        # Pinned to the commit the probe saw, so the report's sha is the data's sha.
        loaded = datasets.load_dataset(dataset_id, revision=commit or revision)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise DataError(f"{dataset_id}: no such Hub dataset or revision {revision!r}: {error}") from error
    except ConnectionError as error:
        raise DataError(_hub_unreachable_message(dataset_id, revision, error)) from error
    except Exception as error:
        raise DataError(f"{dataset_id}: could not load the Hub dataset: {_describe(error)}") from error
    if isinstance(loaded, datasets.Dataset):
        return {"train": _to_frame(dataset_id, "train", loaded)}, commit
    return {str(split): _to_frame(dataset_id, str(split), ds) for split, ds in loaded.items()}, commit


def _cached_hub_snapshot(dataset_id: str, revision: str | None) -> Path | None:
    """The Hub cache's snapshot folder of ``revision`` (None = main) when it holds parquet files.

    ``datasets`` 5.2 in offline mode only looks in its own Arrow cache (filled by an earlier online
    ``load_dataset``); the Hub cache that ``hf download`` and ``load_dataset`` itself fill
    (``$HF_HOME/hub/datasets--owner--name/snapshots/<sha>/``) is ignored, so a dataset
    downloaded there could not be used offline. We read that snapshot as a Hub-layout
    directory; its folder name is the commit sha, so the report keeps the resolved revision.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(dataset_id, repo_type="dataset", revision=revision, local_files_only=True)
    except LocalEntryNotFoundError as error:
        if type(error).__name__ == "IncompleteSnapshotError":  # huggingface_hub >= 1.x: a partial download
            raise DataError(f"{dataset_id}: {error}") from error
        return None
    snapshot = Path(folder)
    return snapshot if _parquet_files(snapshot) else None


def _resolve_hub_commit(dataset_id: str, revision: str | None) -> str | None:
    """The commit sha of ``revision`` (None = main); None when offline. One bounded API call."""
    import datasets
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if datasets.config.HF_HUB_OFFLINE:
        logger.info("%s: HF_HUB_OFFLINE is set; using the local Hub cache, commit sha not resolved", dataset_id)
        return None
    try:
        # dataset_info makes a single request (no retry loop), so the timeout bounds the wait.
        info = HfApi().dataset_info(dataset_id, revision=revision, timeout=HUB_PROBE_TIMEOUT_S)
    except RevisionNotFoundError as error:
        raise DataError(f"{dataset_id}: the Hub dataset has no revision {revision!r}") from error
    except RepositoryNotFoundError as error:
        raise DataError(
            f"{dataset_id}: no such Hub dataset (or it is private/gated and no token grants access)"
        ) from error
    except HfHubHTTPError as error:
        raise DataError(f"{dataset_id}: the Hub refused the request: {_describe(error)}") from error
    except Exception as error:  # network failures arrive as several client-library types
        raise DataError(_hub_unreachable_message(dataset_id, revision, error)) from error
    logger.info("%s: revision %s is commit %s", dataset_id, revision or "main", info.sha)
    return info.sha


def _hub_unreachable_message(dataset_id: str, revision: str | None, error: BaseException) -> str:
    import datasets

    local_dir = dataset_id.split("/")[-1]
    pin = f" --revision {revision}" if revision else ""
    why = (
        "HF_HUB_OFFLINE is set and the dataset is not in the local Hub cache"
        if datasets.config.HF_HUB_OFFLINE
        else f"could not reach the Hugging Face Hub: {_describe(error)}"
    )
    cached = None
    if not datasets.config.HF_HUB_OFFLINE:
        try:
            cached = _cached_hub_snapshot(dataset_id, revision)
        except DataError:
            pass
    if cached is not None:
        why += f". This revision is in the local Hub cache ({cached}): rerun with HF_HUB_OFFLINE=1 to use it"
    return (
        f"{dataset_id}: {why}. To use a local copy instead, on a machine with network run\n"
        f"    hf download {dataset_id} --repo-type dataset{pin} --local-dir {local_dir}\n"
        f"(`huggingface-cli download` with older huggingface_hub), copy the {local_dir}/ folder "
        f"next to params.yaml, then run\n"
        f"    dvc exp run -S data.source={local_dir}"
    )


def _to_frame(source: str, split: str, dataset: datasets.Dataset) -> pd.DataFrame:
    _check_utf8(source, split, dataset)
    try:
        frame = dataset.to_pandas()
    except Exception as error:
        raise DataError(f"{source}: split '{split}' cannot be converted to a table: {_describe(error)}") from error
    if "price" in dataset.column_names:
        frame["price"] = _price_keeping_nulls(dataset, frame["price"])
    return frame


def _check_utf8(source: str, split: str, dataset: datasets.Dataset) -> None:
    """Every text column must be valid UTF-8: a parquet writer that skipped validation lets
    invalid bytes through, which pandas only trips over when a value is read (mid-vectorize)."""
    import pyarrow as pa

    table = dataset.with_format("arrow")
    for name in dataset.column_names:
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
                        f"{source}: split '{split}' row {row}, column '{name}': invalid UTF-8 "
                        f"({error.reason} at byte {error.start}); re-encode the text as UTF-8"
                    ) from None
            raise


def _price_keeping_nulls(dataset: datasets.Dataset, converted: pd.Series) -> pd.Series:
    # to_pandas turns Arrow nulls in a float column into NaN; an Arrow-backed column keeps
    # null (missing_price) apart from a stored NaN (non_finite_price).
    import pyarrow as pa

    column = dataset.with_format("arrow")["price"]
    if pa.types.is_floating(column.type) and column.null_count > 0:
        return pd.Series(pd.arrays.ArrowExtensionArray(column), index=converted.index, name="price")
    return converted


# --------------------------------------------------------------------------------------------
# Corrupt input diagnosis


def _load_parquet_files(source: str, data_files: Mapping[str, list[Path]]) -> dict[str, pd.DataFrame]:
    """Parquet files checked one by one (so errors name the file), then loaded through datasets.

    datasets 5.2 fails on a 0-row parquet file ("BatchSize must be greater than 0"), so such
    files are left out, and a split made only of them becomes an empty frame: the split rules
    then decide whether it matters (an empty test split does, an ignored extra split does not).
    """
    import pyarrow.parquet as pq

    with_rows: dict[str, list[Path]] = {}
    empty: dict[str, Path] = {}
    for split, files in data_files.items():
        kept = [path for path in files if _parquet_row_count(source, path) > 0]
        if not kept:
            empty[split] = files[0]
            continue
        if len(kept) < len(files):
            logger.info("%s: split '%s': skipping %d parquet files with 0 rows", source, split, len(files) - len(kept))
        with_rows[split] = kept
    frames = _load_data_files(source, "parquet", with_rows) if with_rows else {}
    for split, path in empty.items():
        frames[split] = pq.read_schema(path).empty_table().to_pandas()
    return frames


def _parquet_row_count(source: str, path: Path) -> int:
    # Reads only the footer; datasets reports these failures without the file name.
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError(f"{source}: {path} is an empty file")
    try:
        return pq.read_metadata(path).num_rows
    except Exception as error:
        raise DataError(
            f"{source}: {path} is not a readable parquet file (truncated or corrupt?): {_describe(error)}"
        ) from error


def _check_json_text(source: str, path: Path) -> None:
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


def _unreadable_files_error(
    source: str, file_format: str, data_files: Mapping[str, list[Path]], error: Exception
) -> DataError:
    files = [path for split_files in data_files.values() for path in split_files]
    culprit = _first_broken_file(files, file_format)
    if culprit is None:
        named = str(files[0]) if len(files) == 1 else f"one of {len(files)} {file_format} files"
        return DataError(f"{source}: could not read {named}: {_describe(error)}")
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
        return f"corrupt parquet data: {_describe(error)}"
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


def _describe(error: BaseException) -> str:
    # datasets often wraps the informative error (DatasetGenerationError -> ArrowInvalid).
    cause = error.__cause__ or error
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


# --------------------------------------------------------------------------------------------
# Splitting


def _arrange_splits(
    source_splits: Mapping[str, pd.DataFrame],
    *,
    source: str,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
) -> tuple[dict[str, pd.DataFrame], str]:
    """Exactly train/validation/test from whatever splits the source has, and how they were made."""
    names = set(source_splits)
    used: tuple[str, ...]
    if names >= set(SPLITS):
        used, strategy = SPLITS, "as_given"
    elif len(names) == 1 or names & set(SPLITS) == {"train"}:
        used, strategy = ("train" if "train" in names else next(iter(names)),), "shuffled_single_split"
    elif "train" not in names:
        raise DataError(f"{source}: no 'train' split (the source has {sorted(names)})")
    elif "test" in names:
        used, strategy = ("train", "test"), "validation_from_train"
    else:
        used, strategy = ("train", "validation"), "test_from_train"
    _log_ignored_splits(source, names - set(used))
    for name in used:
        if source_splits[name].empty:
            raise DataError(f"{source}: split '{name}' is empty in the source")

    if strategy == "as_given":
        return {split: source_splits[split] for split in SPLITS}, strategy
    if strategy == "shuffled_single_split":
        only = used[0]
        return _shuffle_split(source, only, source_splits[only], seed, validation_fraction, test_fraction), strategy
    if strategy == "validation_from_train":
        train, validation = _carve(source, source_splits["train"], validation_fraction, seed, "validation")
        return {"train": train, "validation": validation, "test": source_splits["test"]}, strategy
    train, test = _carve(source, source_splits["train"], test_fraction, seed, "test")
    return {"train": train, "validation": source_splits["validation"], "test": test}, strategy


def _log_ignored_splits(source: str, ignored: set[str]) -> None:
    if ignored:
        logger.info("%s: ignoring source splits %s", source, sorted(ignored))


def _portion(n_rows: int, fraction: float) -> int:
    # Rounded half up, and at least one row so no split is empty by construction.
    return max(1, math.floor(n_rows * fraction + 0.5))


def _shuffle_split(
    source: str, name: str, frame: pd.DataFrame, seed: int, validation_fraction: float, test_fraction: float
) -> dict[str, pd.DataFrame]:
    n_rows = len(frame)
    n_validation, n_test = _portion(n_rows, validation_fraction), _portion(n_rows, test_fraction)
    n_train = n_rows - n_validation - n_test
    if n_train < 1:
        raise DataError(f"{source}: split '{name}' has {n_rows} rows, too few to split into train/validation/test")
    # Shuffled order on purpose: files are often sorted (by category, by source), and later
    # stages read "the first N" rows of a split.
    order = np.random.default_rng(seed).permutation(n_rows)
    parts = {
        "train": order[:n_train],
        "validation": order[n_train : n_train + n_validation],
        "test": order[n_train + n_validation :],
    }
    sizes = {split: len(rows) for split, rows in parts.items()}
    logger.info("%s: one split of %d rows, shuffled with seed %d into %s", source, n_rows, seed, sizes)
    return {split: frame.iloc[rows].reset_index(drop=True) for split, rows in parts.items()}


def _carve(
    source: str, train: pd.DataFrame, fraction: float, seed: int, carved: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move a seeded random ``fraction`` of train into ``carved``; both keep the source order."""
    n_rows = len(train)
    n_carved = _portion(n_rows, fraction)
    if n_rows - n_carved < 1:
        raise DataError(f"{source}: split 'train' has {n_rows} rows, too few to carve a {carved} split from")
    taken = np.zeros(n_rows, dtype=bool)
    taken[np.random.default_rng(seed).permutation(n_rows)[:n_carved]] = True
    logger.info("%s: no %s split; took %d of %d train rows (seed %d)", source, carved, n_carved, n_rows, seed)
    return train[~taken].reset_index(drop=True), train[taken].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Validation


def validate_split(
    df: pd.DataFrame, *, split: str, text_field: str, source: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep the usable rows of one split and count the others.

    Returns the cleaned frame (index reset; ``price`` float64, ``text_field`` str, ``id`` int64
    or str, ids added from row numbers when absent) and counts: one entry per reason in
    :data:`DROP_REASONS` (a row counts under its first reason; ``duplicate_id`` keeps the first
    otherwise-valid row of each id) plus ``truncated_text``, rows kept with their text cut to
    :data:`MAX_TEXT_CHARS` characters. Raises DataError naming source, split and column.
    """
    where = f"{source}: split '{split}'"
    for column in ("price", text_field):
        if column not in df.columns:
            raise DataError(f"{where}: missing required column '{column}' (columns: {list(df.columns)})")
    if df.empty:
        raise DataError(f"{where}: no rows")
    _require_text_column(df[text_field], where, text_field)
    frame = _with_row_ids(df.reset_index(drop=True), where)

    text = frame[text_field].astype("str")
    prices, price_problems = _classify_prices(frame["price"], where)
    candidates = {
        "missing_text": text.isna().to_numpy(),
        "empty_text": text.str.strip().eq("").to_numpy(dtype=bool, na_value=False),
        **price_problems,
        "missing_id": frame["id"].isna().to_numpy(),
    }
    dropped = np.zeros(len(frame), dtype=bool)
    counts: dict[str, int] = {}
    for reason, mask in candidates.items():
        hit = mask & ~dropped
        counts[reason] = int(hit.sum())
        dropped |= hit
    # Duplicates are judged among otherwise-valid rows, so an invalid first copy doesn't cost a good one.
    kept_positions = np.flatnonzero(~dropped)
    duplicate_positions = kept_positions[frame["id"].iloc[kept_positions].duplicated(keep="first").to_numpy()]
    counts["duplicate_id"] = len(duplicate_positions)
    dropped[duplicate_positions] = True

    keep = ~dropped
    if not keep.any():
        raise DataError(f"{where}: no rows left after validation (dropped: {_nonzero(counts)})")
    cleaned = frame[keep].reset_index(drop=True)
    cleaned["price"] = prices[keep]
    cleaned[text_field], counts["truncated_text"] = _truncate(text[keep].reset_index(drop=True))
    cleaned["id"] = _normalised_ids(cleaned["id"], where)
    _log_validation(where, len(frame), len(cleaned), counts)
    return cleaned, counts


def _require_text_column(column: pd.Series, where: str, name: str) -> None:
    if pd.api.types.is_string_dtype(column):
        return
    # pandas 3 never calls an object column "string", even when it holds only str (or only nulls).
    if column.dtype == object and all(isinstance(value, str) for value in column.dropna()):
        return
    raise DataError(f"{where}: column '{name}' must hold text, but has dtype {column.dtype}")


def _with_row_ids(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    if "id" in frame.columns:
        return frame
    logger.info("%s: no 'id' column; using row numbers as ids", where)
    return frame.assign(id=np.arange(len(frame), dtype=np.int64))


def _classify_prices(raw: pd.Series, where: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Prices as float64 and, per price-related drop reason, which rows it applies to."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise DataError(f"{where}: column 'price' must hold numbers, but has dtype {raw.dtype}")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        # Only extension dtypes (Arrow, nullable) can tell a null from a stored NaN.
        is_extension = isinstance(raw.dtype, pd.api.extensions.ExtensionDtype)
        missing = raw.isna().to_numpy() if is_extension else np.zeros(len(raw), dtype=bool)
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        non_numeric = np.zeros(len(raw), dtype=bool)
    elif pd.api.types.is_string_dtype(raw.dtype) or raw.dtype == object:
        missing = raw.isna().to_numpy()
        text = raw.astype("str").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        spelled_nan = text.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy(dtype=bool, na_value=False)
        non_numeric = ~missing & np.isnan(values) & ~spelled_nan  # e.g. "$12.99"
    else:
        raise DataError(f"{where}: column 'price' must hold numbers, but has dtype {raw.dtype}")
    with np.errstate(invalid="ignore"):
        non_finite = ~np.isfinite(values)
        non_positive = values <= 0
    return values, {
        "missing_price": missing,
        "non_numeric_price": non_numeric,
        "non_finite_price": non_finite,
        "non_positive_price": non_positive,
    }


def _truncate(text: pd.Series) -> tuple[pd.Series, int]:
    too_long = text.str.len().gt(MAX_TEXT_CHARS).to_numpy(dtype=bool, na_value=False)
    if too_long.any():
        text = text.copy()
        text[too_long] = text[too_long].str.slice(0, MAX_TEXT_CHARS)
    return text, int(too_long.sum())


def _normalised_ids(ids: pd.Series, where: str) -> pd.Series:
    """int64 for integer ids (also floats that only became floats through nulls), str for text ids."""
    kind = pd.api.types.infer_dtype(ids, skipna=True)
    if kind == "integer":
        return ids.astype("int64")
    if kind in ("floating", "mixed-integer-float"):
        values = ids.to_numpy(dtype="float64", na_value=np.nan)
        if np.all(np.isfinite(values) & (values == np.round(values))):
            return pd.Series(values.astype(np.int64), index=ids.index, name=ids.name)
    if kind == "string":
        return ids.astype("str")
    raise DataError(f"{where}: column 'id' must hold integers or strings, but has dtype {ids.dtype}")


def _nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {reason: count for reason, count in counts.items() if count}


def _log_validation(where: str, rows_in: int, rows_out: int, counts: Mapping[str, int]) -> None:
    dropped = {reason: counts[reason] for reason in DROP_REASONS if counts[reason]}
    reasons = ", ".join(f"{reason}={count}" for reason, count in dropped.items()) or "none"
    logger.info(
        "%s: kept %d of %d rows; dropped %d (%s); truncated %d texts to %d characters",
        where, rows_out, rows_in, sum(dropped.values()), reasons, counts["truncated_text"], MAX_TEXT_CHARS,
    )


# --------------------------------------------------------------------------------------------
# The stage's entry point


def fetch_splits(
    source: str,
    *,
    text_field: str = "summary",
    revision: str | None = None,
    seed: int = 42,
    synthetic_items: int = 60000,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_train_items: int | None = None,
) -> FetchResult:
    """Load ``source``, arrange train/validation/test, validate each split, report what happened.

    Split rules: a source with train/validation/test keeps them; train+test carves validation
    out of train (``validation_fraction``); train+validation carves test (``test_fraction``);
    a single split is shuffled with ``seed`` and cut by both fractions (same seed, same split).
    ``max_train_items`` then keeps the first N validated train rows. Raises DataError.
    """
    _check_arguments(validation_fraction, test_fraction, synthetic_items, max_train_items)
    resolved = resolve_source(source)
    source_splits, commit = _load(resolved, source, revision, synthetic_items, seed)
    source_splits = {name: _with_row_ids(frame, f"{source}: split '{name}'") for name, frame in source_splits.items()}
    arranged, strategy = _arrange_splits(
        source_splits, source=source, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
    )

    splits: dict[str, pd.DataFrame] = {}
    split_reports: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        cleaned, counts = validate_split(arranged[split], split=split, text_field=text_field, source=source)
        split_reports[split] = {
            "rows_in": len(arranged[split]),
            "rows_out": len(cleaned),
            "dropped": {reason: counts[reason] for reason in DROP_REASONS},
            "truncated_text": counts["truncated_text"],
        }
        splits[split] = cleaned
    splits["train"], split_reports["train"]["capped"] = _cap_train(source, splits["train"], max_train_items)
    split_reports["train"]["rows_out"] = len(splits["train"])

    report = {
        "source": source,
        "kind": resolved.kind,
        "revision": revision,
        "resolved_revision": commit,
        "text_field": text_field,
        "split_strategy": strategy,
        "source_splits": {name: len(frame) for name, frame in sorted(source_splits.items())},
        "seed": seed,
        "max_train_items": max_train_items,
        "splits": split_reports,
    }
    return FetchResult(splits=splits, report=report)


def _check_arguments(
    validation_fraction: float, test_fraction: float, synthetic_items: int, max_train_items: int | None
) -> None:
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise ValueError(f"{name} must be in (0, 1), got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction + test_fraction must be < 1")
    if synthetic_items < 1:
        raise ValueError(f"synthetic_items must be >= 1, got {synthetic_items}")
    if max_train_items is not None and max_train_items < 1:
        raise ValueError(f"max_train_items must be None or >= 1, got {max_train_items}")


def _load(
    resolved: ResolvedSource, source: str, revision: str | None, synthetic_items: int, seed: int
) -> tuple[dict[str, pd.DataFrame], str | None]:
    if revision is not None and resolved.kind != "hub":
        logger.warning("%s: revision %r ignored; only Hub datasets have revisions", source, revision)
    if resolved.kind == "synthetic":
        return _load_synthetic(synthetic_items, seed), None
    if resolved.kind == "local_file":
        assert resolved.file_format is not None
        return _load_local_file(source, Path(resolved.location), resolved.file_format), None
    if resolved.kind == "hub_layout_dir":
        return _load_hub_layout_dir(source, Path(resolved.location)), None
    if resolved.kind == "saved_dataset":
        return _load_saved_dataset(source, Path(resolved.location)), None
    return _load_hub(resolved.location, revision)


def _cap_train(source: str, train: pd.DataFrame, max_train_items: int | None) -> tuple[pd.DataFrame, int]:
    if max_train_items is None or len(train) <= max_train_items:
        return train, 0
    logger.info(
        "%s: max_train_items=%d keeps the first %d of %d train rows",
        source, max_train_items, max_train_items, len(train),
    )
    return train.head(max_train_items).reset_index(drop=True), len(train) - max_train_items
