"""``pricer predict`` output: formats, and -o written whole or not at all."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pricer.cli import main

from .conftest import TEXTS, csv_rows


def _leftovers(directory) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if ".tmp" in path.name)


def test_output_is_written_with_the_umask_s_permissions(project):
    root, _ = project
    previous = os.umask(0o022)
    try:
        assert main(["predict", "-o", str(root / "prices.csv"), *TEXTS]) == 0
        os.umask(0o027)
        assert main(["predict", "-o", str(root / "group.csv"), *TEXTS]) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((root / "prices.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "group.csv").stat().st_mode) == 0o640


def test_format_follows_the_output_extension(project, capsys):
    root, _ = project
    assert main(["predict", "-o", str(root / "prices.csv"), *TEXTS]) == 0
    assert [row["row"] for row in csv_rows((root / "prices.csv").read_text())] == ["1", "2", "3"]
    assert main(["predict", "-o", str(root / "prices.jsonl"), *TEXTS]) == 0
    assert [json.loads(line)["row"] for line in (root / "prices.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert main(["predict", "-o", str(root / "prices.txt"), *TEXTS]) == 0
    assert (root / "prices.txt").read_text().startswith("# mlp: models/mlp")  # no known extension: the table


def test_format_contradicting_the_extension_is_refused(project, capsys):
    root, _ = project
    (root / "prices.json").write_text("old")
    assert main(["predict", "-f", "csv", "-o", str(root / "prices.json"), *TEXTS]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert f"-o {root / 'prices.json'}: the extension says json, -f says csv" in err
    assert (root / "prices.json").read_text() == "old"


def test_output_that_is_the_input_is_refused(project, capsys):
    root, _ = project
    path = root / "items.csv"
    original = f'id,summary\n1,"{TEXTS[0]}"\n'
    path.write_text(original)
    (root / "link.csv").symlink_to(path)
    for output in (path, root / "link.csv"):
        assert main(["predict", "-m", "models/mlp", "-i", str(path), "-f", "csv", "-o", str(output)]) == 1
        assert f"-o {output}: is the input file; write the prices to another file" in capsys.readouterr().err
    assert path.read_text() == original


@pytest.mark.parametrize("where, message", [
    ("missing/prices.csv", "directory {root}/missing does not exist"),
    ("adir", "is a directory"),
    ("locked/prices.csv", "no permission to write in {root}/locked"),
])
def test_unwritable_output_is_a_one_line_error(project, capsys, where, message):
    root, _ = project
    (root / "adir").mkdir()
    (root / "locked").mkdir(mode=0o555)
    if where.startswith("locked") and os.access(root / "locked", os.W_OK):
        pytest.skip("running as root: permissions are not enforced")
    assert main(["predict", "-o", str(root / where), *TEXTS]) == 1
    err = capsys.readouterr().err
    assert err == f"pricer: -o {root / where}: {message.format(root=root)}\n"
    assert _leftovers(root) == [] and _leftovers(root / "locked") == []


def test_input_failing_part_way_keeps_the_old_output(project, capsys):
    root, _ = project
    items = root / "items.json"
    items.write_text("[{\"summary\": \"Title: a lamp\"}, ")  # cut short: unreadable after it was opened
    (root / "prices.csv").write_text("old prices\n")
    assert main(["predict", "-i", str(items), "-o", str(root / "prices.csv")]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert (root / "prices.csv").read_text() == "old prices\n"
    assert _leftovers(root) == []


def test_error_while_pricing_keeps_the_old_output(project, monkeypatch):
    root, _ = project
    (root / "prices.csv").write_text("old prices\n")
    (root / "in.txt").write_text("\n".join(f"Title: thing {i}" for i in range(10)) + "\n")
    calls = []

    def fails_on_the_third_batch(models, records, batch_rows):
        calls.append(len(records))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C part-way would
        return original(models, records, batch_rows)

    from pricer.cli import predict

    original = predict.predict_batch
    monkeypatch.setattr(predict, "predict_batch", fails_on_the_third_batch)
    assert main(["predict", "-i", str(root / "in.txt"), "--batch-size", "2", "-o", str(root / "prices.csv")]) == 130
    assert calls == [2, 2, 2]
    assert (root / "prices.csv").read_text() == "old prices\n"
    assert _leftovers(root) == []


def test_output_the_system_refuses_is_a_one_line_error(project, capsys, monkeypatch):
    root, _ = project

    def refused(destination):
        raise PermissionError(13, "Permission denied", str(destination))

    monkeypatch.setattr("pricer.atomic.create_temporary", refused)
    assert main(["predict", "-o", str(root / "prices.csv"), *TEXTS]) == 1
    assert capsys.readouterr().err == f"pricer: -o {root / 'prices.csv'}: cannot write: Permission denied\n"
    assert not (root / "prices.csv").exists()
