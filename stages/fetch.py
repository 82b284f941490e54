"""fetch: load items from the configured source, validate them, write one parquet per split."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pricer import layout
from pricer.atomic import atomic_path, refuse_outputs_outside, write_json
from pricer.console import progress_enabled, run_stage
from pricer.memory import use_returning_memory_pool
from pricer.params import load_params
from pricer.sources import fetch_splits

log = logging.getLogger("pricer.stages.fetch")


def main() -> int:
    refuse_outputs_outside(Path.cwd(), layout.stage_outputs("fetch"))  # before anything is written
    use_returning_memory_pool()  # text columns freed while splitting/hashing leave the process
    params = load_params()
    if not progress_enabled(params.train.progress):
        # The Hub download's own bars (datasets, huggingface_hub): quiet in CI and in logs.
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    data = params.data
    log.info("fetching %s", data.source)
    result = fetch_splits(
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
        with atomic_path(layout.raw_split(split)) as tmp:
            result.splits[split].to_parquet(tmp, index=False)
        log.info("wrote %s: %d rows", layout.raw_split(split), len(result.splits[split]))
    write_json(layout.FETCH_REPORT, result.report)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("fetch", main))
