"""``pricer predict``: inputs, outputs and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import pricer
from pricer.cli import main

from .conftest import ARCHS, TEXTS, csv_rows, expected_prices, feed_stdin, weights_version


def test_text_arguments_priced_by_both_default_models(project, capsys):
    root, models = project
    assert main(["predict", *TEXTS]) == 0
    captured = capsys.readouterr()
    out = captured.out
    for name in ARCHS:
        assert f"# {name}: models/{name} (version {weights_version(root / 'models' / name)})" in out
    expected = expected_prices(models, TEXTS)
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
    feed_stdin(monkeypatch, ("\n".join(t.replace("\n", " ") for t in TEXTS) + "\n").encode())
    assert main(["predict", "-f", "csv"]) == 0
    rows = csv_rows(capsys.readouterr().out)
    assert [r["row"] for r in rows] == ["1", "2", "3"]
    flat = [t.replace("\n", " ") for t in TEXTS]
    assert [float(r["resnet"]) for r in rows] == pytest.approx(expected_prices(models, flat)["resnet"], abs=0.006)


def test_stdin_as_one_product(project, capsys, monkeypatch):
    _, models = project
    for argv in (["--input-format", "text"], ["--input-format", "text", "-"], ["--input-format", "text", "-i", "-"]):
        feed_stdin(monkeypatch, TEXTS[0].encode())
        assert main(["predict", "-f", "jsonl", *argv]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        row = json.loads(lines[0])
        assert row["row"] == 1 and row["error"] is None
        assert row["prices"]["mlp"] == pytest.approx(expected_prices(models, [TEXTS[0]])["mlp"][0], abs=0.006)


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
    rows = csv_rows(captured.out)
    assert [r["row"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r["id"] for r in rows] == ["10", "11", "12", "13", "14"]
    assert [r["error"] for r in rows] == ["", "empty text", "empty text", "row has 2 fields, the header has 3", ""]
    good = expected_prices(models, [TEXTS[0], TEXTS[2].replace(",", " ")])
    assert [float(rows[i]["mlp"]) for i in (0, 4)] == pytest.approx(good["mlp"], abs=0.006)
    assert rows[1]["mlp"] == rows[1]["resnet"] == ""
    assert rows[0]["mlp_version"] == weights_version(root / "models" / "mlp")
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
    rows = csv_rows(capsys.readouterr().out)
    assert "id" not in rows[0]
    assert [float(r["resnet"]) for r in rows] == pytest.approx(
        expected_prices(models, ["Title: lamp", "Title: drill"])["resnet"], abs=0.006)


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
    expected = expected_prices(models, [TEXTS[0], TEXTS[1]])
    assert [by_row[1]["prices"]["resnet"], by_row[8]["prices"]["resnet"]] == pytest.approx(expected["resnet"],
                                                                                          abs=0.006)
    assert document["summary"] == {"rows": 7, "priced": 2, "failed": 5}
    described = {m["label"]: m for m in document["models"]}
    assert described["mlp"]["version"] == weights_version(root / "models" / "mlp")
    assert described["resnet"]["mlflow_run_id"] is None  # no MLflow store in this project
    assert described["resnet"]["text_field"] == "summary"


def test_parquet_file_batched_with_progress(project, capsys):
    root, models = project
    texts = [f"Title: item {i} steel lamp pack {i % 7}" for i in range(25)]
    values = texts.copy()
    values[3], values[10] = None, " "
    path = root / "items.parquet"
    pd.DataFrame({"id": np.arange(100, 125), "summary": values}).to_parquet(path)
    assert main(["predict", "-i", str(path), "-f", "csv", "--batch-size", "4", "--progress", "on"]) == 0
    captured = capsys.readouterr()
    rows = csv_rows(captured.out)
    assert len(rows) == 25 and rows[0]["id"] == "100"
    assert rows[3]["error"] == "missing text" and rows[10]["error"] == "empty text"
    good = [i for i in range(25) if i not in (3, 10)]
    expected = expected_prices(models, [texts[i] for i in good])
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
    a, b = csv_rows((root / "a.csv").read_text()), csv_rows((root / "b.csv").read_text())
    assert len(a) == 9
    assert [float(r["mlp"]) for r in a] == pytest.approx([float(r["mlp"]) for r in b], abs=0.011)


def test_nothing_priceable_exits_1(project, capsys, monkeypatch):
    feed_stdin(monkeypatch, b"\n   \n")
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


def test_parquet_output_carries_each_price_with_its_range(project, capsys, tmp_path):
    _, models = project
    output = tmp_path / "prices.parquet"
    bad = "   "
    assert main(["predict", "-o", str(output), *TEXTS, bad]) == 0
    frame = pd.read_parquet(output)
    assert list(frame.columns) == ["row", "mlp", "mlp_low", "mlp_high", "resnet", "resnet_low", "resnet_high",
                                   "error", "mlp_version", "resnet_version"]
    expected = expected_prices(models, TEXTS)
    for name in ARCHS:
        priced = frame[name].iloc[:3].to_numpy()
        np.testing.assert_allclose(priced, expected[name], rtol=1e-6)
        assert (frame[f"{name}_low"].iloc[:3] <= priced).all() and (priced <= frame[f"{name}_high"].iloc[:3]).all()
    assert frame["row"].tolist() == [1, 2, 3, 4]
    assert frame[["mlp", "resnet_low"]].iloc[3].isna().all() and frame["error"].iloc[3] == "empty text"


def test_parquet_needs_a_file(project, capsys):
    assert main(["predict", "-f", "parquet", *TEXTS]) == 1
    assert capsys.readouterr().err == "pricer: -f parquet writes a binary file: name it with -o FILE.parquet\n"
