"""vectorize: hash the text of every split into a sparse matrix, with (id, price) beside it."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from pricer import layout
from pricer.atomic import refuse_outputs_outside
from pricer.console import progress_enabled, run_stage
from pricer.cores import check_at_most_cores
from pricer.features import VectorizerSettings, read_raw_split, save_features, vectorize_column
from pricer.memory import use_returning_memory_pool
from pricer.params import load_params

log = logging.getLogger("pricer.stages.vectorize")


def main() -> int:
    refuse_outputs_outside(Path.cwd(), layout.stage_outputs("vectorize"))  # before anything is written
    use_returning_memory_pool()  # text columns freed while splitting/hashing leave the process
    params = load_params()
    check_at_most_cores("vectorize.n_jobs", params.vectorize.n_jobs)  # each job a process
    settings = VectorizerSettings.from_params(params.vectorize.model_dump())
    progress = progress_enabled(params.train.progress)
    for split in layout.SPLITS:
        frame = read_raw_split(split, ["id", "price", settings.text_field])
        started = time.perf_counter()
        matrix = vectorize_column(frame[settings.text_field].tolist(), settings,
                                  chunk_rows=params.vectorize.chunk_rows, n_jobs=params.vectorize.n_jobs,
                                  progress_label=f"vectorize {split}" if progress else None)
        save_features(layout.FEATURES_DIR, split, matrix, frame[["id", "price"]])
        log.info("%s: %d rows, %d non-zeros (%.1f per row) in %.1fs", split, matrix.shape[0], matrix.nnz,
                 matrix.nnz / max(matrix.shape[0], 1), time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("vectorize", main))
