"""vectorize: hash the text of every split into a sparse matrix, with (id, price) beside it."""

from __future__ import annotations

import logging
import sys
import time

import pandas as pd

from pricer.features import vectorize_texts
from pricer.params import ParamsError, load_params
from pricer.pipeline import FEATURES_DIR, RAW_DIR, SPLITS, configure_logging, save_features, vectorizer_settings

log = logging.getLogger("pricer.stages.vectorize")


def main() -> int:
    configure_logging()
    try:
        params = load_params()
    except ParamsError as error:
        log.error("%s", error)
        return 1
    settings = vectorizer_settings(params)
    for split in SPLITS:
        path = RAW_DIR / f"{split}.parquet"
        frame = pd.read_parquet(path, columns=["id", "price", settings.text_field])
        started = time.perf_counter()
        matrix = vectorize_texts(
            frame[settings.text_field].tolist(),
            settings,
            chunk_rows=params.vectorize.chunk_rows,
            n_jobs=params.vectorize.n_jobs,
        )
        save_features(FEATURES_DIR, split, matrix, frame[["id", "price"]])
        log.info(
            "%s: %d rows, %d non-zeros (%.1f per row) in %.1fs",
            split, matrix.shape[0], matrix.nnz, matrix.nnz / max(matrix.shape[0], 1), time.perf_counter() - started,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
