import json
import shutil

import pytest

from pricer import tracking


def test_tracking_uri_defaults_to_sqlite_at_the_root_and_env_overrides(tmp_path):
    uri = tracking.resolve_tracking_uri(tmp_path, environ={})
    assert uri.startswith(f"sqlite:///{tmp_path}/mlflow.db")
    assert tracking.resolve_tracking_uri(tmp_path, environ={"MLFLOW_TRACKING_URI": "http://mlflow:5000"}) == "http://mlflow:5000"


def test_library_versions():
    versions = tracking.library_versions()
    assert versions["torch"].startswith("2.13") and set(versions) == set(tracking.KEY_LIBRARIES)


def test_a_run_lands_in_the_store_with_params_metrics_and_tags(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "bright-lamp")
    tracker = tracking.start_run(enabled=True, experiment="pricer", run_name="resnet-bright-lamp",
                                 tags=tracking.run_tags("resnet", "synthetic"), root=tmp_path)
    tracker.log_params({"resnet": {"hidden": 32}, "lr": 0.001})
    tracker.log_metrics({"val_mae": 20.5}, step=1)
    tracker.log_metrics({"val_mae": 19.5}, step=2)
    artifact_dir = tmp_path / "model"
    artifact_dir.mkdir()
    (artifact_dir / "model.json").write_text("{}")
    tracker.log_artifacts(artifact_dir, "model")
    tracker.finish()

    client, experiment_id = tracking.connect(tracking.resolve_tracking_uri(tmp_path), "pricer", tmp_path)
    (run,) = client.search_runs([experiment_id])
    assert run.info.run_name == "resnet-bright-lamp" and run.info.status == "FINISHED"
    assert run.data.params == {"resnet.hidden": "32", "lr": "0.001"}
    assert run.data.tags["dvc_exp_name"] == "bright-lamp" and run.data.tags["model"] == "resnet"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_mae")] == [20.5, 19.5]
    assert (tmp_path / "mlartifacts").is_dir()
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.json"]


def test_disabled_tracking_does_nothing(tmp_path):
    tracker = tracking.start_run(enabled=False, experiment="pricer", run_name="x", tags={}, root=tmp_path)
    tracker.log_metrics({"val_mae": 1.0})
    tracker.finish()
    assert tracker.run_id is None and not (tmp_path / "mlflow.db").exists()


def _store_with_one_run(root, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = tracking.start_run(enabled=True, experiment="pricer", run_name="mlp-x", tags={"model": "mlp"}, root=root)
    tracker.log_metrics({"val_mae": 20.0}, step=1)
    tracker.finish()
    return tracker


def test_a_copied_project_refuses_to_write_into_the_originals_artifacts(tmp_path, monkeypatch):
    original = tmp_path / "original"
    _store_with_one_run(original, monkeypatch)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)  # what `cp -a` does
    with pytest.raises(tracking.TrackingError,
                       match=r"keeps its artifacts in .*original/mlartifacts, outside this project"):
        tracking.start_run(enabled=True, experiment="pricer", run_name="mlp-y", tags={}, root=copy)
    # the way out the message names: another experiment gets this project's own artifact location
    tracker = tracking.start_run(enabled=True, experiment="pricer-copy", run_name="mlp-y", tags={}, root=copy)
    assert tracker.client.get_experiment_by_name("pricer-copy").artifact_location == (
        copy / "mlartifacts").resolve().as_uri()


def test_a_damaged_store_fails_before_any_training(tmp_path, monkeypatch):
    _store_with_one_run(tmp_path, monkeypatch)
    store = tmp_path / "mlflow.db"
    data = bytearray(store.read_bytes())
    page = 4096
    for start in range(page * 2, len(data) - page, page * 3):  # scribble over some pages, not the header
        data[start + 100 : start + 400] = b"\xff" * 300
    store.write_bytes(bytes(data))
    with pytest.raises(tracking.TrackingError, match=r"mlflow.db is damaged|cannot be used"):
        tracking.start_run(enabled=True, experiment="pricer", run_name="mlp-z", tags={}, root=tmp_path)


def test_a_run_ends_killed_after_sigterm_or_ctrl_c_and_failed_after_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    statuses = {}
    for label, error in (("sigterm", SystemExit(143)), ("ctrl-c", KeyboardInterrupt()), ("error", RuntimeError("x"))):
        with pytest.raises(type(error)), tracking.start_run(
                enabled=True, experiment="pricer", run_name=label, tags={}, root=tmp_path) as tracker:
            raise error
        statuses[label] = tracker.client.get_run(tracker.run_id).info.status
    assert statuses == {"sigterm": "KILLED", "ctrl-c": "KILLED", "error": "FAILED"}


def test_the_training_run_is_found_again_by_the_model_directorys_digest(tmp_path, monkeypatch):
    tracker = _store_with_one_run(tmp_path, monkeypatch)
    tracker.set_tags({tracking.MODEL_DIGEST_TAG: "abc123"})
    found = tracking.reopen_training_run(enabled=True, model_name="mlp", model_digest="abc123", experiment="pricer",
                                         root=tmp_path)
    assert found.run_id == tracker.run_id
    other = tracking.reopen_training_run(enabled=True, model_name="mlp", model_digest="other", experiment="pricer",
                                         root=tmp_path)
    assert other.run_id is None and not other.enabled


def test_the_experiment_is_a_model_training_one_also_in_an_older_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.resolve_tracking_uri(tmp_path)
    client, experiment_id = tracking.connect(uri, "pricer", tmp_path)
    assert client.get_experiment(experiment_id).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    client.delete_experiment_tag(experiment_id, tracking.EXPERIMENT_KIND_TAG)  # a store from before pricer set it
    client, again = tracking.connect(uri, "pricer", tmp_path)
    assert again == experiment_id
    assert client.get_experiment(experiment_id).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_ui_address_opens_the_training_runs(tmp_path):
    local = tracking.ui_address(tracking.resolve_tracking_uri(tmp_path), "3")
    assert local == (f"`mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db --port 5000`, then open "
                     "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=pricer-runs")
    assert (tracking.ui_address("http://mlflow:8080/", "1")
            == "http://mlflow:8080/#/experiments/1/runs?workflowType=machine_learning&viewStateShareKey=pricer-runs")


def test_the_experiment_keeps_the_runs_view_the_ui_address_names(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.resolve_tracking_uri(tmp_path)
    client, experiment_id = tracking.connect(uri, "pricer", tmp_path)
    key = tracking.SHARED_VIEW_TAG_PREFIX + tracking.RUNS_VIEW_KEY
    envelope = json.loads(client.get_experiment(experiment_id).tags[key])
    assert envelope["name"] == tracking.RUNS_VIEW_NAME and isinstance(envelope["createdAt"], int)
    view = json.loads(envelope["state"])
    metrics = ["metrics.`test_mae`", "metrics.`test_mae_ci95_low`", "metrics.`test_mae_ci95_high`"]
    assert set(metrics) <= set(view["selectedColumns"])
    assert {"attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`"} <= set(view["selectedColumns"])
    assert view["columnOrder"][2:5] == metrics  # beside the run's name and date, before the wide dataset column

    held = client.get_experiment(experiment_id).tags[key]
    client, _ = tracking.connect(uri, "pricer", tmp_path)
    assert client.get_experiment(experiment_id).tags[key] == held  # a rerun rewrites nothing

    client.set_experiment_tag(experiment_id, key, '{"selectedColumns": []}')  # an older view of another shape
    client, _ = tracking.connect(uri, "pricer", tmp_path)
    assert json.loads(json.loads(client.get_experiment(experiment_id).tags[key])["state"]) == view


def test_a_run_records_the_digest_of_the_lock_file_it_ran_with(tmp_path, monkeypatch):
    from pricer.digests import file_md5

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking.run_tags("mlp", "synthetic")[tracking.LOCK_DIGEST_TAG] == "none"
    (tmp_path / "requirements.lock").write_text("numpy==2.0.0 \\\n    --hash=sha256:00\n")
    assert tracking.run_tags("mlp", "synthetic")[tracking.LOCK_DIGEST_TAG] == file_md5(tmp_path / "requirements.lock")
