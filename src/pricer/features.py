"""Text → sparse features with a stateless HashingVectorizer.

Hashing needs no fitted vocabulary, so the same settings give the same columns for every split
and for new text at prediction time; the settings are all a saved model needs to carry.
Texts are hashed in chunks (memory follows the non-zeros, never rows × features), and chunks
can be hashed in parallel processes because the transform is a pure function of the text.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import HashingVectorizer

from pricer import layout
from pricer.atomic import atomic_path
from pricer.layout import ArtifactError




@dataclass(frozen=True)
class VectorizerSettings:
    """Everything that decides the feature columns; saved with every model."""

    n_features: int = 5000
    stop_words: str | None = "english"
    binary: bool = True
    norm: str | None = "l2"
    text_field: str = "summary"

    def build(self) -> HashingVectorizer:
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


def save_features(directory: Path, split: str, matrix: sp.csr_matrix, labels: pd.DataFrame) -> None:
    """A split's hashed matrix (``<split>.npz``) and its (id, price) rows (``<split>.parquet``)."""
    with atomic_path(directory / f"{split}.npz") as tmp:
        sp.save_npz(tmp, matrix, compressed=False)
    with atomic_path(directory / f"{split}.parquet") as tmp:
        labels.to_parquet(tmp, index=False)


def feature_files(directory: Path, split: str) -> tuple[Path, Path]:
    return directory / f"{split}.npz", directory / f"{split}.parquet"


def load_features(directory: Path, split: str) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """The hashed matrix of a split and its (id, price) labels, checked against each other."""
    matrix_path, labels_path = feature_files(directory, split)
    try:
        matrix = sp.load_npz(matrix_path).tocsr()
    except FileNotFoundError:
        raise ArtifactError(f"{matrix_path}: missing; run `dvc repro vectorize`") from None
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ArtifactError(f"{matrix_path}: not a readable sparse matrix ({error}); rerun `dvc repro -f vectorize`") from None
    labels = load_labels(directory, split)
    if matrix.shape[0] != len(labels):
        raise ArtifactError(f"{matrix_path} has {matrix.shape[0]} rows but {labels_path} has {len(labels)}")
    return matrix, labels


def load_feature_rows(directory: Path, split: str, start: int, stop: int) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Rows ``[start, stop)`` of a split's hashed matrix and labels, reading only those rows.

    A data-parallel rank needs only its share: the ``indptr``, ``indices`` and ``data`` members
    of the (uncompressed) ``.npz`` are memory-mapped and just the slices of those rows copied
    out, so memory follows the rows asked for, not the file.
    """
    matrix_path, labels_path = feature_files(directory, split)
    try:
        with np.load(matrix_path) as stored:  # an NpzFile reads a member only when asked
            shape, stored_format = tuple(int(n) for n in stored["shape"]), stored["format"].item()
            stored_format = stored_format.decode() if isinstance(stored_format, bytes) else str(stored_format)
        with zipfile.ZipFile(matrix_path) as archive, open(matrix_path, "rb") as handle:
            members = {info.filename: info for info in archive.infolist()}
            if stored_format != "csr" or len(shape) != 2:
                raise ValueError(f"a {stored_format} matrix of shape {shape}, not a CSR matrix")
            rows = shape[0]
            if not 0 <= start <= stop <= rows:
                raise IndexError(f"{matrix_path}: rows [{start}, {stop}) are outside its {rows} rows")
            indptr = _stored_array(matrix_path, handle, members, "indptr.npy")
            first, last = int(indptr[start]), int(indptr[stop])
            offsets = np.asarray(indptr[start:stop + 1], dtype=indptr.dtype) - indptr.dtype.type(first)
            indices = np.array(_stored_array(matrix_path, handle, members, "indices.npy")[first:last])
            values = np.array(_stored_array(matrix_path, handle, members, "data.npy")[first:last])
    except FileNotFoundError:
        raise ArtifactError(f"{matrix_path}: missing; run `dvc repro vectorize`") from None
    except (ValueError, OSError, EOFError, KeyError, struct.error, zipfile.BadZipFile) as error:
        raise ArtifactError(f"{matrix_path}: not a readable sparse matrix ({error}); "
                            "rerun `dvc repro -f vectorize`") from None
    matrix = sp.csr_matrix((values, indices, offsets), shape=(stop - start, shape[1]))
    labels = load_labels(directory, split)
    if rows != len(labels):
        raise ArtifactError(f"{matrix_path} has {rows} rows but {labels_path} has {len(labels)}")
    return matrix, labels.iloc[start:stop].reset_index(drop=True)


# A zip member's local header: 30 bytes, then its file name and extra field (their lengths at
# offsets 26 and 28), then the member's bytes.
_LOCAL_HEADER = struct.Struct("<4s22xHH")


def _stored_array(path: Path, handle, members: dict[str, zipfile.ZipInfo], name: str) -> np.ndarray:
    """One ``.npy`` member of an uncompressed ``.npz``, memory-mapped (read-only)."""
    info = members[name]
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{name} is compressed (save_features writes it uncompressed)")
    handle.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        raise ValueError(f"{name}: no zip member header at its offset")
    handle.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    version = np.lib.format.read_magic(handle)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(handle)
    if fortran_order or dtype.hasobject or len(shape) != 1:
        raise ValueError(f"{name}: not a plain one-dimensional array")
    if shape[0] == 0:  # np.memmap cannot map zero bytes
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=handle.tell(), shape=shape)


def load_labels(directory: Path, split: str) -> pd.DataFrame:
    """The (id, price) rows of a hashed split."""
    labels_path = feature_files(directory, split)[1]
    try:
        return pd.read_parquet(labels_path)
    except FileNotFoundError:
        raise ArtifactError(f"{labels_path}: missing; run `dvc repro vectorize`") from None
    except (ValueError, OSError) as error:
        raise ArtifactError(f"{labels_path}: not a readable parquet file ({error})") from None


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
