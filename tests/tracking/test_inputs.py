"""Datasets as run inputs: the source as the fetch stage resolved it, the digest of the file read."""

from __future__ import annotations

import json

from pricer import tracking
from pricer.tracking import inputs

TRAIN_FILES = {"data/features/train": "a" * 32, "data/features/train.parquet": "b" * 32,
               "data/features/validation": "c" * 32, "data/features/validation.parquet": "d" * 32}


def test_sources_follow_the_resolved_kind(tmp_path):
    hub = inputs.data_source("ed-donner/items_lite", {"kind": "hub", "resolved_revision": "abc123"})
    assert hub._get_source_type() == "hugging_face"
    assert json.loads(hub.to_json())["path"] == "ed-donner/items_lite" \
        and json.loads(hub.to_json())["revision"] == "abc123"
    synthetic = inputs.data_source("synthetic", {"kind": "synthetic", "seed": 7, "text_field": "summary"})
    assert synthetic._get_source_type() == "code" and json.loads(synthetic.to_json())["tags"]["data.seed"] == "7"
    items = tmp_path / "items.parquet"
    items.write_bytes(b"")
    local = inputs.data_source(str(items), {"kind": "local_file"})
    assert json.loads(local.to_json())["uri"] == str(items)


def test_one_dataset_per_split_with_the_file_md5_as_digest():
    datasets = inputs.split_datasets("synthetic", {"kind": "synthetic"}, TRAIN_FILES)
    assert set(datasets) == {"training", "validation"}
    assert datasets["training"].name == "synthetic:train"
    train_files = {k: v for k, v in TRAIN_FILES.items() if k.startswith("data/features/train")}
    assert len(train_files) == 2 and datasets["training"].digest == inputs.split_digest(train_files)
    assert datasets["training"].digest != datasets["validation"].digest
    (testing,) = inputs.split_datasets("synthetic", {}, {"data/raw/test.parquet": "e" * 32}).values()
    assert testing.digest == "e" * 32 and testing.name == "synthetic:test"


def test_read_fetch_report_is_empty_before_a_fetch(tmp_path):
    assert inputs.read_fetch_report(tmp_path / "fetch_report.json") == {}
    (tmp_path / "fetch_report.json").write_text('{"kind": "hub"}')
    assert inputs.read_fetch_report(tmp_path / "fetch_report.json") == {"kind": "hub"}


def test_logged_inputs_carry_their_context(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = tracking.start_run(enabled=True, experiment="pricer", run_name="x", tags={}, root=tmp_path)
    tracker.log_inputs(inputs.split_datasets("synthetic", {"kind": "synthetic"}, TRAIN_FILES))
    tracker.finish()
    logged = tracker.client.get_run(tracker.run_id).inputs.dataset_inputs
    contexts = {item.dataset.name: [tag.value for tag in item.tags if tag.key == "mlflow.data.context"]
                for item in logged}
    assert contexts == {"synthetic:train": ["training"], "synthetic:validation": ["validation"]}
    assert {item.dataset.source_type for item in logged} == {"code"}
