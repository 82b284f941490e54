"""``pricer compare``: paired, unpaired and sweep reports, in-process, on commits of a scratch repository."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pricer.cli import main
from pricer.cli.compare import compare_runs
from pricer.cli.errors import CliError
from pricer.cli.experiments import Run

from .conftest import PARAMS, commit_run, git, predictions


def run(name: str, prices: np.ndarray, offsets: dict[str, float], **params) -> Run:
    return Run(name, None, predictions(prices, offsets), {"seed": 42, "lr": 0.001} | params)


def test_workspace_against_head_paired_with_an_exact_difference(repo, prices, capsys):
    commit_run(repo, predictions(prices, {"mlp": 5.0, "resnet": -1.0}), PARAMS, "baseline")
    predictions(prices, {"mlp": 2.0, "resnet": -1.0}).to_csv(repo / "metrics" / "predictions.csv", index=False)
    assert main(["compare"]) == 0
    captured = capsys.readouterr()
    head = git(repo, "rev-parse", "--short=7", "HEAD").strip()
    lines = captured.out.splitlines()
    assert lines[0] == f"A = workspace, B = HEAD ({head}): 200 test items, the same in both"
    assert lines[1].split("  ")[0] == "model"
    assert lines[2].split() == ["mlp", "2.00", "[2.00,", "2.00]", "5.00", "[5.00,", "5.00]", "-3.00", "[-3.00,",
                                "-3.00]", "better"]
    assert lines[3].endswith("+0.00 [+0.00, +0.00]  no detectable difference")
    assert lines[-1] == "95% intervals: percentile bootstrap over test items, 2,000 resamples, seed 0"
    assert captured.err == ""


def test_one_run_is_compared_with_head_and_json_has_every_figure(repo, prices, capsys):
    first = commit_run(repo, predictions(prices, {"mlp": 4.0}), PARAMS, "first")
    commit_run(repo, predictions(prices, {"mlp": 1.0}), PARAMS | {"lr": 0.002}, "second")
    git(repo, "update-ref", f"refs/exps/{first[:2]}/{first[2:]}/old-lr", first)
    assert main(["compare", "old-lr", "--json", "--resamples", "500", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in report["runs"]] == ["old-lr", "HEAD"]
    assert report["runs"][0]["rev"] == first and report["params"] == ["lr"]
    assert report["runs"][0]["params"] == {"lr": 0.001} and report["runs"][1]["params"] == {"lr": 0.002}
    assert report["paired"] == [{"model": "mlp", "diff": pytest.approx(3.0), "low": pytest.approx(3.0),
                                 "high": pytest.approx(3.0), "verdict": "worse"}]
    assert (report["resamples"], report["seed"], report["unpaired_reason"]) == (500, 3, None)


def test_runs_on_other_items_are_not_paired(repo, prices, capsys):
    commit_run(repo, predictions(prices, {"mlp": 4.0}), PARAMS, "first")
    git(repo, "tag", "small")
    commit_run(repo, predictions(prices[:150], {"mlp": 1.0}), PARAMS | {"data": {"synthetic_items": 600}}, "second")
    assert main(["compare", "small", "main"]) == 0
    captured = capsys.readouterr()
    small, main_commit = (git(repo, "rev-parse", "--short=7", rev).strip() for rev in ("small", "main"))
    assert captured.err == (f"pricer: small ({small}) and main ({main_commit}) were evaluated on different test "
                            "items (200 test items against 150): not paired, intervals only\n")
    lines = captured.out.splitlines()
    assert lines[0].split() == ["run", "items", "mlp:", "MAE", "[95%", "CI]", "data.synthetic_items"]
    assert lines[1].split()[:4] == ["small", f"({small})", "200", "4.00"]
    assert lines[2].split()[:4] == ["main", f"({main_commit})", "150", "1.00"]
    assert "A - B" not in captured.out


def test_a_sweep_is_sorted_best_first_with_the_params_that_differ():
    prices = np.round(np.random.default_rng(1).lognormal(3.5, 1.0, size=300), 2)
    runs = [run("a", prices, {"mlp": 6.0, "resnet": 3.0}, lr=0.01),
            run("b", prices, {"mlp": 2.0, "resnet": 9.0}, lr=0.02),
            run("c", prices, {"mlp": 4.0, "resnet": 1.0}, lr=0.03)]
    report = compare_runs(runs, resamples=200, seed=0, sort_by=None)
    assert report["sorted_by"] == "resnet"  # the lowest MAE of all: c's resnet
    assert [entry["name"] for entry in report["runs"]] == ["c", "a", "b"]
    assert report["params"] == ["lr"] and "paired" not in report and report["seed_groups"] == []
    by_mlp = compare_runs(runs, resamples=200, seed=0, sort_by="mlp")
    assert [entry["name"] for entry in by_mlp["runs"]] == ["b", "c", "a"]
    with pytest.raises(CliError, match="--sort-by knn: not a model of every run"):
        compare_runs(runs, resamples=200, seed=0, sort_by="knn")


def test_runs_differing_only_in_seed_get_mean_and_std():
    prices = np.round(np.random.default_rng(2).lognormal(3.5, 1.0, size=100), 2)
    runs = [run("s1", prices, {"mlp": 2.0}, seed=1), run("s2", prices, {"mlp": 4.0}, seed=2),
            run("s3", prices, {"mlp": 6.0}, seed=3), run("other", prices, {"mlp": 1.0}, seed=1, lr=0.5)]
    (group,) = compare_runs(runs, resamples=200, seed=0, sort_by=None)["seed_groups"]
    assert group["runs"] == ["s1", "s2", "s3"] and group["seeds"] == [1, 2, 3]
    assert group["models"]["mlp"] == {"mean": pytest.approx(4.0), "std": pytest.approx(2.0)}


def test_usage_mistakes_are_one_line_errors(repo, prices, capsys):
    commit_run(repo, predictions(prices, {"mlp": 4.0}), PARAMS, "first")
    assert main(["compare", "HEAD", "HEAD"]) == 1
    assert capsys.readouterr().err == "pricer: a run is named twice: HEAD HEAD\n"
    assert main(["compare", "nothing-here"]) == 1
    assert capsys.readouterr().err == ("pricer: nothing-here: neither a DVC experiment (`dvc exp show`) "
                                       "nor a git revision\n")
    commit_run(repo, pd.DataFrame({"id": [1], "price": [3.0], "knn": [2.0]}), PARAMS, "another model")
    assert main(["compare", "HEAD~1", "HEAD"]) == 1
    assert capsys.readouterr().err == "pricer: the runs have no model in common in their predictions\n"
    with pytest.raises(SystemExit):
        main(["compare", "--resamples", "10"])
    assert "use at least 100 resamples" in capsys.readouterr().err


def test_price_ranges_are_shown_by_their_coverage_and_not_taken_for_models(prices):
    def ranged(width: float) -> Run:
        frame = predictions(prices, {"mlp": 0.0})
        # a range of +- width dollars around a price that is exact: every price inside when width > 0
        frame["mlp_low"], frame["mlp_high"] = frame["mlp"] - width, frame["mlp"] + width
        frame.loc[: len(frame) // 4 - 1, "mlp_high"] = frame["price"] - 1  # a quarter of the prices fall above
        return Run(f"w{width}", None, frame, {"seed": 42, "evaluate.interval_level": 0.8})
    first, second = ranged(2.0), ranged(5.0)
    assert first.models == ["mlp"] and first.price_range("mlp") is not None
    report = compare_runs([first, second], resamples=200, seed=0, sort_by=None)
    figures = report["runs"][0]["mae"]["mlp"]
    assert figures["coverage"] == pytest.approx(0.75) and report["runs"][0]["interval_level"] == 0.8
    assert report["runs"][1]["mae"]["mlp"]["width_median"] == pytest.approx(10.0)
    from pricer.cli.compare import render

    text = render(report, {run.name: run for run in (first, second)})
    assert "price ranges: share of test prices inside their range" in text
    assert "0.750 ($4.00)" in text and "0.750 ($10.00)" in text
    without = Run("plain", None, predictions(prices, {"mlp": 0.0}), {})
    assert without.price_range("mlp") is None
    assert "coverage" not in compare_runs([without, without], resamples=100, seed=0,
                                          sort_by=None)["runs"][0]["mae"]["mlp"]


def test_compare_from_a_subdirectory_reads_the_project(repo, prices, capsys, monkeypatch):
    commit_run(repo, predictions(prices, {"mlp": 5.0}), PARAMS, "baseline")
    predictions(prices, {"mlp": 2.0}).to_csv(repo / "metrics" / "predictions.csv", index=False)
    (repo / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(repo / "src" / "deep")
    assert main(["compare", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [entry["mae"]["mlp"]["mae"] for entry in report["runs"]] == [pytest.approx(2.0), pytest.approx(5.0)]
