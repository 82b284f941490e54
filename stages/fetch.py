"""fetch: load items from the configured source, validate them, write one parquet per split."""

from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm

from pricer.atomic import atomic_path, write_json
from pricer.sources import DataError, fetch_splits
from pricer.params import ParamsError, load_params
from pricer.pipeline import FETCH_REPORT, RAW_DIR, SPLITS, configure_logging, progress_enabled

log = logging.getLogger("pricer.stages.fetch")


def main() -> int:
    configure_logging()
    try:
        params = load_params()
        progress = progress_enabled(params.train.progress)
        if not progress:
            # The Hub download's own bars (datasets, huggingface_hub): quiet in CI and in logs.
            os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        d = params.data
        log.info("fetching %s", d.source)
        result = fetch_splits(
            d.source,
            text_field=params.vectorize.text_field,
            revision=d.revision,
            seed=params.seed,
            synthetic_items=d.synthetic_items,
            validation_fraction=d.validation_fraction,
            test_fraction=d.test_fraction,
            max_train_items=d.max_train_items,
        )
    except (ParamsError, DataError) as error:
        log.error("%s", error)
        return 1
    for split in tqdm(SPLITS, desc="fetch: write splits", unit="split", disable=not progress, leave=False):
        with atomic_path(RAW_DIR / f"{split}.parquet") as tmp:
            result.splits[split].to_parquet(tmp, index=False)
        log.info("wrote %s: %d rows", RAW_DIR / f"{split}.parquet", len(result.splits[split]))
    write_json(FETCH_REPORT, result.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
