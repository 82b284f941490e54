"""``pricer models`` and the models every command loads."""

from __future__ import annotations

import json
import shutil

import pytest

from pricer.cli import main

from .conftest import csv_rows, save_model, weights_version


def test_default_models_skip_a_missing_one(project, capsys):
    root, _ = project
    shutil.rmtree(root / "models" / "mlp")
    assert main(["predict", "-f", "csv", "a lamp"]) == 0
    captured = capsys.readouterr()
    assert "models/mlp: not found, skipped" in captured.err
    assert list(csv_rows(captured.out)[0]) == ["row", "resnet", "resnet_low", "resnet_high", "error", "resnet_version"]
    shutil.rmtree(root / "models")
    assert main(["predict", "a lamp"]) == 1
    assert "no trained models found" in capsys.readouterr().err


def test_two_models_with_one_name_get_versioned_labels(project, capsys, catalogue_features):
    root, _ = project
    save_model(root / "other" / "resnet", "resnet", catalogue_features, seed=1)
    assert main(["predict", "-f", "csv", "-m", "models/resnet", "-m", "other/resnet", "a lamp"]) == 0
    header = list(csv_rows(capsys.readouterr().out)[0])
    first, second = weights_version(root / "models" / "resnet"), weights_version(root / "other" / "resnet")
    assert header[1:7] == [f"resnet@{first}", f"resnet@{first}_low", f"resnet@{first}_high",
                           f"resnet@{second}", f"resnet@{second}_low", f"resnet@{second}_high"]


def test_models_command(project, capsys):
    root, _ = project
    assert main(["models", "-f", "json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert [d["label"] for d in described] == ["mlp", "resnet"]
    assert described[0]["kind"] == "mlp" and described[0]["best_epoch"] == 2
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "label" in out.splitlines()[0] and weights_version(root / "models" / "resnet") in out


def test_missing_model_directory_is_a_one_line_error(project, capsys):
    root, _ = project
    assert main(["predict", "-m", "models/gone", "a lamp"]) == 1
    assert capsys.readouterr().err == ("pricer: models/gone: not a pricer model directory "
                                       "(needs model.json and weights.pt)\n")


def test_model_whose_files_disagree_is_a_one_line_error(project, capsys):
    root, _ = project
    config_path = root / "models" / "mlp" / "model.json"
    config = json.loads(config_path.read_text())
    config["vectorizer"]["n_features"] = 1024  # the weights and architecture still say 512
    config_path.write_text(json.dumps(config))
    assert main(["predict", "-m", "models/mlp", "a lamp"]) == 1
    assert capsys.readouterr().err == ("pricer: models/mlp/model.json: the vectorizer makes 1024 features, "
                                       "the architecture expects 512\n")
    config["vectorizer"]["n_features"] = 512
    config["architecture"]["hidden_layers"] = [32, 8]
    config_path.write_text(json.dumps(config))
    assert main(["models", "-m", "models/mlp"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pricer: models/mlp/weights.pt: weights do not fit the architecture in model.json")
    assert err.count("\n") == 1


@pytest.mark.parametrize("device, message", [
    ("gpu", "'gpu' is not a torch device (cpu, cuda, cuda:N, mps)"),
    ("cuda:64", None),
])
def test_unknown_or_absent_device_is_a_usage_error(project, capsys, device, message):
    import torch

    with pytest.raises(SystemExit) as done:
        main(["predict", "--device", device, "a lamp"])
    assert done.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("pricer predict: error: argument --device: ")
    if message is None:  # cuda:64: absent here, with or without CUDA
        message = ("'cuda:64' is not available on this machine" if not torch.cuda.is_available()
                   else f"'cuda:64': this machine has {torch.cuda.device_count()} CUDA device(s)")
    assert err.endswith(message)


def test_predictor_load_names_a_device_torch_cannot_use(project):
    from pricer.predictor import ModelLoadError, PricePredictor

    with pytest.raises(ModelLoadError, match=r"device 'nonsense' cannot run models/mlp"):
        PricePredictor.load("models/mlp", device="nonsense")


def test_models_names_the_mlflow_run_that_trained_each_model(project, capsys, monkeypatch):
    root, _ = project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from pricer import tracking
    from pricer.digests import directory_md5

    tracker = tracking.start_run(enabled=True, experiment="pricer", run_name="resnet-workspace",
                                 tags={"model": "resnet"}, root=root)
    tracker.set_tags({tracking.MODEL_DIGEST_TAG: directory_md5(root / "models" / "resnet")})
    tracker.finish()
    assert main(["models", "--format", "json"]) == 0
    described = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert described["resnet"]["mlflow_run_id"] == tracker.run_id
    assert described["mlp"]["mlflow_run_id"] is None  # this store did not train it


def test_pricing_does_not_open_the_mlflow_store(project, capsys, monkeypatch):
    """Only the listing names training runs: `pricer predict` prices without importing MLflow or
    opening the store (seconds of a command's start), even where a store is there."""
    root, _ = project
    from pricer import tracking

    tracking.start_run(enabled=True, experiment="pricer", run_name="resnet-workspace", tags={"model": "resnet"},
                       root=root).finish()

    def looked_up(*args, **kwargs):
        raise AssertionError("pricing looked up a training run")

    monkeypatch.setattr(tracking, "training_run_of", looked_up)
    assert main(["predict", "-m", "resnet", "-f", "json", "Title: a desk lamp"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["prices"]["resnet"] > 0
    with pytest.raises(AssertionError, match="looked up a training run"):
        main(["models"])
