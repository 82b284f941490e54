"""fetch: stream items from the configured source, validate them, write one parquet per split.

Batches are drawn and validated here, or on the Dask cluster that ``PRICER_DASK_SCHEDULER``
names (the same bytes either way); ``data/raw`` is replaced only once every split is written.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pricer import layout
from pricer.atomic import refuse_outputs_outside, remove_stale_temporaries, write_json
from pricer.console import progress_enabled, run_stage
from pricer.memory import use_returning_memory_pool
from pricer.params import load_params
from pricer.sources import write_raw_splits

log = logging.getLogger("pricer.stages.fetch")


def main() -> int:
    refuse_outputs_outside(Path.cwd(), layout.stage_outputs("fetch"))  # before anything is written
    use_returning_memory_pool()  # batches freed while validating leave the process
    params = load_params()
    if not progress_enabled(params.train.progress):
        # The Hub download's own bars (datasets, huggingface_hub): quiet in CI and in logs.
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    data = params.data
    # data/raw is written beside itself and renamed into place: a killed run leaves data/.raw.*.tmp
    remove_stale_temporaries(layout.RAW_DIR, layout.FETCH_REPORT)
    log.info("fetching %s", data.source)
    report = write_raw_splits(
        layout.RAW_DIR,
        data.source,
        text_field=params.vectorize.text_field,
        stop_words=params.vectorize.stop_words,
        revision=data.revision,
        seed=data.seed,
        synthetic_items=data.synthetic_items,
        validation_fraction=data.validation_fraction,
        test_fraction=data.test_fraction,
        max_train_items=data.max_train_items,
    )
    for split in layout.SPLITS:
        log.info("wrote %s: %d rows", layout.raw_split(split), report["splits"][split]["rows_out"])
    write_json(layout.FETCH_REPORT, report)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("fetch", main))
