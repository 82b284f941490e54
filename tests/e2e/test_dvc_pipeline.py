"""The real ``dvc`` commands on a tiny project: repro, an experiment, exp show, MLflow runs."""

from __future__ import annotations

import csv
import json
import re

import pytest

from pricer.predictor import PricePredictor

from .conftest import copy_project

pytestmark = pytest.mark.e2e


def _stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_repro_produces_models_metrics_and_mlflow_runs(pipeline):
    project = pipeline
    for split in ("train", "validation", "test"):
        assert (project.root / f"data/raw/{split}.parquet").exists()
        assert (project.root / f"data/features/{split}/manifest.json").exists()
    report = project.read_json("data/fetch_report.json")
    assert report["kind"] == "synthetic" and report["splits"]["train"]["rows_out"] > 0

    baselines = project.read_json("metrics/baselines.json")
    for name in ("mlp", "resnet"):
        metrics = project.read_json(f"metrics/{name}.json")
        assert set(metrics) == {"test_mae", "test_mae_first_200", "test_rmsle", "test_hit_rate",
                                "test_mae_ci95_low", "test_mae_ci95_high",
                                "test_mae_first_200_ci95_low", "test_mae_first_200_ci95_high",
                                "interval_level", "test_interval_coverage", "test_interval_width_median"}
        assert metrics["interval_level"] == 0.8 and 0 < metrics["test_interval_coverage"] <= 1
        assert metrics["test_mae_ci95_low"] < metrics["test_mae"] < metrics["test_mae_ci95_high"]
        assert metrics["test_mae"] > 0
        assert PricePredictor.load(project.root / "models" / name).predict(["Title: a lamp"]).shape == (1,)
        history = list(csv.DictReader((project.root / f"metrics/history/{name}.csv").open()))
        assert [row["epoch"] for row in history] == ["1", "2"]
        assert project.read_json(f"metrics/train/{name}.json")["best_epoch"] in (1, 2)
    assert project.read_json("metrics/resnet.json")["test_mae"] < baselines["train_median_test_mae"]
    pair = project.read_json("metrics/comparison.json")["resnet_vs_mlp"]
    assert pair["ci95_low"] <= pair["mae_difference"] <= pair["ci95_high"]
    assert pair["verdict"] in ("better", "worse", "no detectable difference")
    shown = project.dvc("metrics", "show").stdout
    assert "metrics/comparison.json" in shown and pair["verdict"] in shown

    runs = {run.data.tags["model"]: run for run in project.mlflow_runs()}
    assert set(runs) == {"mlp", "resnet", "ensemble"}
    resnet = runs["resnet"]
    assert resnet.data.params["params.lr"] == "0.001" and resnet.data.params["params.resnet.hidden"] == "32"
    assert resnet.data.metrics["test_mae"] == pytest.approx(project.read_json("metrics/resnet.json")["test_mae"])
    assert resnet.data.tags["dvc_exp_name"] == "workspace" and resnet.data.tags["data_source"] == "synthetic"
    assert resnet.info.status == "FINISHED"


def test_repro_again_is_up_to_date(pipeline):
    done = pipeline.dvc("repro")
    assert _stages_run(done.stdout) == []


def test_an_experiment_on_one_models_lr_reruns_only_that_model_and_what_follows(experiments):
    project, outputs = experiments  # the baseline committed, then an experiment on each model's lr
    for command, trained in (("dvc exp run --temp -n half-lr -S lr=0.0005", "train_resnet"),
                             ("dvc exp run --temp -n mlp-fast -S mlp.lr=0.005", "train_mlp")):
        assert _stages_run(outputs[command]) == [trained, "ensemble", "evaluate"], outputs[command]

    table = json.loads(project.dvc("exp", "show", "--json").stdout)
    rows = {}
    for entry in table:
        for exp in [entry] + [e for e in entry.get("experiments") or [] for e in e.get("revs", [])]:
            data = exp.get("data") or {}
            name = exp.get("name") or data.get("name") or exp.get("rev")
            metrics = (data.get("metrics") or {}).get("metrics/resnet.json", {}).get("data", {})
            params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
            rows[name] = (params.get("lr"), metrics.get("test_mae"))
    assert rows["half-lr"][0] == 0.0005 and rows["half-lr"][1] > 0
    baseline = [value for name, value in rows.items() if name not in ("half-lr", "mlp-fast", "workspace")]
    assert baseline and baseline[0][0] == 0.001 and baseline[0][1] > 0

    runs = project.mlflow_runs()
    by_exp = {(r.data.tags["dvc_exp_name"], r.data.tags["model"]) for r in runs}
    assert {("half-lr", "resnet"), ("mlp-fast", "mlp"), ("workspace", "resnet"), ("workspace", "mlp")} <= by_exp
    half = next(r for r in runs if r.data.tags["dvc_exp_name"] == "half-lr")
    assert half.data.params["params.lr"] == "0.0005" and "test_mae" in half.data.metrics


def test_repro_logs_no_progress_bars_when_progress_is_off(pipeline_repro_output):
    # train.progress is false in the tiny params; MLflow's check of each logged model (it downloads
    # the model again) draws none either
    assert "Validating input example against model signature" in pipeline_repro_output  # the check ran
    assert "Downloading artifacts" not in pipeline_repro_output and "%|" not in pipeline_repro_output


def test_an_edit_to_any_module_a_stage_imports_makes_it_stale(pipeline, tmp_path):
    project = copy_project(pipeline, tmp_path / "pricer")
    project.dvc("repro")  # the workspace up to date first
    # An edit reruns exactly the stages whose code it touches: the training loop is not
    # evaluate's (pricing needs no optimizer), the hashing is not fetch's.
    for edited, expected in (("src/pricer/training/recipes.py", {"train_mlp", "train_resnet"}),
                             ("src/pricer/training/loop.py", {"train_mlp", "train_resnet"}),
                             ("src/pricer/features.py",
                              {"vectorize", "train_mlp", "train_resnet", "ensemble", "evaluate"}),
                             # the text rules: training's and every way of pricing's
                             ("src/pricer/text.py", {"fetch", "train_mlp", "train_resnet", "ensemble", "evaluate"})):
        source = project.root / edited
        original = source.read_text()
        try:
            source.write_text(original + "# an edit\n")
            status = project.dvc("status", "--json")
            assert set(json.loads(status.stdout)) == expected, (edited, status.stdout)
        finally:
            source.write_text(original)
    assert json.loads(project.dvc("status", "--json").stdout) == {}
