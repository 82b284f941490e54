"""The scratch projects of the end-to-end tests hold source files only, whatever the checkout
holds: a user who ran `dvc repro` before `pytest` (the README's order) leaves outputs in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import project_files

SOURCES = ["src/pricer/__init__.py", "stages/train.py", "dvc.yaml", "params.yaml", "pyproject.toml",
           ".dvc/config", "docs/new-page.md"]
OUTPUTS = ["dvc.lock", "metrics/mlp.json", "metrics/train/mlp.json", "metrics/history/mlp.csv", "data/raw/test.parquet",
           "models/mlp/weights.pt", "checkpoints/mlp.pt", "mlflow.db", "mlartifacts/1/x", "dvc_plots/index.html"]


def test_outputs_left_in_the_checkout_are_never_copied(tmp_path: Path):
    for relative in SOURCES + OUTPUTS:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    committed = SOURCES[:-1]  # docs/new-page.md stays uncommitted work in progress
    subprocess.run(["git", "add", *committed], cwd=tmp_path, check=True)
    assert sorted(project_files(tmp_path)) == sorted(SOURCES)
