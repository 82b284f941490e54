"""vectorize: hash the text of every split into sparse matrix parts, with (id, price) beside them.

Streams each split in chunks of ``vectorize.chunk_rows`` rows, hashed on ``vectorize.n_jobs``
local processes, or on the Dask cluster that ``PRICER_DASK_SCHEDULER`` names (same bytes).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from pricer import layout
from pricer.atomic import refuse_outputs_outside
from pricer.console import progress_enabled, run_stage
from pricer.cores import check_at_most_cores
from pricer.features import VectorizerSettings, vectorize_split
from pricer.memory import use_returning_memory_pool
from pricer.params import load_params

log = logging.getLogger("pricer.stages.vectorize")


def main() -> int:
    refuse_outputs_outside(Path.cwd(), layout.stage_outputs("vectorize"))  # before anything is written
    use_returning_memory_pool()  # text chunks freed while hashing leave the process
    params = load_params()
    check_at_most_cores("vectorize.n_jobs", params.vectorize.n_jobs)  # each job a process
    settings = VectorizerSettings.from_params(params.vectorize.model_dump())
    progress = progress_enabled(params.train.progress)
    for split in layout.SPLITS:
        started = time.perf_counter()
        manifest = vectorize_split(layout.raw_split(split), layout.FEATURES_DIR, split, settings,
                                   chunk_rows=params.vectorize.chunk_rows, n_jobs=params.vectorize.n_jobs,
                                   progress_label=f"vectorize {split}" if progress else None)
        rows, nnz = manifest["rows"], manifest["nnz"]
        log.info("%s: %d rows, %d non-zeros (%.1f per row) in %d parts, %.1fs", split, rows, nnz,
                 nnz / max(rows, 1), len(manifest["parts"]), time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("vectorize", main))
