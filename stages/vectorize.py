"""vectorize: hash the text of every split into a sparse matrix, with (id, price) beside it."""

from __future__ import annotations

import logging
import sys
import time

import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from pricer.features import vectorize_texts
from pricer.pipeline import (
    FEATURES_DIR,
    RAW_DIR,
    SPLITS,
    configure_logging,
    progress_enabled,
    read_params,
    save_features,
    vectorizer_settings,
)

log = logging.getLogger("pricer.stages.vectorize")


def main() -> int:
    configure_logging()
    params = read_params(log)
    if params is None:
        return 1
    settings = vectorizer_settings(params)
    v = params.vectorize
    progress = progress_enabled(params.train.progress)
    # One progress step = one round of `n_jobs` chunks hashed in parallel; hashing is a pure
    # function of each row, so stacking the rounds gives exactly the one-call result.
    step_rows = v.chunk_rows * max(v.n_jobs, 1)
    for split in SPLITS:
        path = RAW_DIR / f"{split}.parquet"
        frame = pd.read_parquet(path, columns=["id", "price", settings.text_field])
        texts = frame[settings.text_field].tolist()
        started = time.perf_counter()
        parts = []
        with tqdm(total=len(texts), desc=f"vectorize {split}", unit="row", disable=not progress, leave=False) as bar:
            for start in range(0, max(len(texts), 1), step_rows):
                block = texts[start : start + step_rows]
                parts.append(vectorize_texts(block, settings, chunk_rows=v.chunk_rows, n_jobs=v.n_jobs))
                bar.update(len(block))
        matrix = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr", dtype=parts[0].dtype)
        save_features(FEATURES_DIR, split, matrix, frame[["id", "price"]])
        log.info(
            "%s: %d rows, %d non-zeros (%.1f per row) in %.1fs",
            split, matrix.shape[0], matrix.nnz, matrix.nnz / max(matrix.shape[0], 1), time.perf_counter() - started,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
