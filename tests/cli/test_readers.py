"""``pricer predict`` input: empty files, wrong formats, bytes that are not UTF-8, huge lines."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pricer.cli import main
from pricer.text import MAX_TEXT_CHARS

from .conftest import TEXTS, csv_rows, expected_prices


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"", "empty.txt: no rows to price (the input is empty)"),
    ("empty.csv", b"", "empty.csv: empty file (a CSV needs a header row)"),
    ("header.csv", b"id,summary\n", "header.csv: no rows to price (the input is empty but for its header)"),
    ("empty.jsonl", b"\n\n", "empty.jsonl: no rows to price (the input is empty)"),
    ("empty.json", b"[]", "empty.json: no rows to price (the input is empty)"),
])
def test_input_without_rows_is_an_error_and_writes_nothing(project, capsys, name, content, message):
    root, _ = project
    (root / name).write_bytes(content)
    assert main(["predict", "-i", str(root / name), "-o", str(root / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert err == f"pricer: {root / message}\n"
    assert not (root / "out.csv").exists()


def test_header_only_parquet_is_an_error(project, capsys):
    root, _ = project
    pd.DataFrame({"id": pd.Series([], dtype="int64"), "summary": pd.Series([], dtype=str)}).to_parquet(
        root / "none.parquet")
    assert main(["predict", "-i", str(root / "none.parquet")]) == 1
    assert "none.parquet: no rows to price" in capsys.readouterr().err


def test_missing_text_column_names_the_columns(project, capsys):
    root, _ = project
    pd.DataFrame({"id": [1], "title": ["lamp"], "category": ["Home"]}).to_parquet(root / "items.parquet")
    assert main(["predict", "-i", str(root / "items.parquet")]) == 1
    assert capsys.readouterr().err == (f"pricer: {root / 'items.parquet'}: no column 'summary' (columns: id, title, "
                                       "category); choose one with --text-column\n")


def test_bytes_that_are_not_utf8_fail_their_row_only(project, capsys):
    root, models = project
    path = root / "items.csv"
    path.write_bytes(b"id,summary\n1,Title: caf\xe9 lamp\n2,Title: desk lamp\n3,\xff\xfe\n")
    assert main(["predict", "-i", str(path), "-f", "csv"]) == 0
    captured = capsys.readouterr()
    rows = csv_rows(captured.out)
    assert [row["error"] for row in rows] == ["text is not valid UTF-8 (byte 0xe9 at character 11)", "",
                                              "text is not valid UTF-8 (byte 0xff at character 1)"]
    assert float(rows[1]["mlp"]) == pytest.approx(expected_prices(models, ["Title: desk lamp"])["mlp"][0], abs=0.006)
    assert "row 1: text is not valid UTF-8" in captured.err and "priced 1 of 3 rows" in captured.err


def test_non_utf8_text_and_id_are_shown_escaped(project, capsys):
    root, _ = project
    (root / "items.jsonl").write_bytes(b'{"id": "a\xff", "summary": "lamp \xfe"}\n{"id": "b", "summary": "lamp"}\n')
    assert main(["predict", "-i", str(root / "items.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "a\\xff" in out and "lamp \\xfe" in out and "text is not valid UTF-8 (byte 0xfe" in out


def test_a_huge_single_line_is_cut_as_in_training(project, capsys, monkeypatch):
    root, models = project
    huge = "Title: steel lamp " * (2 * MAX_TEXT_CHARS // 18)
    (root / "huge.txt").write_text(huge + "\n")
    assert main(["predict", "-i", str(root / "huge.txt"), "-f", "jsonl"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)
    assert row["error"] is None
    cut = expected_prices(models, [huge[:MAX_TEXT_CHARS]])
    assert row["prices"]["mlp"] == pytest.approx(cut["mlp"][0], abs=0.006)
    assert f"row 1: text of {len(huge):,} characters cut to {MAX_TEXT_CHARS:,}, as in training" in captured.err


def test_input_format_that_does_not_match_the_file(project, capsys):
    root, _ = project
    pd.DataFrame({"summary": TEXTS}).to_parquet(root / "items.parquet")
    (root / "items.csv").write_text(f'summary\n"{TEXTS[0]}"\n')
    (root / "renamed.csv").write_bytes((root / "items.parquet").read_bytes())
    assert main(["predict", "-i", str(root / "items.parquet"), "--input-format", "csv"]) == 1
    assert capsys.readouterr().err == (f"pricer: {root / 'items.parquet'}: is a parquet file, not csv; "
                                       "pass --input-format parquet\n")
    assert main(["predict", "-i", str(root / "renamed.csv")]) == 1
    assert "renamed.csv: is a parquet file, not csv" in capsys.readouterr().err
    assert main(["predict", "-i", str(root / "items.csv"), "--input-format", "parquet"]) == 1
    assert "items.csv: not a readable parquet file" in capsys.readouterr().err
    assert main(["predict", "-i", str(root / "items.csv"), "--input-format", "json"]) == 1
    assert "items.csv: not valid JSON" in capsys.readouterr().err


def test_input_that_is_a_directory(project, capsys):
    root, _ = project
    assert main(["predict", "-i", str(root / "models")]) == 1
    assert capsys.readouterr().err == f"pricer: {root / 'models'}: is a directory, not an input file\n"


def test_bounded_lines_hold_at_most_the_limit_and_count_the_rest():
    import io as text_io

    from pricer.cli.readers import bounded_lines

    handle = text_io.StringIO("short\r\n" + "x" * 25 + "\n" + "y" * 10 + "\nlast", newline="")
    assert list(bounded_lines(handle, limit=10)) == [("short", 5), ("x" * 10, 25), ("y" * 10, 10), ("last", 4)]


def test_one_text_from_stdin_is_held_at_most_a_line_deep(monkeypatch):
    import io as text_io

    from pricer.cli.readers import MAX_LINE_CHARS, Source, read_records

    huge = "Title: lamp " * (MAX_LINE_CHARS // 12 + 100)
    monkeypatch.setattr("sys.stdin", text_io.TextIOWrapper(text_io.BytesIO(huge.encode()), encoding="utf-8"))
    (record,) = read_records(Source("text", "<stdin>"), text_column="summary", id_column=None, batch_rows=10)
    assert len(record.text) == MAX_LINE_CHARS and record.length == len(huge) and huge.startswith(record.text)
