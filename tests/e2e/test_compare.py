"""Comparing and sharing experiments with the real tools (docs/comparing.md), on a tiny project.

A copy of the session's ``experiments`` project (`dvc repro`, a commit, then the experiments `half-lr`,
`-S lr=0.0005`, and `mlp-fast`, `-S mlp.lr=0.005`) with `half-lr` applied to its workspace. The tests
read it; the last one commits and shares a copy of it through a local DVC remote.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sys
import urllib.parse
import urllib.request

import mlflow
import pytest

from pricer import tracking
from pricer.digests import directory_md5
from pricer.predictor import PricePredictor

from .conftest import REPO_ROOT, Project, copy_project
from .servers import NO_SERVER_JOBS, chromium, chromium_run, free_port, running

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO_ROOT / "test-artifacts"
PLOT_IDS = {"Validation MAE per epoch", "Loss per epoch", "Test predictions vs actual price", "Test MAE by price band",
            "Price range coverage by price band"}
# The compact comparison of docs/comparing.md, verbatim.
EXP_SHOW = [
    "exp", "show", "--only-changed", "--keep", ".*test_mae$",
    "--drop", "Created|metrics/train/|.*:test_(hit_rate|rmsle|mae_first_.*)$|.*_price$|data/|src/|stages/|models/",
]


def _stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def compared(experiments, tmp_path_factory) -> Project:
    """A copy of the tiny project after `dvc repro`, a commit, and two experiments (their stages:
    tests/e2e/test_dvc_pipeline.py), with `dvc exp apply half-lr`: the workspace holds half-lr's
    params and results. A copy: `dvc` commands here never wait for a lock held in the shared one."""
    project = copy_project(experiments[0], tmp_path_factory.mktemp("compared") / "pricer")
    project.dvc("exp", "apply", "half-lr")
    return project


# ------------------------------------------------------------------- DVC: terminal and plots


def test_exp_show_compact_columns_and_metrics_diff(compared):
    table = list(csv.DictReader(io.StringIO(compared.dvc(*EXP_SHOW, "--csv").stdout)))
    columns = set(table[0])
    # the MAEs, the changed interval bounds and the paired comparison (and the verdict too, where
    # an lr changed it), and the two params that the experiments changed
    compact = {
        "Experiment", "rev", "typ", "metrics/mlp.json:test_mae", "metrics/resnet.json:test_mae",
        "metrics/resnet.json:test_mae_ci95_low", "metrics/resnet.json:test_mae_ci95_high",
        "resnet_vs_mlp.mae_difference", "resnet_vs_mlp.ci95_low", "resnet_vs_mlp.ci95_high",
        "train_mean_test_mae", "train_median_test_mae", "lr", "mlp.lr"}
    assert compact <= columns
    # beyond those, only metrics that the two lrs also move (the ensemble built on the models, the
    # comparisons, the ranges): no other param, and nothing that --drop removes
    # (val_mae: metrics/train/ensemble.json's, which DVC names without its file where unambiguous)
    extra = columns - compact - {"resnet_vs_mlp.verdict", "val_mae"}
    assert not [column for column in extra if ".json:" not in column and "_vs_" not in column], extra
    assert not [column for column in extra if "metrics/train/" in column or "first_200" in column], extra
    rows = {row["Experiment"] or row["rev"]: row for row in table}
    assert rows["half-lr"]["lr"] == "0.0005" and rows["main"]["lr"] == "0.001" and rows["mlp-fast"]["lr"] == "0.001"
    assert rows["mlp-fast"]["mlp.lr"] == "0.005" and rows["half-lr"]["mlp.lr"] == rows["main"]["mlp.lr"] == "0.01"
    assert (float(rows["half-lr"]["metrics/resnet.json:test_mae"])
            == compared.read_json("metrics/resnet.json")["test_mae"])  # the workspace: half-lr applied
    # each experiment moved its own model's figures only
    assert rows["half-lr"]["metrics/mlp.json:test_mae"] == rows["main"]["metrics/mlp.json:test_mae"]
    assert rows["mlp-fast"]["metrics/resnet.json:test_mae"] == rows["main"]["metrics/resnet.json:test_mae"]
    assert rows["mlp-fast"]["metrics/mlp.json:test_mae"] != rows["main"]["metrics/mlp.json:test_mae"]

    diff = json.loads(compared.dvc("metrics", "diff", "main", "half-lr", "--json").stdout)
    assert "test_mae" in diff["metrics/resnet.json"] and "metrics/mlp.json" not in diff


def test_plots_show_and_diff_draw_the_four_charts(compared, tmp_path):
    shown = json.loads(compared.dvc("plots", "show", "--json").stdout)
    assert set(shown["data"]) == PLOT_IDS  # and no stray per-file plots
    diff = json.loads(compared.dvc("plots", "diff", "main", "half-lr", "--json").stdout)
    assert set(diff["data"]) == PLOT_IDS
    for plot_id, (entry,) in diff["data"].items():
        assert entry["type"] == "vega" and entry["revisions"] == ["main", "half-lr"], plot_id
        spec = entry["content"]
        values = spec["data"]["values"]
        assert {v["rev"] for v in values} == {"main", "half-lr"}, plot_id
        assert "<DVC_METRIC" not in json.dumps(spec), plot_id  # every anchor filled
    scatter = diff["data"]["Test predictions vs actual price"][0]["content"]
    axes = scatter["spec"]["layer"][0]["encoding"]
    assert axes["x"]["scale"]["type"] == axes["y"]["scale"]["type"] == "log"
    assert "$" in axes["x"]["title"] and "$" in axes["y"]["title"]
    epochs = diff["data"]["Validation MAE per epoch"][0]["content"]
    assert {v["filename"] for v in epochs["data"]["values"]} == {"mlp.csv", "resnet.csv"}
    bands = diff["data"]["Test MAE by price band"][0]["content"]["data"]["values"]
    assert [v["band"] for v in bands if v["rev"] == "main" and v["model"] == "mlp"] == [
        "<$10", "$10-50", "$50-200", "$200-1000", "$1000+"]

    out = tmp_path / "plots"
    page = compared.dvc("plots", "diff", "main", "half-lr", "--html-template", ".dvc/plots/page.html",
                        "-o", str(out)).stdout
    html = (out / "index.html").read_text()
    assert (out / "index.html").as_uri() in page
    assert "vendor/vega.min.js" in html and "cdn.jsdelivr.net/npm/vega@5" in html and "no-vega" in html
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(out / "index.html", ARTIFACTS / "plots-diff.html")  # to look at where there is internet
    if chromium() is not None:
        # With Vega (vendor/ or the CDN) the page draws the charts; without it, it says why.
        dom = chromium_run((out / "index.html").as_uri(), "--dump-dom").stdout
        drawn = dom.count('class="marks"') == len(PLOT_IDS)
        explained = re.search(r'id="no-vega" style="display: block;"', dom) is not None
        assert drawn or explained, dom[:3000]


# ------------------------------------------------------------------- MLflow


def _get(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _post(url: str, body: dict, timeout: float = 10) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(compared, tmp_path):
    """`mlflow server` on the project's store, as docs/comparing.md starts it; stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", "sqlite:///mlflow.db",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with running(command, cwd=compared.root, env=compared.env | NO_SERVER_JOBS, log_path=tmp_path / "mlflow-server.log",
                 health_url=f"{url}/health", timeout_s=120):
        yield url


def test_mlflow_server_has_both_models_runs_with_history_and_renders_the_comparison(compared, mlflow_server,
                                                                                   monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # logged models are looked up in the global store
    api = f"{mlflow_server}/api/2.0/mlflow"
    experiment = _get(f"{api}/experiments/get-by-name?experiment_name=pricer")["experiment"]
    runs = _post(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 50})["runs"]
    by_name = {run["info"]["run_name"]: run for run in runs}
    # the two models' training runs, the ensemble stage's, and (the MLP being trained by the
    # baseline, not by half-lr) an evaluate run of half-lr's own for the MLP's test figures; the
    # same for mlp-fast, which trains the MLP only
    trained = {"mlp-workspace", "resnet-workspace", "resnet-half-lr", "mlp-mlp-fast"}
    assert set(by_name) == trained | {"ensemble-workspace", "ensemble-half-lr", "mlp-half-lr-evaluate",
                                      "ensemble-mlp-fast", "resnet-mlp-fast-evaluate"}
    for name, run in ((name, by_name[name]) for name in sorted(trained)):
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert tags["model"] == name.split("-")[0] and tags["dvc_exp_name"] == name.split("-", 1)[1]
        assert params["params.lr"] == ("0.0005" if name == "resnet-half-lr" else "0.001")
        assert params["params.mlp.lr"] == ("0.005" if name == "mlp-mlp-fast" else "0.01")
        assert params["params.resnet.hidden"] == "32" and "architecture.kind" in params
        assert metrics["test_mae"] > 0 and "baseline_train_median_test_mae" in metrics
        history = _get(f"{api}/metrics/get-history?" + urllib.parse.urlencode(
            {"run_id": run["info"]["run_id"], "metric_key": "val_mae"}))["metrics"]
        assert sorted(point["step"] for point in history) == [1, 2], name  # one point per epoch
        # the model directory travels inside the run's logged MLflow Model (runs:/<id>/model)
        files = mlflow.artifacts.list_artifacts(
            artifact_uri=f"runs:/{run['info']['run_id']}/model/artifacts/{tags['model']}")
        assert {f.path.rsplit("/", 1)[-1] for f in files} >= {"weights.pt", "model.json"}, name
    assert by_name["resnet-half-lr"]["data"]["metrics"] != by_name["resnet-workspace"]["data"]["metrics"]

    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs it with apt-get): the REST checks passed, "
                    "the comparison page was not rendered")
    compare = [by_name["resnet-workspace"]["info"]["run_id"], by_name["resnet-half-lr"]["info"]["run_id"]]
    page = (f"{mlflow_server}/#/compare-runs?runs={urllib.parse.quote(json.dumps(compare))}"
            f"&experiments={urllib.parse.quote(json.dumps([experiment['experiment_id']]))}")
    dom = chromium_run(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in ("Comparing 2 Runs", "resnet-workspace", "resnet-half-lr", "params.lr"):
        assert text in dom.stdout, f"{text!r} not on the compare page"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "mlflow-compare-runs.png"
    screenshot.unlink(missing_ok=True)
    shot = chromium_run(page, f"--screenshot={screenshot}")
    assert shot.returncode == 0 and screenshot.stat().st_size > 30_000, shot.stderr[-2000:]


# ------------------------------------------------------------------- sharing (on a copy: it commits)


def test_share_through_a_dvc_remote_and_a_git_clone(compared, tmp_path_factory):
    project = copy_project(compared, tmp_path_factory.mktemp("shared") / "pricer")
    project.dvc("exp", "apply", "half-lr")
    remote = tmp_path_factory.mktemp("dvc-remote")
    project.dvc("remote", "add", "-d", "local", str(remote))
    project.run("git", "add", "-A")  # the metrics and plot CSVs are cache: false outputs: git carries them
    project.run("git", "commit", "-q", "-m", "apply half-lr; add a DVC remote")
    project.dvc("push")

    clone = Project(tmp_path_factory.mktemp("clone") / "pricer")
    project.run("git", "clone", "-q", str(project.root), str(clone.root))
    clone.dvc("pull")
    status = clone.dvc("status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    repro = clone.dvc("repro")
    assert _stages_run(repro.stdout) == [], repro.stdout
    for relative in ("metrics/mlp.json", "metrics/resnet.json", "metrics/baselines.json"):
        assert clone.read_json(relative) == project.read_json(relative)
    # An experiment in the clone: the pulled models' training runs live in the first machine's
    # MLflow store, so the test figures go to new runs in the clone's store.
    done = clone.dvc("exp", "run", "-n", "in-clone", "-S", "evaluate.hit_dollars=30")
    assert _stages_run(done.stdout) == ["evaluate"]
    runs = {run.info.run_name: run for run in clone.mlflow_runs()}
    assert set(runs) == {"mlp-in-clone-evaluate", "resnet-in-clone-evaluate", "ensemble-in-clone-evaluate"}
    evaluated = runs["resnet-in-clone-evaluate"]
    assert evaluated.data.metrics["test_mae"] == clone.read_json("metrics/resnet.json")["test_mae"]
    # the new run names the model it evaluated by content, as the training run on the first machine does
    digest = directory_md5(clone.root / "models/resnet")
    assert evaluated.data.tags["pricer.evaluated_model_digest"] == digest
    (trained,) = [run for run in project.mlflow_runs() if run.data.tags.get("model") == "resnet"
                  and run.data.tags.get("dvc_exp_name") == "half-lr"]
    assert trained.data.tags[tracking.MODEL_DIGEST_TAG] == digest

    texts = ["Title: Stainless steel cookware set", "Title: USB cable, 2 pack"]
    for name in ("mlp", "resnet"):
        pulled = PricePredictor.load(clone.root / "models" / name).predict(texts)
        original = PricePredictor.load(project.root / "models" / name).predict(texts)
        assert (pulled == original).all()
