"""The model registry: a version per tracked model, the champion alias moved only on request,
and predictors loaded from a directory, a run or the registry."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from conftest import log_tiny_model

from pricer.predictor import ModelLoadError, PricePredictor
from pricer.tracking import registry


@pytest.fixture(autouse=True)
def no_outside_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Two experiments' residual networks in one store: versions 1 (exp 'first') and 2 ('second')."""
    root = tmp_path_factory.mktemp("registry")
    first = log_tiny_model(root, "first", seed=1)
    first_prices = PricePredictor.load(first.directory).predict(first.texts)
    second = log_tiny_model(root, "second", seed=2)
    return root, first, first_prices, second


def test_each_tracked_model_is_a_version_tagged_with_its_provenance(logged_model):
    client = registry.registry_client(logged_model.root)
    version = client.get_model_version("pricer-resnet", logged_model.version)
    run = client.get_run(logged_model.run_id)
    assert version.run_id == logged_model.run_id and version.source.startswith("models:/m-")
    assert version.tags["dvc_exp_name"] == "bright-lamp" and version.tags["data_source"] == "synthetic"
    assert version.tags["git_commit"] == run.data.tags["mlflow.source.git.commit"]
    assert version.tags["val_mae"] == "12.5" and version.tags["pricer.model_digest"]
    assert not client.get_registered_model("pricer-resnet").aliases  # training never promotes


def test_promote_by_version_then_by_experiment_moves_the_alias(two_versions, caplog):
    root, first, _, second = two_versions
    client = registry.registry_client(root)
    promoted = registry.promote("resnet", version=int(first.version), root=root)
    assert (promoted.registered_name, promoted.version, promoted.previous_version) == ("pricer-resnet", 1, None)
    assert client.get_model_version_by_alias("pricer-resnet", "champion").version == first.version
    with caplog.at_level(logging.INFO, logger="pricer.tracking.registry"):
        promoted = registry.promote("pricer-resnet", exp="second", root=root)
    assert (promoted.version, promoted.dvc_exp_name, promoted.previous_version) == (2, "second", 1)
    assert client.get_model_version_by_alias("pricer-resnet", "champion").version == second.version
    assert "pricer-resnet@champion -> version 2 (experiment second) (was version 1)" in caplog.text


@pytest.mark.parametrize(("model", "choice", "message"), [
    ("resnet", {}, "exactly one of --exp NAME or --version N"),
    ("resnet", {"exp": "first", "version": 1}, "exactly one of"),
    ("gpt", {"version": 1}, "'gpt' is not a pricer model; expected one of mlp"),
    ("resnet", {"version": 9}, "pricer-resnet has no version 9; it has versions 1, 2"),
    ("resnet", {"exp": "nope"}, "no version from experiment 'nope'; experiments with versions: first, second"),
    ("mlp", {"version": 1}, "pricer-mlp has no registered versions"),
])
def test_promote_refuses_with_the_reason(two_versions, model, choice, message):
    with pytest.raises(registry.RegistryError, match=message):
        registry.promote(model, root=two_versions[0], **choice)


def test_load_predictor_from_a_directory_a_run_and_the_champion(two_versions):
    root, first, first_prices, second = two_versions
    registry.promote("resnet", version=1, root=root)
    from_run = registry.load_predictor(f"runs:/{first.run_id}/model", root=root)
    from_champion = registry.load_predictor("models:/pricer-resnet@champion", root=root)
    from_version = registry.load_predictor("models:/pricer-resnet/2", root=root)
    assert np.array_equal(from_run.predict(first.texts), first_prices)
    assert np.array_equal(from_champion.predict(first.texts), first_prices)
    second_prices = registry.load_predictor(second.directory).predict(second.texts)
    assert np.array_equal(from_version.predict(second.texts), second_prices)
    assert not np.array_equal(second_prices, first_prices)


@pytest.mark.parametrize("uri", ["models:/pricer-resnet@nobody", "models:/pricer-mlp/1",
                                 "runs:/0123456789abcdef/model"])
def test_load_predictor_names_a_uri_that_leads_nowhere(two_versions, uri):
    with pytest.raises(ModelLoadError, match=f"^{uri}: "):
        registry.load_predictor(uri, root=two_versions[0])


def test_the_facade_takes_mlflow_uris_too(two_versions, monkeypatch):
    import pricer
    from pricer import tracking

    root, first, first_prices, _ = two_versions
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.resolve_tracking_uri(root))
    assert np.array_equal(pricer.load_model(f"runs:/{first.run_id}/model").predict(first.texts), first_prices)
    # one text alone: compared with the same text priced alone from the directory (a batch of one
    # and a batch of many may differ in the last bits, as float sums are grouped differently)
    alone = pricer.load_model(f"runs:/{first.run_id}/model").predict(first.texts[:1])[0]
    assert pricer.predict(first.texts[0], model=f"runs:/{first.run_id}/model") == alone
    assert alone == pytest.approx(first_prices[0], rel=1e-5)


def test_a_run_download_shows_no_progress_in_ci_and_the_setting_is_put_back(logged_model, monkeypatch, capfd):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv(registry.PROGRESS_VARIABLE, "true")  # MLflow shows bars by default
    registry.load_predictor(f"runs:/{logged_model.run_id}/model", root=logged_model.root)
    assert "Downloading artifacts" not in capfd.readouterr().err
    assert os.environ[registry.PROGRESS_VARIABLE] == "true"


def test_a_logged_model_is_checked_against_its_training_runs_digest(logged_model, caplog):
    with caplog.at_level(logging.WARNING, logger="pricer.tracking.registry"):
        loaded = registry.load_predictor(f"runs:/{logged_model.run_id}/model", root=logged_model.root)
    assert loaded.version == PricePredictor.load(logged_model.directory).version and not caplog.text
