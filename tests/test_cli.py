"""The ``pricer`` command, run in-process on tiny models saved to a temporary directory."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

import pricer
from pricer.cli import main
from pricer.models import build_model
from pricer.predictor import PricePredictor
from pricer.target import TargetTransform

ARCHS = {
    "mlp": {"kind": "mlp", "n_features": 512, "hidden_layers": [16, 8], "init": "kaiming"},
    "resnet": {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2},
}
TEXTS = [
    "Title: Stainless steel cookware set\nCategory: Home & Kitchen",
    "Title: Cordless drill 20V\nCategory: Tools & Home Improvement",
    "Title: Guitar strings, 3 pack",
]


def _save_model(directory, name, catalogue_features, seed=0):
    settings, _, train_y, *_ = catalogue_features
    torch.manual_seed(seed)
    predictor = PricePredictor(name, build_model(ARCHS[name]).eval(), ARCHS[name], settings,
                               TargetTransform.fit("standardized_log", train_y), info={"best_epoch": 2})
    predictor.save(directory)
    (directory / "run.json").write_text(json.dumps({"mlflow_run_id": f"run-{name}"}))
    return PricePredictor.load(directory)


@pytest.fixture
def project(tmp_path, catalogue_features, monkeypatch):
    """A working directory holding models/mlp and models/resnet, as after `dvc repro`."""
    models = {name: _save_model(tmp_path / "models" / name, name, catalogue_features) for name in ARCHS}
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    return tmp_path, models


def _stdin(monkeypatch, data: bytes):
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stream)


def _version(directory) -> str:
    return hashlib.sha256((directory / "weights.pt").read_bytes()).hexdigest()[:8]


def _csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _expected(models, texts):
    return {name: np.round(model.predict(texts), 2) for name, model in models.items()}


# ------------------------------------------------------------------- help


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "predict" in out and "models" in out and "docs/comparing.md" in out

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    for words in ("--text-column", "--format", "--model", "one product per line", "exit status", "--input-format",
                  "--batch-size", "--verbose", "--quiet"):
        assert words in out

    with pytest.raises(SystemExit):
        main(["models", "--help"])
    assert "version" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: pricer" in capsys.readouterr().err


def test_bad_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["predict", "--format", "xml", "a lamp"])
    assert done.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ------------------------------------------------------------------- inputs


def test_text_arguments_priced_by_both_default_models(project, capsys):
    root, models = project
    assert main(["predict", *TEXTS]) == 0
    captured = capsys.readouterr()
    out = captured.out
    for name in ARCHS:
        assert f"# {name}: models/{name} (version {_version(root / 'models' / name)})" in out
    expected = _expected(models, TEXTS)
    for name in ARCHS:
        for value in expected[name]:
            assert f"${value:,.2f}" in out
    assert "  Title: Stainless steel cookware set Category: H…  " in out  # one line per row, cut
    assert "priced 3 of 3 rows" in captured.err


def test_prices_match_the_python_api(project, capsys):
    root, models = project
    assert main(["predict", "-f", "json", "-m", "models/mlp", *TEXTS]) == 0
    document = json.loads(capsys.readouterr().out)
    got = [row["prices"]["mlp"] for row in document["predictions"]]
    np.testing.assert_allclose(got, pricer.predict(TEXTS, model="models/mlp"), atol=0.006)
    assert pricer.predict(TEXTS[0], model=root / "models" / "mlp") == pytest.approx(got[0], abs=0.006)
    loaded = pricer.load_model("models/resnet")
    assert loaded.name == "resnet"
    np.testing.assert_allclose(pricer.predict(TEXTS, model=loaded), models["resnet"].predict(TEXTS))


def test_stdin_one_product_per_line(project, capsys, monkeypatch):
    _, models = project
    _stdin(monkeypatch, ("\n".join(t.replace("\n", " ") for t in TEXTS) + "\n").encode())
    assert main(["predict", "-f", "csv"]) == 0
    rows = _csv_rows(capsys.readouterr().out)
    assert [r["row"] for r in rows] == ["1", "2", "3"]
    flat = [t.replace("\n", " ") for t in TEXTS]
    assert [float(r["resnet"]) for r in rows] == pytest.approx(_expected(models, flat)["resnet"], abs=0.006)


def test_stdin_as_one_product(project, capsys, monkeypatch):
    _, models = project
    for argv in (["--input-format", "text"], ["--input-format", "text", "-"], ["--input-format", "text", "-i", "-"]):
        _stdin(monkeypatch, TEXTS[0].encode())
        assert main(["predict", "-f", "jsonl", *argv]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        row = json.loads(lines[0])
        assert row["row"] == 1 and row["error"] is None
        assert row["prices"]["mlp"] == pytest.approx(_expected(models, [TEXTS[0]])["mlp"][0], abs=0.006)


def test_csv_file_with_bad_rows(project, capsys):
    root, models = project
    path = root / "items.csv"
    path.write_text(
        "id,title,summary\n"
        f'10,a,"{TEXTS[0]}"\n'        # a quoted multi-line text is one row
        "11,b,\n"                      # empty
        "12,c,   \n"                   # blank
        "13,d\n"                       # too few fields
        f"14,e,{TEXTS[2].replace(',', ' ')}\n",
        encoding="utf-8",
    )
    assert main(["predict", "-i", str(path), "-f", "csv"]) == 0
    captured = capsys.readouterr()
    rows = _csv_rows(captured.out)
    assert [r["row"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r["id"] for r in rows] == ["10", "11", "12", "13", "14"]
    assert [r["error"] for r in rows] == ["", "empty text", "empty text", "row has 2 fields, the header has 3", ""]
    good = _expected(models, [TEXTS[0], TEXTS[2].replace(",", " ")])
    assert [float(rows[i]["mlp"]) for i in (0, 4)] == pytest.approx(good["mlp"], abs=0.006)
    assert rows[1]["mlp"] == rows[1]["resnet"] == ""
    assert rows[0]["mlp_version"] == _version(root / "models" / "mlp")
    assert "row 2: empty text" in captured.err and "row 4: row has 2 fields" in captured.err
    assert "priced 2 of 5 rows" in captured.err


def test_csv_text_column_option_and_missing_column(project, capsys):
    root, models = project
    path = root / "titles.csv"
    pd.DataFrame({"name": ["Title: lamp", "Title: drill"]}).to_csv(path, index=False)
    assert main(["predict", "-i", str(path), "-o", str(root / "out.csv")]) == 1
    assert "no column 'summary' (columns: name); choose one with --text-column" in capsys.readouterr().err
    assert not (root / "out.csv").exists()  # stopped before writing anything
    assert main(["predict", "-i", str(path), "--text-column", "name", "-f", "csv"]) == 0
    rows = _csv_rows(capsys.readouterr().out)
    assert "id" not in rows[0]
    assert [float(r["resnet"]) for r in rows] == pytest.approx(
        _expected(models, ["Title: lamp", "Title: drill"])["resnet"], abs=0.006)


def test_jsonl_file_with_bad_lines(project, capsys):
    root, models = project
    path = root / "items.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "a", "summary": TEXTS[0]}),
        "{not json",
        json.dumps({"id": "c", "summary": 42}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "e", "title": "no summary field"}),
        "",
        json.dumps({"id": "g", "summary": None}),
        json.dumps({"id": "h", "summary": TEXTS[1]}),
    ]) + "\n")
    assert main(["predict", "-i", str(path), "-f", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    by_row = {r["row"]: r for r in document["predictions"]}
    assert sorted(by_row) == [1, 2, 3, 4, 5, 7, 8]  # line numbers; the blank line 6 is no row
    assert by_row[2]["error"].startswith("not valid JSON")
    assert by_row[3]["error"] == "text is not a string (got int: '42')"
    assert by_row[4]["error"] == "not a JSON object (got list)"
    assert by_row[5]["error"] == "no 'summary' field"
    assert by_row[7]["error"] == "missing text"
    assert by_row[1]["id"] == "a" and by_row[8]["id"] == "h"
    expected = _expected(models, [TEXTS[0], TEXTS[1]])
    assert [by_row[1]["prices"]["resnet"], by_row[8]["prices"]["resnet"]] == pytest.approx(expected["resnet"], abs=0.006)
    assert document["summary"] == {"rows": 7, "priced": 2, "failed": 5}
    described = {m["label"]: m for m in document["models"]}
    assert described["mlp"]["version"] == _version(root / "models" / "mlp")
    assert described["resnet"]["mlflow_run_id"] == "run-resnet" and described["resnet"]["text_field"] == "summary"


def test_parquet_file_batched_with_progress(project, capsys):
    root, models = project
    texts = [f"Title: item {i} steel lamp pack {i % 7}" for i in range(25)]
    values = texts.copy()
    values[3], values[10] = None, " "
    path = root / "items.parquet"
    pd.DataFrame({"id": np.arange(100, 125), "summary": values}).to_parquet(path)
    assert main(["predict", "-i", str(path), "-f", "csv", "--batch-size", "4", "--progress", "on"]) == 0
    captured = capsys.readouterr()
    rows = _csv_rows(captured.out)
    assert len(rows) == 25 and rows[0]["id"] == "100"
    assert rows[3]["error"] == "missing text" and rows[10]["error"] == "empty text"
    good = [i for i in range(25) if i not in (3, 10)]
    expected = _expected(models, [texts[i] for i in good])
    assert [float(rows[i]["mlp"]) for i in good] == pytest.approx(expected["mlp"], abs=0.006)
    assert "pricing" in captured.err and "25/25" in captured.err  # the progress bar


def test_parquet_non_string_text_column(project, capsys):
    root, _ = project
    path = root / "numbers.parquet"
    pd.DataFrame({"summary": [1.5, 2.5]}).to_parquet(path)
    assert main(["predict", "-i", str(path), "-f", "jsonl"]) == 1
    captured = capsys.readouterr()
    assert "row 1: text is not a string (got float" in captured.err
    assert "no row could be priced" in captured.err


def test_output_file_and_batch_size_do_not_change_prices(project, capsys):
    root, _ = project
    path = root / "in.txt"
    path.write_text("\n".join(f"Title: thing number {i}" for i in range(9)) + "\n")
    assert main(["predict", "-i", str(path), "-f", "csv", "-o", str(root / "a.csv")]) == 0
    assert main(["predict", "-i", str(path), "-f", "csv", "-o", str(root / "b.csv"), "--batch-size", "2"]) == 0
    assert capsys.readouterr().out == ""
    a, b = _csv_rows((root / "a.csv").read_text()), _csv_rows((root / "b.csv").read_text())
    assert len(a) == 9
    assert [float(r["mlp"]) for r in a] == pytest.approx([float(r["mlp"]) for r in b], abs=0.011)


# ------------------------------------------------------------------- failures and models


def test_nothing_priceable_exits_1(project, capsys, monkeypatch):
    _stdin(monkeypatch, b"\n   \n")
    assert main(["predict"]) == 1
    err = capsys.readouterr().err
    assert "row 1: empty text" in err and "no row could be priced (2 rows read from <stdin>)" in err


def test_missing_input_and_model_are_clear_errors(project, capsys):
    root, _ = project
    assert main(["predict", "-i", "nope.csv"]) == 1
    assert "nope.csv: no such file" in capsys.readouterr().err
    assert main(["predict", "-m", "models/nothing", "a lamp"]) == 1
    assert "not a pricer model directory" in capsys.readouterr().err
    (root / "odd.xyz").write_text("x")
    assert main(["predict", "-i", "odd.xyz"]) == 1
    assert "--input-format" in capsys.readouterr().err
    assert main(["predict", "-i", "odd.xyz", "lamp"]) == 1
    assert "not both" in capsys.readouterr().err


def test_default_models_skip_a_missing_one(project, capsys):
    root, _ = project
    import shutil

    shutil.rmtree(root / "models" / "mlp")
    assert main(["predict", "-f", "csv", "a lamp"]) == 0
    captured = capsys.readouterr()
    assert "models/mlp: not found, skipped" in captured.err
    assert list(_csv_rows(captured.out)[0]) == ["row", "resnet", "error", "resnet_version"]
    shutil.rmtree(root / "models")
    assert main(["predict", "a lamp"]) == 1
    assert "no trained models found" in capsys.readouterr().err


def test_two_models_with_one_name_get_versioned_labels(project, capsys, catalogue_features):
    root, _ = project
    _save_model(root / "other" / "resnet", "resnet", catalogue_features, seed=1)
    assert main(["predict", "-f", "csv", "-m", "models/resnet", "-m", "other/resnet", "a lamp"]) == 0
    header = list(_csv_rows(capsys.readouterr().out)[0])
    first, second = _version(root / "models" / "resnet"), _version(root / "other" / "resnet")
    assert header[1:3] == [f"resnet@{first}", f"resnet@{second}"]


def test_models_command(project, capsys):
    root, _ = project
    assert main(["models", "-f", "json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert [d["label"] for d in described] == ["mlp", "resnet"]
    assert described[0]["kind"] == "mlp" and described[0]["best_epoch"] == 2
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "label" in out.splitlines()[0] and _version(root / "models" / "resnet") in out


def test_verbosity(project, capsys):
    assert main(["predict", "-q", "a lamp"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["predict", "-v", "a lamp"]) == 0
    assert "DEBUG: loaded mlp" in capsys.readouterr().err
