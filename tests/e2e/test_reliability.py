"""Reliability end to end, with the real stage scripts and ``dvc`` commands on tiny projects.

- Reproducibility: ``dvc repro --force`` twice gives byte-identical data, features, metrics and
  weights on CPU; ``train.deterministic: true`` runs on CPU (and changes nothing there).
- Every MLflow run records the git revision, the DVC experiment, the data source and revision,
  the md5 of its inputs as in dvc.lock, and the versions of the key libraries.
- Interruption (a stage killed at any write, a training resumed): test_interruption.py.
- Load (two queue workers writing one MLflow store while a third process reads it) is checked on
  docs/comparing.md's sweep, in test_sweep.py.
"""

from __future__ import annotations

import sys
from importlib import metadata

import pytest
import yaml

from pricer import tracking
from pricer.digests import directory_md5, file_md5

from .conftest import Project, copy_project, snapshot

pytestmark = pytest.mark.e2e

REPRODUCED = (
    "data/fetch_report.json", "data/raw/*.parquet", "data/features/**/*",
    "models/*/weights.pt", "models/*/model.json",
    "metrics/*.json", "metrics/train/*.json", "metrics/history/*.csv", "metrics/predictions.csv", "metrics/bands.csv",
    "dvc.lock",  # nothing run-specific (an MLflow run id, a time) in any output: the lock is stable too
)


# --------------------------------------------------------------------------------------------
# Reproducibility and the MLflow record (one project for these tests: a copy of the shared pipeline)


@pytest.fixture(scope="module")
def repro_project(pipeline, tmp_path_factory) -> tuple[Project, dict[str, bytes]]:
    # a copy of the shared pipeline, reproduced on CPU (TINY_PARAMS): the byte-for-byte promise is
    # a CPU one (see docs/guarantees.md for GPUs)
    project = copy_project(pipeline, tmp_path_factory.mktemp("pricer-reliability") / "pricer")
    assert project.read_json("metrics/train/mlp.json") and "device: cpu" in (project.root / "params.yaml").read_text()
    return project, snapshot(project.root, REPRODUCED)


def test_deterministic_mode_runs_on_cpu_and_changes_nothing(repro_project):
    project, first = repro_project
    try:
        project.set_params({"train": {"deterministic": True}})
        for model in ("mlp", "resnet"):
            project.run_stage_here("train.py", model)
            weights = f"models/{model}/weights.pt"
            assert (project.root / weights).read_bytes() == first[weights], \
                f"{model}: deterministic mode changed the weights"
            assert (project.root / f"metrics/train/{model}.json").read_bytes() == first[f"metrics/train/{model}.json"]
    finally:
        project.run("git", "checkout", "params.yaml")


def test_repro_force_twice_is_byte_identical(repro_project):
    project, first = repro_project
    project.dvc("repro", "--force")
    second = snapshot(project.root, REPRODUCED)
    assert sorted(second) == sorted(first)
    # metrics of the two trained models, the ensemble (trained nothing: metrics/train/ensemble.json
    # and its test figures) and the comparisons; the weights of the two trained models
    assert (len([p for p in first if p.startswith("metrics/")]) == 12
            and len([p for p in first if p.endswith(".pt")]) == 2)
    different = [path for path in first if first[path] != second[path]]
    assert not different, f"not reproduced byte for byte: {different}"


def test_mlflow_runs_record_code_data_inputs_and_environment(repro_project):
    project, _ = repro_project
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    head = project.git_head()
    latest = {}
    for run in sorted(project.mlflow_runs(), key=lambda r: r.info.start_time):
        latest[run.data.tags["model"]] = run
    assert set(latest) == {"mlp", "resnet", "ensemble"}
    del latest["ensemble"]  # the ensemble stage trains nothing: its run is checked in tests/test_ensemble.py
    for model, run in latest.items():
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert tags["git_commit"] == head and tags["mlflow.source.git.commit"] == head
        assert tags["mlflow.source.name"] == "stages/train.py" and tags["mlflow.source.type"] == "LOCAL"
        assert tags[tracking.MODEL_DIGEST_TAG] == directory_md5(project.root / "models" / model)
        assert tags["dvc_exp_name"] == "workspace"
        assert (tags["data_source"], tags["data_kind"], tags["data_revision"]) == ("synthetic", "synthetic", "")
        stage = lock["stages"][f"train_{model}"]
        assert stage["params"]["params.yaml"]["train.threads"] == 2  # it changes the last bits: a dependency
        deps = {d["path"]: d["md5"] for d in stage["deps"] if d["path"].startswith("data/")}
        assert len(deps) == 4
        # a file is tagged with the md5 dvc.lock records; a matrix directory (dvc.lock: its ".dir" md5)
        # with its manifest's md5, which lists every part's md5 (features.feature_md5s)
        expected = {path: (file_md5(project.root / path / "manifest.json") if md5.endswith(".dir") else md5)
                    for path, md5 in deps.items()}
        assert {k.removeprefix("input_md5."): v for k, v in tags.items() if k.startswith("input_md5.")} == expected
        for library in tracking.KEY_LIBRARIES:
            assert tags[f"version.{library}"] == metadata.version(library)
        assert tags["version.python"] == ".".join(map(str, sys.version_info[:3]))
        assert params["params.seed"] == "42" and params["params.train.threads"] == "2" and params["device"] == "cpu"
        assert params["recipe.epochs"] == "2" and int(params["parameters"]) > 0
        assert {"best_val_mae", "val_mae", "test_mae", "test_rmsle", "baseline_train_median_test_mae"} <= set(metrics)
        assert metrics["test_mae"] == pytest.approx(project.read_json(f"metrics/{model}.json")["test_mae"])


def test_an_evaluate_only_experiment_records_its_own_run(repro_project):
    """`dvc exp run -n hit1 -S evaluate.hit_dollars=1` reruns evaluate alone, on the workspace's
    models: its figures go to runs of experiment hit1, not into the workspace's training runs."""
    project, _ = repro_project
    trained = {run.data.tags["model"]: run for run in sorted(project.mlflow_runs(), key=lambda r: r.info.start_time)
               if run.data.tags["dvc_exp_name"] == "workspace" and run.data.tags.get("stage") != "evaluate"}
    done = project.dvc("exp", "run", "-n", "hit1", "-S", "evaluate.hit_dollars=1")
    assert "Running stage 'evaluate'" in done.stdout and "Running stage 'train_" not in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project.root / 'mlflow.db'}")
    for model, run in trained.items():
        assert len(client.get_metric_history(run.info.run_id, "test_hit_rate")) == 1  # untouched by hit1
        (own,) = [r for r in project.mlflow_runs()
                  if r.data.tags["dvc_exp_name"] == "hit1" and r.data.tags["model"] == model]
        assert own.data.tags["stage"] == "evaluate" and own.data.tags[tracking.TRAINING_RUN_TAG] == run.info.run_id
        assert own.info.run_name == f"{model}-hit1-evaluate" and own.data.params["params.evaluate.hit_dollars"] == "1.0"
        written = project.read_json(f"metrics/{model}.json")
        assert own.data.metrics["test_hit_rate"] == pytest.approx(written["test_hit_rate"])
