"""The data a run read, as MLflow dataset inputs: where it came from and the hash of its bytes.

Metadata only (``MetaDataset``): no data is loaded a second time. The source is ``data.source``
as the fetch stage resolved it (a Hub dataset id at its resolved commit, a local path, or pricer's
embedded synthetic catalogue with its seed); the digest is the md5 DVC records for the file the
stage read (for a split stored as several files, one md5 over their sorted paths and md5s, each
of which is also a run tag ``input_md5.<path>``). Contexts: ``training``, ``validation``,
``testing``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pricer import layout

CONTEXTS = {"train": "training", "validation": "validation", "test": "testing"}


def read_fetch_report(path: Path = layout.FETCH_REPORT) -> dict[str, Any]:
    """``data/fetch_report.json`` (the resolved source and revision), or {} before a fetch; a
    damaged one is an ArtifactError naming it."""
    return layout.read_json_output(path, "fetch", missing_ok=True)


def data_source(source: str, report: Mapping[str, Any]) -> Any:
    """The MLflow DatasetSource of ``data.source`` as the fetch report resolved it."""
    kind = report.get("kind", "")
    if kind == "hub":
        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

        return HuggingFaceDatasetSource(source, revision=report.get("resolved_revision") or report.get("revision"))
    if kind == "synthetic" or source == "synthetic":
        from mlflow.data.code_dataset_source import CodeDatasetSource

        return CodeDatasetSource({"generator": "pricer.catalogue.generate_catalogue",
                                  "data.seed": str(report.get("seed", "")),
                                  "text_field": str(report.get("text_field", ""))})
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():  # MLflow warns that a local path matches two equivalent source types
        warnings.simplefilter("ignore")
        return resolve_dataset_source(str(Path(source).expanduser().resolve()))


def split_digest(file_md5s: Mapping[str, str]) -> str:
    """The md5 of the one file, or one md5 over several (sorted paths and their md5s)."""
    if len(file_md5s) == 1:
        return next(iter(file_md5s.values()))
    return hashlib.md5(json.dumps(sorted(file_md5s.items())).encode()).hexdigest()


def split_datasets(source: str, report: Mapping[str, Any], file_md5s: Mapping[str, str]) -> dict[str, Any]:
    """``{context: MetaDataset}`` for each split among ``file_md5s`` (path -> md5; a file's split
    is its name's stem: ``data/features/train`` (the parts' directory) is ``train``)."""
    from mlflow.data.meta_dataset import MetaDataset

    origin = data_source(source, report)
    datasets = {}
    for split, context in CONTEXTS.items():
        files = {path: md5 for path, md5 in file_md5s.items() if Path(path).stem == split}
        if files:
            datasets[context] = MetaDataset(origin, name=f"{source}:{split}", digest=split_digest(files))
    return datasets
