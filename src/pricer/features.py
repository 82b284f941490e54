"""Text → sparse features with a stateless HashingVectorizer.

Hashing needs no fitted vocabulary, so the same settings give the same columns for every split
and for new text at prediction time; the settings are all a saved model needs to carry.
Texts are hashed in chunks (memory follows the non-zeros, never rows × features), and chunks
can be hashed in parallel processes because the transform is a pure function of the text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
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
        return HashingVectorizer(
            n_features=self.n_features,
            stop_words=self.stop_words,
            binary=self.binary,
            norm=self.norm,
            dtype=np.float32,
        )

    def to_dict(self) -> dict:
        return asdict(self)


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


def _chunks(texts: list[str], chunk_rows: int, n_jobs: int) -> list[list[str]]:
    """Equal chunks of at most ``chunk_rows`` texts, as many as a multiple of ``n_jobs``.

    Equal shares keep every worker busy to the end: 100,000 texts in 20,000-row chunks would
    be 5 chunks, 3 for one worker and 2 for the other; 6 chunks of 16,667 split 3 and 3.
    """
    count = math.ceil(len(texts) / chunk_rows)
    count = math.ceil(count / n_jobs) * n_jobs
    size = math.ceil(len(texts) / count)
    return [texts[start : start + size] for start in range(0, len(texts), size)]
