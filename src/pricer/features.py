"""Text → sparse features with a stateless HashingVectorizer.

Hashing needs no fitted vocabulary, so the same settings give the same columns for every split
and for new text at prediction time; the settings are all a saved model needs to carry.
Texts are hashed in chunks (memory follows the non-zeros, never rows × features), and chunks
can be hashed in parallel processes because the transform is a pure function of the text.
"""

from __future__ import annotations

import contextlib
import json
import math
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from joblib import Parallel, delayed

from pricer import layout
from pricer.atomic import atomic_directory, atomic_path
from pricer.digests import file_md5
from pricer.engine import ordered_map
from pricer.layout import ArtifactError

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer


@dataclass(frozen=True)
class VectorizerSettings:
    """Everything that decides the feature columns; saved with every model."""

    n_features: int = 5000
    stop_words: str | None = "english"
    binary: bool = True
    norm: str | None = "l2"
    text_field: str = "summary"

    def build(self) -> HashingVectorizer:
        # scikit-learn's import takes seconds: the stages that never hash text (train, ensemble) skip it
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            n_features=self.n_features,
            stop_words=self.stop_words,
            binary=self.binary,
            norm=self.norm,
            dtype=np.float32,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_params(cls, vectorize: Mapping[str, Any]) -> VectorizerSettings:
        """The settings among params.yaml's ``vectorize`` section (which also holds how to run)."""
        return cls(**{setting.name: vectorize[setting.name] for setting in fields(cls)})


def _hash_chunk(texts: Sequence[str], settings: VectorizerSettings) -> sp.csr_matrix:
    matrix = settings.build().transform(texts)
    matrix.sort_indices()
    return matrix.tocsr()


def vectorize_texts(
    texts: Sequence[str],
    settings: VectorizerSettings,
    *,
    chunk_rows: int = 20000,
    n_jobs: int = 1,
) -> sp.csr_matrix:
    """Hash ``texts`` into a float32 CSR matrix of shape (len(texts), n_features).

    The result is identical for any ``chunk_rows`` and ``n_jobs``.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    texts = list(texts)
    if not texts:
        return sp.csr_matrix((0, settings.n_features), dtype=np.float32)
    if n_jobs == 1 or len(texts) <= chunk_rows:
        chunks = _chunks(texts, chunk_rows, n_jobs=1)
        parts = [_hash_chunk(chunk, settings) for chunk in chunks]
    else:
        chunks = _chunks(texts, chunk_rows, n_jobs)
        parts = Parallel(n_jobs=n_jobs)(delayed(_hash_chunk)(chunk, settings) for chunk in chunks)
    return sp.vstack(parts, format="csr", dtype=np.float32)


def vectorize_column(
    texts: Sequence[str],
    settings: VectorizerSettings,
    *,
    chunk_rows: int = 20000,
    n_jobs: int = 1,
    progress_label: str | None = None,
) -> sp.csr_matrix:
    """``vectorize_texts`` in rounds of ``n_jobs`` chunks, with a progress bar when labelled.

    Hashing is a pure function of each row, so stacking the rounds gives exactly the one-call
    result; a round is one step of the bar.
    """
    from tqdm import tqdm

    step_rows = chunk_rows * max(n_jobs, 1)
    parts = []
    with tqdm(total=len(texts), desc=progress_label, unit="row", disable=progress_label is None, leave=False) as bar:
        for start in range(0, max(len(texts), 1), step_rows):
            block = texts[start : start + step_rows]
            parts.append(vectorize_texts(block, settings, chunk_rows=chunk_rows, n_jobs=n_jobs))
            bar.update(len(block))
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr", dtype=parts[0].dtype)


def _chunks(texts: list[str], chunk_rows: int, n_jobs: int) -> list[list[str]]:
    """Equal chunks of at most ``chunk_rows`` texts, as many as a multiple of ``n_jobs``.

    Equal shares keep every worker busy to the end: 100,000 texts in 20,000-row chunks would
    be 5 chunks, 3 for one worker and 2 for the other; 6 chunks of 16,667 split 3 and 3.
    """
    count = math.ceil(len(texts) / chunk_rows)
    count = math.ceil(count / n_jobs) * n_jobs
    size = math.ceil(len(texts) / count)
    return [texts[start : start + size] for start in range(0, len(texts), size)]


MANIFEST = "manifest.json"
PARTS_FORMAT = "pricer-csr-parts/1"
INT32_NNZ_LIMIT = 2**31  # from this many non-zeros on, a matrix's indices are int64


def feature_files(directory: Path, split: str) -> tuple[Path, Path]:
    """A split's matrix (a directory of CSR parts and their manifest) and its (id, price) labels."""
    return directory / split, directory / f"{split}.parquet"


def feature_md5s(directory: Path, splits: Sequence[str]) -> dict[str, str]:
    """``{path: md5}`` of each split's matrix and labels: what a stage read, as run inputs and in a
    checkpoint's identity. A matrix is a directory of parts whose manifest lists each part's md5,
    so the manifest's md5 stands for them all."""
    files = [path for split in splits for path in feature_files(directory, split)]
    return {str(path): file_md5(path / MANIFEST if path.is_dir() else path) for path in files}


class FeatureWriter:
    """Writes a split one part at a time: ``<split>/part-NNNNN.npz`` (uncompressed CSR) with
    ``<split>/manifest.json``, and ``<split>.parquet`` (id, price; one row group per part).

    Memory follows one part. Both outputs appear only when :meth:`close` succeeds (each is
    written beside its destination and renamed into place); :meth:`abort` leaves the old ones.
    """

    def __init__(self, directory: Path, split: str, n_features: int) -> None:
        self.matrix_path, self.labels_path = feature_files(Path(directory), split)
        self.n_features = n_features
        self._stack = contextlib.ExitStack()
        self._parts_dir = self._stack.enter_context(atomic_directory(self.matrix_path))
        self._labels_tmp = self._stack.enter_context(atomic_path(self.labels_path))
        self._labels: pq.ParquetWriter | None = None
        self._parts: list[dict[str, Any]] = []
        self._closed = False

    def add(self, matrix: sp.csr_matrix, labels: pd.DataFrame) -> None:
        if matrix.shape != (len(labels), self.n_features):
            raise ValueError(f"a part of shape {matrix.shape} with {len(labels)} labels ({self.n_features} features)")
        name = f"part-{len(self._parts):05d}.npz"
        sp.save_npz(self._parts_dir / name, matrix.tocsr(), compressed=False)
        table = pa.Table.from_pandas(labels[["id", "price"]], preserve_index=False)
        if self._labels is None:
            self._labels = pq.ParquetWriter(self._labels_tmp, table.schema)
        self._labels.write_table(table, row_group_size=max(len(labels), 1))
        self._parts.append({"file": name, "rows": int(matrix.shape[0]), "nnz": int(matrix.nnz),
                            "md5": file_md5(self._parts_dir / name)})

    def close(self) -> dict[str, Any]:
        """Finish both outputs and return the manifest."""
        if self._labels is None:  # a split of no rows still gets its (empty) labels file
            self._labels = pq.ParquetWriter(self._labels_tmp, pa.schema([("id", pa.int64()), ("price", pa.float64())]))
        self._labels.close()
        manifest = {"format": PARTS_FORMAT, "n_features": self.n_features,
                    "rows": sum(part["rows"] for part in self._parts),
                    "nnz": sum(part["nnz"] for part in self._parts), "parts": self._parts}
        (self._parts_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        self._closed = True
        self._stack.close()
        return manifest

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if self._closed:
            return
        # Not closed (an error, or nothing to finish): the temporaries go, the old outputs stay.
        if self._labels is not None:
            self._labels.close()
        failure = error or RuntimeError("FeatureWriter left without close()")
        with contextlib.suppress(RuntimeError):
            self._stack.__exit__(type(failure), failure, failure.__traceback__)


def save_features(directory: Path, split: str, matrix: sp.csr_matrix, labels: pd.DataFrame,
                  *, part_rows: int | None = None) -> dict[str, Any]:
    """A whole split's matrix and labels, in parts of ``part_rows`` rows (one part by default)."""
    matrix = matrix.tocsr()
    step = max(part_rows or matrix.shape[0], 1)
    with FeatureWriter(directory, split, matrix.shape[1]) as writer:
        for start in range(0, matrix.shape[0], step):
            writer.add(matrix[start : start + step], labels.iloc[start : start + step])
        return writer.close()


def read_manifest(directory: Path, split: str) -> dict[str, Any]:
    """A split's manifest, checked: the parts it lists, their rows and non-zeros."""
    matrix_path = feature_files(Path(directory), split)[0]
    path = matrix_path / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{matrix_path}: missing (no {MANIFEST}); run `dvc repro vectorize`") from None
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path}: not a readable manifest ({error}); rerun `dvc repro -f vectorize`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PARTS_FORMAT:
        raise ArtifactError(f"{path}: not a {PARTS_FORMAT} manifest; rerun `dvc repro -f vectorize`")
    return manifest


def load_features(directory: Path, split: str) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """The hashed matrix of a split and its (id, price) labels, checked against each other."""
    manifest = read_manifest(directory, split)
    return load_feature_rows(directory, split, 0, int(manifest["rows"]))


def load_feature_rows(directory: Path, split: str, start: int, stop: int) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Rows ``[start, stop)`` of a split's matrix and labels, reading only the parts that hold them.

    Indices are int32 unless the parts holding the rows have 2^31 non-zeros or more, then int64.
    """
    directory = Path(directory)
    manifest = read_manifest(directory, split)
    matrix_path, labels_path = feature_files(directory, split)
    total = int(manifest["rows"])
    if not 0 <= start <= stop <= total:
        raise ValueError(f"{matrix_path}: rows [{start}, {stop}) outside its {total} rows")
    selected, label_groups = [], []
    first = 0
    for group, part in enumerate(manifest["parts"]):
        last = first + int(part["rows"])
        if last > start and first < stop:
            selected.append((matrix_path / part["file"], part, max(start - first, 0), stop - first))
            label_groups.append((group, max(start - first, 0), min(stop, last) - first))
        first = last
    labels = _read_label_groups(labels_path, label_groups, len(manifest["parts"]))
    # each part is read as the stacking reaches it and dropped once copied: the rows are in memory
    # once (plus one part), not as all the parts and then their stacked copy
    pieces = (_read_part(path, part, manifest)[begin:end] for path, part, begin, end in selected)
    matrix = _stack_rows(pieces, int(manifest["n_features"]), rows=stop - start,
                         nnz_bound=sum(int(part["nnz"]) for _, part, _, _ in selected))
    if matrix.shape[0] != len(labels) or matrix.shape[0] != stop - start:
        raise ArtifactError(f"{matrix_path} has {matrix.shape[0]} rows but {labels_path} has {len(labels)}")
    return matrix, labels


def _read_part(path: Path, part: dict[str, Any], manifest: dict[str, Any]) -> sp.csr_matrix:
    try:
        matrix = sp.load_npz(path).tocsr()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; rerun `dvc repro -f vectorize`") from None
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ArtifactError(f"{path}: not a readable sparse matrix ({error}); rerun `dvc repro -f vectorize`") from None
    if matrix.shape != (part["rows"], manifest["n_features"]) or matrix.nnz != part["nnz"]:
        raise ArtifactError(f"{path}: shape {matrix.shape} with {matrix.nnz} non-zeros, but the manifest says "
                            f"{(part['rows'], manifest['n_features'])} with {part['nnz']}; "
                            "rerun `dvc repro -f vectorize`")
    return matrix


def _read_label_groups(path: Path, groups: list[tuple[int, int, int]], expected_groups: int) -> pd.DataFrame:
    """Rows ``[begin, end)`` of each listed row group of the labels file, in order."""
    try:
        file = pq.ParquetFile(path)
        if file.metadata.num_row_groups != expected_groups:
            raise ArtifactError(f"{path} has {file.metadata.num_row_groups} row groups but its matrix has "
                                f"{expected_groups} parts; rerun `dvc repro -f vectorize`")
        tables = [file.read_row_group(group).slice(begin, end - begin) for group, begin, end in groups]
        table = pa.concat_tables(tables) if tables else file.schema_arrow.empty_table()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; run `dvc repro vectorize`") from None
    except (ValueError, OSError, pa.ArrowException) as error:
        raise ArtifactError(f"{path}: not a readable parquet file ({error})") from None
    return table.to_pandas()


def _stack_rows(pieces: Iterable[sp.csr_matrix], n_features: int, *, rows: int, nnz_bound: int) -> sp.csr_matrix:
    """One CSR matrix of the pieces' ``rows`` rows (at most ``nnz_bound`` non-zeros), built in place
    of ``sp.vstack``'s intermediate copies: each piece is copied into arrays allocated once and
    let go before the next is taken, so an iterator of pieces read one by one never has them all
    in memory at once. Indices are int64 when ``nnz_bound`` reaches 2^31, else int32."""
    iterator = iter(pieces)
    first = next(iterator, None)
    if first is None:
        return sp.csr_matrix((0, n_features), dtype=np.float32)
    second = next(iterator, None)
    if second is None:
        return first
    index_dtype = np.int64 if nnz_bound >= INT32_NNZ_LIMIT else np.int32
    data = np.empty(nnz_bound, dtype=first.data.dtype)
    indices = np.empty(nnz_bound, dtype=index_dtype)
    indptr = np.zeros(rows + 1, dtype=index_dtype)
    row, offset = 0, 0

    def add(piece: sp.csr_matrix) -> None:
        nonlocal row, offset
        piece_rows, begin, end = piece.shape[0], int(piece.indptr[0]), int(piece.indptr[-1])
        if row + piece_rows > rows or offset + end - begin > nnz_bound:
            raise ValueError(f"pieces of more than {rows} rows or {nnz_bound} non-zeros")
        data[offset : offset + end - begin] = piece.data[begin:end]
        indices[offset : offset + end - begin] = piece.indices[begin:end]
        indptr[row + 1 : row + piece_rows + 1] = piece.indptr[1:].astype(index_dtype) - begin + offset
        row, offset = row + piece_rows, offset + end - begin

    add(first)
    add(second)
    del first, second
    for piece in iterator:
        add(piece)
        del piece
    if row != rows:
        raise ValueError(f"pieces of {row} rows, not {rows}")
    # a share's first and last parts may be partly outside it: the bound then overshoots by less
    # than those two parts, and the arrays are views of the first ``offset`` entries
    matrix = sp.csr_matrix((data[:offset], indices[:offset], indptr), shape=(rows, n_features), copy=False)
    # scipy narrows indices that fit in int32; keep the chosen dtype (the real case does not fit).
    matrix.indices, matrix.indptr = indices[:offset], indptr
    return matrix


def load_labels(directory: Path, split: str) -> pd.DataFrame:
    """The (id, price) rows of a hashed split."""
    labels_path = feature_files(directory, split)[1]
    try:
        return pd.read_parquet(labels_path)
    except FileNotFoundError:
        raise ArtifactError(f"{labels_path}: missing; run `dvc repro vectorize`") from None
    except (ValueError, OSError) as error:
        raise ArtifactError(f"{labels_path}: not a readable parquet file ({error})") from None


def vectorize_split(raw_path: Path, directory: Path, split: str, settings: VectorizerSettings, *,
                    chunk_rows: int = 20000, n_jobs: int = 1, progress_label: str | None = None) -> dict[str, Any]:
    """Hash one raw split into ``directory`` in parts of ``chunk_rows`` rows, streaming: a few
    chunks are in memory at once, hashed on local processes or the Dask cluster
    (:mod:`pricer.engine`). The parts are the same bytes wherever they were hashed."""
    from tqdm import tqdm

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    columns = ["id", "price", settings.text_field]
    try:
        file = pq.ParquetFile(raw_path)
        rows = file.metadata.num_rows
    except FileNotFoundError:
        raise ArtifactError(f"{raw_path}: missing; run `dvc repro fetch`") from None
    except (ValueError, OSError, pa.ArrowException) as error:
        raise ArtifactError(f"{raw_path}: not a readable split ({error}); rerun `dvc repro -f fetch`") from None
    missing = [name for name in columns if name not in file.schema_arrow.names]
    if missing:
        raise ArtifactError(f"{raw_path}: no column {missing[0]!r} (columns: {file.schema_arrow.names}); "
                            "rerun `dvc repro -f fetch`")
    chunks = _exact_batches(file.iter_batches(batch_size=chunk_rows, columns=columns), chunk_rows)
    labels: deque[pd.DataFrame] = deque()
    with FeatureWriter(directory, split, settings.n_features) as writer, \
            ordered_map(n_jobs if rows > chunk_rows else 1) as run, \
            tqdm(total=rows, desc=progress_label, unit="row", disable=progress_label is None, leave=False) as bar:
        for matrix in run(_hash_work, _work_items(chunks, settings, labels)):
            writer.add(matrix, labels.popleft())
            bar.update(matrix.shape[0])
        return writer.close()


def _hash_work(item: tuple[list[str], VectorizerSettings]) -> sp.csr_matrix:
    texts, settings = item
    return _hash_chunk(texts, settings)


def _work_items(chunks: Iterator[pa.RecordBatch], settings: VectorizerSettings,
                labels: deque[pd.DataFrame]) -> Iterator[tuple[list[str], VectorizerSettings]]:
    """Each chunk's texts to hash; its labels wait in ``labels`` for its matrix, which comes back in order."""
    for batch in chunks:
        labels.append(batch.select(["id", "price"]).to_pandas())
        yield batch.column(settings.text_field).to_pylist(), settings


def _exact_batches(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``rows`` rows (the last one fewer), whatever the file's row groups."""
    buffered: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        buffered.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(buffered)
            yield table.slice(0, rows).combine_chunks().to_batches()[0]
            rest = table.slice(rows)
            buffered, count = rest.combine_chunks().to_batches() if rest.num_rows else [], rest.num_rows
    if count:
        yield pa.Table.from_batches(buffered).combine_chunks().to_batches()[0]


def read_raw_split(split: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One split as the fetch stage wrote it (``data/raw/<split>.parquet``)."""
    path = layout.raw_split(split)
    try:
        return pd.read_parquet(path, columns=list(columns) if columns else None)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; run `dvc repro fetch`") from None
    except (ValueError, OSError, KeyError) as error:
        raise ArtifactError(f"{path}: not a readable split with columns {list(columns or [])} ({error}); "
                            "rerun `dvc repro -f fetch`") from None


def prices_of(labels: pd.DataFrame) -> np.ndarray:
    return labels["price"].to_numpy(dtype=np.float64)
