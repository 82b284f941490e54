"""End-to-end fixtures: a throwaway git + DVC copy of this repository with tiny params.

The real ``dvc`` commands run there, in subprocesses, with this interpreter's environment, so the
stage commands (``python stages/...``) use the same installed pricer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import deep_merge

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY_PARAMS = {
    "data": {"synthetic_items": 800},
    "mlp": {"epochs": 2},
    "resnet": {"hidden": 32, "layers": 3, "epochs": 2},
    "train": {"progress": False},
}


# What a scratch project is built from: the project's source files, never pipeline outputs.
SOURCE_PATHS = ("src/", "stages/", ".dvc/config", ".dvc/plots/", ".dvcignore", ".gitignore", "dvc.yaml",
                "params.yaml", "pyproject.toml", "README.md", "docs/")


def project_files(root: Path = REPO_ROOT) -> list[str]:
    """The source files of this checkout, committed or not (the work in progress is what is
    tested), whatever state the working tree is in: outputs that `dvc repro` left in it
    (metrics, dvc.lock, data, models, mlflow.db) are never copied."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *SOURCE_PATHS],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    return [f for f in listed if f and (root / f).is_file() and not f.endswith(".pyc")]


class Project:
    """A scratch pricer project; ``run`` executes a command there and returns its output."""

    def __init__(self, root: Path) -> None:
        self.root = root
        bin_dir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
        self.env |= {"PATH": f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}", "CI": "true",
                     "GIT_AUTHOR_NAME": "pricer-test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                     "GIT_COMMITTER_NAME": "pricer-test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def dvc(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, **kwargs)

    def start(self, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a command in the background, in its own process group (``os.killpg`` ends it
        and its children), with stdout and stderr going to ``log``."""
        with open(log, "w") as handle:
            return subprocess.Popen(args, cwd=self.root, env=self.env | (env or {}), stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def git_head(self) -> str:
        return self.run("git", "rev-parse", "HEAD").stdout.strip()

    def read_json(self, relative: str) -> dict:
        return json.loads((self.root / relative).read_text())

    def set_params(self, overrides: dict) -> None:
        path = self.root / "params.yaml"
        path.write_text(yaml.safe_dump(deep_merge(yaml.safe_load(path.read_text()), overrides), sort_keys=False))

    def mlflow_runs(self) -> list:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{self.root / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("pricer")
        return client.search_runs([experiment.experiment_id]) if experiment else []


def make_project(root: Path, overrides: dict | None = None) -> Project:
    for relative in project_files():
        destination = root / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, destination)
    project = Project(root)
    project.set_params(deep_merge(TINY_PARAMS, overrides or {}))
    project.run("git", "init", "-q", "-b", "main")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "tiny pricer project")
    return project


@pytest.fixture(scope="module")
def reproduced_project(tmp_path_factory) -> Project:
    """A project on which ``dvc repro`` has run once (shared by a module's tests)."""
    project = make_project(tmp_path_factory.mktemp("pricer-e2e"))
    project.dvc("repro")
    return project
