"""The scratch projects of the end-to-end tests hold source files only, whatever the checkout
holds: a user who ran `dvc repro` before `pytest` (the README's order) leaves outputs in it.
A copy of a reproduced project is a project of its own, its MLflow store included."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from pricer import tracking

from .conftest import copy_project, project_files

SOURCES = ["src/pricer/__init__.py", "stages/train.py", "dvc.yaml", "params.yaml", "pyproject.toml",
           ".dvc/config", "docs/new-page.md"]
OUTPUTS = ["dvc.lock", "metrics/mlp.json", "metrics/train/mlp.json", "metrics/history/mlp.csv", "data/raw/test.parquet",
           "models/mlp/weights.pt", "checkpoints/mlp.pt", "mlflow.db", "mlartifacts/1/x", "dvc_plots/index.html"]


def test_outputs_left_in_the_checkout_are_never_copied(tmp_path: Path):
    for relative in SOURCES + OUTPUTS:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, timeout=60)
    committed = SOURCES[:-1]  # docs/new-page.md stays uncommitted work in progress
    subprocess.run(["git", "add", *committed], cwd=tmp_path, check=True, timeout=60)
    assert sorted(project_files(tmp_path)) == sorted(SOURCES)


def _texts_naming(database: Path, text: str) -> list[str]:
    """"table.column" of every text value in an SQLite database that contains ``text``."""
    found = []
    with contextlib.closing(sqlite3.connect(database)) as connection:
        for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for column in [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")').fetchall()]:
                hits = connection.execute(f'SELECT count(*) FROM "{table}" WHERE typeof("{column}") = \'text\' '
                                          f'AND instr("{column}", ?) > 0', (text,)).fetchone()[0]
                found += [f"{table}.{column}"] * bool(hits)
    return found


@pytest.mark.e2e
def test_a_copied_project_is_its_own_with_its_own_mlflow_store(pipeline, tmp_path: Path):
    copy = copy_project(pipeline, tmp_path / "pricer")
    original = str(pipeline.root.resolve())
    assert _texts_naming(copy.root / "mlflow.db", original) == []
    artifacts = [path for path in (copy.root / "mlartifacts").rglob("*") if path.is_file()]
    assert artifacts and [str(path) for path in artifacts if original.encode() in path.read_bytes()] == []
    assert _texts_naming(copy.root / "mlflow.db", str(copy.root.resolve()))  # re-pointed, not emptied
    # pricer's store accepts it as the copy's own (it refuses a store whose artifacts are elsewhere)
    tracking.connect(tracking.resolve_tracking_uri(copy.root, environ={}), "pricer", copy.root)
    assert {run.info.run_name for run in copy.mlflow_runs()} == {run.info.run_name for run in pipeline.mlflow_runs()}
    assert copy.git_head() == pipeline.git_head()
    assert json.loads(copy.dvc("status", "--json").stdout) == {}  # the same outputs, up to date
