"""Small item tables and source files for the sources tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pricer.layout import SPLITS
from pricer.sources import FetchResult
from pricer.sources.validate import DROP_REASONS


def items(n: int, *, first_id: int = 0, with_id: bool = True) -> pd.DataFrame:
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "title": [f"Item {i}" for i in ids],
            "summary": [f"Title: Item {i}\nCategory: Tools" for i in ids],
            "price": (ids + 1).astype(float) * 1.25,
        }
    )
    if with_id:
        frame["id"] = ids
    return frame


def write_jsonl(path: Path, frame: pd.DataFrame) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in frame.to_dict(orient="records")))
    return path


def hub_layout(directory: Path, splits: dict[str, pd.DataFrame]) -> Path:
    """A directory shaped like a Hub dataset repo: data/<split>-00000-of-00001.parquet."""
    (directory / "data").mkdir(parents=True)
    for split, frame in splits.items():
        frame.to_parquet(directory / "data" / f"{split}-00000-of-00001.parquet")
    return directory


def all_ids(result: FetchResult) -> list[int]:
    return sorted(int(i) for split in SPLITS for i in result.splits[split]["id"])


def dropped_in_all_splits(result: FetchResult) -> dict[str, int]:
    splits = result.report["splits"]
    return {reason: sum(splits[split]["dropped"][reason] for split in SPLITS) for reason in DROP_REASONS}
