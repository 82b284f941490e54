"""After `dvc repro` in a fresh project: register → promote → load with mlflow.pyfunc → serve the
champion over HTTP with `mlflow models serve`, and open the UI on the training runs."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest

import pricer
from pricer.predictor import PricePredictor
from pricer.tracking import pyfunc, registry

from .conftest import REPO_ROOT, Project, copy_project
from .servers import NO_SERVER_JOBS, chromium, chromium_run, free_port, running

pytestmark = pytest.mark.e2e

TEXTS = ["Title: Cordless drill, 20V, two batteries\nCategory: Tools & Home Improvement",
         "Title: Desk lamp with dimmer", "Title: Stainless steel water bottle, 1 l", "guitar strings"]
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def repro(pipeline, pipeline_repro_output, tmp_path_factory) -> tuple[Project, str]:
    """A copy of the tiny project after one `dvc repro` (the champion is promoted in it), with
    that repro's output (the train stages' last lines)."""
    return copy_project(pipeline, tmp_path_factory.mktemp("pricer-serving") / "pricer"), pipeline_repro_output


@pytest.fixture(scope="module")
def project(repro) -> Project:
    return repro[0]


@pytest.fixture(scope="module")
def store(project) -> str:
    return f"sqlite:///{project.root / 'mlflow.db'}"


@pytest.fixture(scope="module")
def champion(project):
    """The workspace's residual network promoted to champion with `pricer promote`, as a user does
    after comparing."""
    done = project.cli_here("promote", "resnet", "--exp", "workspace")
    assert done.stdout.strip() == "pricer-resnet@champion -> version 1 (experiment workspace)", done.stdout
    client = registry.registry_client(project.root)
    version = client.get_model_version_by_alias("pricer-resnet", registry.CHAMPION)
    return SimpleNamespace(registered_name="pricer-resnet", version=int(version.version))


def test_promote_refuses_what_is_not_there_in_one_line(project, champion):
    done = project.cli_here("promote", "resnet", "--version", "99", check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "pricer-resnet has no version 99" in done.stderr and "Traceback" not in done.stderr


def test_pricer_predict_prices_an_mlflow_model_uri_like_the_directory(project, champion):
    uri = project.cli_here("predict", "-m", "models:/pricer-resnet@champion", "-f", "json", *TEXTS)
    directory = project.cli_here("predict", "-m", "models/resnet", "-f", "json", *TEXTS)
    prices = [[row["prices"]["resnet"] for row in json.loads(done.stdout)["predictions"]] for done in (uri, directory)]
    assert prices[0] == prices[1] and len(prices[0]) == len(TEXTS)


def expected_prices(project: Project, texts: list[str]) -> np.ndarray:
    return PricePredictor.load(project.root / "models" / "resnet").predict(texts)


def expected_ranges(project: Project, texts: list[str], level: float = 0.8) -> np.ndarray:
    """(price, low, high) per text, as the directory's calibration gives them."""
    ranged = PricePredictor.load(project.root / "models" / "resnet").predict_range(texts, level=level)
    return np.column_stack([ranged.price, ranged.low, ranged.high])


def test_every_model_and_the_ensemble_are_registered_and_the_champion_loads_as_pyfunc(project, store, champion,
                                                                                      monkeypatch):
    client = registry.registry_client(project.root)
    for name in ("mlp", "resnet", "ensemble"):
        (version,) = client.search_model_versions(f"name = 'pricer-{name}'")
        assert version.tags["dvc_exp_name"] == "workspace" and version.tags["data_source"] == "synthetic"
        assert version.tags["git_commit"] == project.git_head() and float(version.tags["val_mae"]) > 0
    assert (champion.registered_name, champion.version) == ("pricer-resnet", 1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    run_id = client.get_model_version("pricer-resnet", "1").run_id
    for uri in (f"runs:/{run_id}/model", "models:/pricer-resnet@champion"):
        model = mlflow.pyfunc.load_model(uri)
        assert [column["name"] for column in model.metadata.get_output_schema().to_dict()] == ["price", "low", "high"]
        priced = model.predict(pd.DataFrame({"summary": TEXTS}))
        assert np.array_equal(priced["price"].to_numpy(), expected_prices(project, TEXTS)), uri
        np.testing.assert_allclose(priced[["price", "low", "high"]].to_numpy(), expected_ranges(project, TEXTS))
    ensemble_run = client.get_model_version("pricer-ensemble", "1").run_id
    priced = mlflow.pyfunc.load_model(f"runs:/{ensemble_run}/model").predict(pd.DataFrame({"summary": TEXTS}))
    np.testing.assert_allclose(priced["price"].to_numpy(),
                               pricer.load_model(project.root / "models" / "ensemble").predict(TEXTS))
    assert (priced["low"] <= priced["price"]).all() and (priced["price"] <= priced["high"]).all()
    loaded = registry.load_predictor("models:/pricer-resnet@champion", root=project.root)
    assert np.array_equal(loaded.predict(TEXTS), expected_prices(project, TEXTS))


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _frame(columns: list[str], rows: list[list]) -> bytes:
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()


def test_mlflow_models_serve_prices_the_champion_and_refuses_bad_requests(project, store, champion, tmp_path,
                                                                          monkeypatch):
    port = free_port()
    # No PYTHONPATH: the server imports pricer from the code logged with the model.
    env = project.env | {"MLFLOW_TRACKING_URI": store, "PYTHONPATH": ""}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/pricer-resnet@champion",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(command, cwd=tmp_path, env=env, log_path=tmp_path / "serve.log", health_url=f"{url}/ping"):
        status, answer = _post(f"{url}/invocations", _frame(["summary"], [[text] for text in TEXTS]))
        assert status == 200, answer
        served = np.array([[row["price"], row["low"], row["high"]] for row in answer["predictions"]])
        assert np.array_equal(served[:, 0], expected_prices(project, TEXTS))
        np.testing.assert_allclose(served, expected_ranges(project, TEXTS))
        wider = json.dumps({"dataframe_split": {"columns": ["summary"], "data": [[text] for text in TEXTS]},
                            "params": {"level": 0.95}}).encode()
        status, answer = _post(f"{url}/invocations", wider)
        assert status == 200, answer
        np.testing.assert_allclose([[row["price"], row["low"], row["high"]] for row in answer["predictions"]],
                                   expected_ranges(project, TEXTS, level=0.95))

        # the request example logged with the model, as a client copying it sends it
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # where models:/ resolves
        files = Path(mlflow.artifacts.download_artifacts("models:/pricer-resnet@champion",
                                                         dst_path=str(tmp_path / "champion")))
        status, answer = _post(f"{url}/invocations", (files / "serving_input_example.json").read_bytes())
        assert status == 200 and len(answer["predictions"]) == len(pyfunc.EXAMPLE_TEXTS), answer
        assert all(row["low"] <= row["price"] <= row["high"] for row in answer["predictions"]), answer

        refusals = {
            "missing column": (_frame(["title"], [["a lamp"]]), "summary"),
            "non-text values": (_frame(["summary"], [[1], [2.5]]), "summary"),
            # training's text rules (pricer.text): a blank text has no price, not the price of no features
            "empty and NUL-only texts": (_frame(["summary"], [[TEXTS[0]], [""], ["\x00\x00"]]),
                                         "row 1: empty text; row 2: empty text"),
            "empty body": (b"", ""),
            "level outside (0, 1)": (json.dumps({"dataframe_split": {"columns": ["summary"], "data": [["a lamp"]]},
                                                 "params": {"level": 1.5}}).encode(), "level"),
        }
        for problem, (body, named) in refusals.items():
            status, answer = _post(f"{url}/invocations", body)
            assert 400 <= status < 500, (problem, status, answer)
            assert answer.get("message") and named in answer["message"], (problem, answer)
        status, answer = _post(f"{url}/invocations", _frame(["summary"], [[TEXTS[0]]]))
        assert status == 200 and answer["predictions"][0]["price"] == expected_prices(project, TEXTS[:1])[0]


def test_the_ui_opens_on_the_training_runs_with_datasets_and_sources(repro, tmp_path):
    project, output = repro
    address = re.findall(r"http://127\.0\.0\.1:5000/(#/experiments/(\d+)/runs\?workflowType=machine_learning"
                         r"&viewStateShareKey=pricer-runs)", output)
    assert address, f"the train stages did not log the UI address:\n{output[-3000:]}"
    page, experiment_id = address[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", "sqlite:///mlflow.db",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with running(command, cwd=project.root, env=project.env | NO_SERVER_JOBS, log_path=tmp_path / "ui.log",
                 health_url=f"{url}/health"):
        api = f"{url}/api/2.0/mlflow"
        with urllib.request.urlopen(f"{api}/experiments/get?experiment_id={experiment_id}", timeout=10) as response:
            experiment = json.loads(response.read())["experiment"]
        assert ({tag["key"]: tag["value"] for tag in experiment["tags"]}["mlflow.experimentKind"]
                == "custom_model_development")
        status, found = _post(f"{api}/runs/search", json.dumps({"experiment_ids": [experiment_id]}).encode())
        runs = {run["info"]["run_name"]: run for run in found["runs"]}
        assert set(runs) == {"mlp-workspace", "resnet-workspace", "ensemble-workspace"}
        for run in (runs["mlp-workspace"], runs["resnet-workspace"]):  # the ensemble trains nothing
            tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
            assert (tags["mlflow.source.git.commit"] == project.git_head()
                    and tags["mlflow.source.name"] == "stages/train.py")
            contexts = {next(tag["value"] for tag in item["tags"] if tag["key"] == "mlflow.data.context"):
                        item["dataset"]
                        for item in run["inputs"]["dataset_inputs"]}
            assert set(contexts) == {"training", "validation", "testing"}
            assert contexts["testing"]["name"] == "synthetic:test" and len(contexts["testing"]["digest"]) == 32

        if chromium() is None:
            pytest.skip("chromium is not installed (apt-get install -y chromium): the REST checks passed, "
                        "the runs table was not rendered")
        dom = chromium_run(f"{url}/{page}", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        # the commit itself is on each run's page (the table's Source cell shows the script)
        for text in ("Model training", "mlp-workspace", "resnet-workspace", "synthetic:train", "training", "train.py",
                     "pricer: test MAE"):
            assert text in dom.stdout, f"{text!r} is not on the runs page {url}/{page}"
        # pricer's saved view: test MAE and its interval are columns of the table, in that order,
        # right after the run's name and date, with each run's figure in its row
        headers = re.findall(r'<div[^>]*role="columnheader"[^>]*aria-colindex="(\d+)"[^>]*col-id="([^"]+)"', dom.stdout)
        order = [column for _, column in sorted({(int(index), column) for index, column in headers})
                 if "`" in column or column == "runDateAndNestInfo"]  # not the grid's column groups
        assert order[:5] == ["attributes.`Run Name`", "runDateAndNestInfo", "metrics.`test_mae`",
                             "metrics.`test_mae_ci95_low`", "metrics.`test_mae_ci95_high`"], order
        for run in runs.values():
            figure = next(metric["value"] for metric in run["data"]["metrics"] if metric["key"] == "test_mae")
            assert f"{figure:g}" in dom.stdout or f"{figure:.2f}" in dom.stdout, (run["info"]["run_name"], figure)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "mlflow-training-runs.png"
        screenshot.unlink(missing_ok=True)
        shot = chromium_run(f"{url}/{page}", f"--screenshot={screenshot}")
        assert shot.returncode == 0 and screenshot.stat().st_size > 30_000, shot.stderr[-2000:]
