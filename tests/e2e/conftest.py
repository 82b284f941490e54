"""End-to-end fixtures: throwaway git + DVC copies of this repository with tiny params.

The real ``dvc`` commands run there, in subprocesses, with this interpreter's environment, so the
stage commands (``python stages/...``) use the same installed pricer. Those stage commands, and
``pricer`` commands, fork from this test process's zygote (``stage_zygote``: tests/zygote.py), an
interpreter that imported torch, MLflow and pricer once, instead of spending 5-7 CPU-seconds of
imports each: to ``dvc`` and the test they are the same commands (exit status, output, signals).
The shared ``pipeline`` is reproduced by new interpreters, as a user's ``dvc repro`` is.

A ``dvc repro`` costs about a minute on a loaded 2-core machine; a copy of a reproduced project
costs about a second. So one pipeline is reproduced per test session and shared:

- ``pipeline`` (session): ``make_project`` on ``TINY_PARAMS`` after one ``dvc repro``, outputs not
  committed, for the tests that only read its state (outputs, MLflow runs, ``dvc`` commands that
  change nothing). Never change it. ``pipeline_repro_output`` is that repro's stdout + stderr.
  It is built once per test run, also under pytest-xdist (``built_once``: the first worker that
  needs it builds it, the others wait for it).
- ``copy_project(source, destination)``: an independent copy (git history, DVC cache, outputs,
  and the MLflow store with its artifact locations re-pointed at the copy). A test that changes a
  project (a commit, an experiment, an edit, a stage run, a promotion) works on its own copy, e.g.
  ``copy_project(pipeline, tmp_path / "pricer")``.
- ``experiments`` (session): a copy of ``pipeline`` after the commands that the README and
  docs/comparing.md both begin with (``walkthroughs.shared_start``: the baseline committed, then
  ``dvc exp run --temp -n half-lr -S lr=0.0005`` and ``dvc exp run --temp -n mlp-fast -S
  mlp.lr=0.005``), and each command's output. Read-only too: both walks go on from copies of it.
- ``comparing`` (session): the rest of docs/comparing.md walked once (its queue block is the
  suite's sweep: see walkthroughs.py). Read-only too.
- ``make_project(root, overrides)``: a fresh project, for other params (then ``dvc repro`` it
  yourself, or only the stages you need).

Waits are bounded: ``Project.run`` (``run_bounded``) has a timeout and fails saying which command
it waited for. Commands write their output to files, never to pipes this process reads: a
background process they leave behind (a ``dvc queue`` worker) cannot keep a test waiting for an
end of file.
``Project.start`` sends a background command's output to a log file; ``stop_queue_workers`` ends
the ``dvc queue`` workers a test started.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from filelock import FileLock
from filelock import Timeout as FileLockTimeout
from helpers import as_its_command, deep_merge, run_stage_here, run_stage_ranks
from zygote import SOCKET_ENV, Zygote

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY_PARAMS = {
    "data": {"synthetic_items": 800},
    "mlp": {"epochs": 2},
    "resnet": {"hidden": 32, "layers": 3, "epochs": 2},
    # on CPU wherever the tests run: the byte-for-byte promise is a CPU one (docs/guarantees.md)
    "train": {"progress": False, "device": "cpu"},
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
        cwd=root, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split("\0")
    return [f for f in listed if f and (root / f).is_file() and not f.endswith(".pyc")]


# This process's environment before any test ran: what an in-process test sets there (Dask's and
# torchrun's OMP_NUM_THREADS=1) never reaches the commands of a later test.
SESSION_ENVIRONMENT = dict(os.environ)


def command_environment() -> dict[str, str]:
    """What the scratch projects' commands run with: this test session's starting environment with
    this interpreter's ``bin`` first on PATH, no MLflow or DVC settings, a test identity for git."""
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in SESSION_ENVIRONMENT.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    return env | {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "CI": "true",
                  "GIT_AUTHOR_NAME": "pricer-test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                  "GIT_COMMITTER_NAME": "pricer-test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
                  # torch's OpenMP threads wait asleep, not spinning: the suite runs more processes
                  # than the machine has cores, where a spinning thread burns the CPU that the thread
                  # it waits for needs (about 12% of a training's CPU time). Results are unchanged.
                  "OMP_WAIT_POLICY": "PASSIVE"}


# This test process's zygote (tests/zygote.py), once the session fixture `stage_zygote` started it.
_zygote: Zygote | None = None


class Project:
    """A scratch pricer project; ``run`` executes a command there and returns its output. Its
    commands' ``python stages/...`` and ``pricer`` fork from this test process's zygote
    (tests/zygote.py) when one runs (``fresh_interpreters`` gives a copy whose commands never do)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = command_environment()
        if _zygote is not None:
            self.env = _zygote.forking(self.env)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a command here (``run_bounded``); fail with its output if it fails and ``check``."""
        done = run_bounded(args, cwd=self.root, env=self.env, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def dvc(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, **kwargs)

    def run_stage_here(self, script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``python stages/<script> <args>`` run in this test's own process, in the project and its
        environment (helpers.run_stage_here: for tests of what a stage writes and says, not of its
        process); its status, stdout and stderr. With ``check`` (the default) a failure fails the
        test with its output."""
        return run_stage_here(self.root, f"stages/{script}", *args, environment=self.env, check=check)

    def run_stage_ranks(self, script: str, *args: str, world_size: int = 2) -> list[str]:
        """The stage's ``world_size`` data-parallel ranks, as torchrun would start them on this
        machine, forked from a server that imported torch and pricer once (helpers.run_stage_ranks);
        each rank's stderr."""
        return run_stage_ranks(self.root, f"stages/{script}", *args, environment=self.env, world_size=world_size)

    def cli_here(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``pricer <args>`` run in this test's own process (``pricer.cli.main``, which logs to
        whatever sys.stderr is), in the project and its environment: its status, stdout and stderr,
        as ``run`` gives them. For tests of what a command prints and returns, not of its process:
        a new interpreter spends seconds importing DVC, pandas, torch and pricer. (The `pricer`
        command itself runs in the docs' walks and tests/cli/test_app.py.)"""
        from pricer.cli import main

        stdout, stderr = io.StringIO(), io.StringIO()
        with (as_its_command(self.root, self.env), contextlib.redirect_stdout(stdout),
              contextlib.redirect_stderr(stderr)):
            status = main(list(args))
        done = subprocess.CompletedProcess(["pricer", *args], status, stdout.getvalue(), stderr.getvalue())
        if check and status != 0:
            raise AssertionError(f"pricer {' '.join(args)} failed ({status}):\n{done.stdout}\n{done.stderr}")
        return done

    def fresh_interpreters(self) -> Project:
        """This project, its commands' ``python`` and ``pricer`` started as new interpreters
        (``self`` unchanged)."""
        return self.with_env({SOCKET_ENV: ""})

    def with_env(self, env: Mapping[str, str]) -> Project:
        """This project, its commands run with ``env`` added to their environment (``self`` unchanged)."""
        other = Project(self.root)
        other.env = self.env | dict(env)
        return other

    def start(self, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a command in the background, in its own process group (``os.killpg`` ends it
        and its children), with stdout and stderr going to ``log``."""
        with open(log, "w") as handle:
            return subprocess.Popen(args, cwd=self.root, env=self.env | (env or {}), stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def stop_queue_workers(self) -> None:
        """Have the ``dvc queue`` workers started here exit (they run detached, outside any process
        group a test could kill). Not ``--kill``: that signals the process ids the queue recorded
        for its tasks, which, once a task has ended, may belong to another process by now."""
        self.dvc("queue", "stop", check=False, timeout=120)

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


def run_bounded(args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command in its own process group for at most ``timeout`` seconds (then the group is
    killed and the test fails, naming the command). Its output goes to files: a background
    process it starts and leaves running (a ``dvc queue`` worker, a browser's helper) cannot hold
    this test's pipes open, so nothing waits for an end of file that never comes."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(list(args), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            timed_out = process.returncode is None  # or the test was interrupted: end it either way
            if timed_out:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        stdout, stderr = (_read(handle) for handle in (out, err))
    if timed_out:
        raise AssertionError(f"waited {timeout:g} s for `{' '.join(args)}` to exit in {cwd}; killed it:\n"
                             f"--- stdout:\n{stdout[-3000:]}\n--- stderr:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(list(args), process.returncode, stdout, stderr)


def _read(handle) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", errors="replace")


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


def copy_project(source: Project, destination: Path) -> Project:
    """An independent copy of ``source`` at ``destination``: its git history, DVC cache and
    outputs, and its MLflow store, whose artifact locations (in ``mlflow.db`` and in each logged
    model's ``MLmodel``) are re-pointed at the copy, as the store's owner would have made them
    there. DVC's scratch folder (``.dvc/tmp``: locks, queue state) and a git lock file (a command
    running in ``source`` meanwhile) are not copied."""
    transient = {source.root / ".dvc": {"tmp"}, source.root / ".git": {"index.lock"}}

    def scratch(directory: str, names: list[str]) -> list[str]:
        return [name for name in names if name in transient.get(Path(directory), ())]

    shutil.copytree(source.root, destination, symlinks=True, ignore=scratch)
    old, new = f"{source.root.resolve()}/", f"{destination.resolve()}/"
    store = destination / "mlflow.db"
    if store.exists():
        with contextlib.closing(sqlite3.connect(store)) as database, database:
            for (table,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                for column in [row[1] for row in database.execute(f'PRAGMA table_info("{table}")').fetchall()]:
                    database.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE '
                                     f'typeof("{column}") = \'text\' AND instr("{column}", ?) > 0', (old, new, old))
    for model in (destination / "mlartifacts").rglob("MLmodel"):
        model.write_text(model.read_text().replace(old, new))
    return Project(destination)


def snapshot(root: Path, patterns: Sequence[str]) -> dict[str, bytes]:
    """The bytes of each file under ``root`` that matches one of the glob ``patterns``, by relative path."""
    return {str(path.relative_to(root)): path.read_bytes()
            for pattern in patterns for path in sorted(root.glob(pattern)) if path.is_file()}


SHARED_BUILD_WAIT_S = 1800


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], str]) -> tuple[Path, str]:
    """``build(directory)`` once per test run: in whichever pytest-xdist worker asks first, while
    the others wait for it (at most ``SHARED_BUILD_WAIT_S``). The directory, and the text that
    ``build`` returned."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's, not a worker's
    directory, text, built = shared / name, shared / f"{name}.output", shared / f"{name}.built"
    try:
        with FileLock(shared / f"{name}.lock", timeout=SHARED_BUILD_WAIT_S):
            if not built.exists():
                shutil.rmtree(directory, ignore_errors=True)  # left by a build that failed
                text.write_text(build(directory))
                built.touch()
    except FileLockTimeout:
        pytest.fail(f"waited {SHARED_BUILD_WAIT_S} s for another test worker to build the shared {name} project")
    return directory, text.read_text()


@pytest.fixture(scope="session", autouse=True)
def stage_zygote(tmp_path_factory) -> Iterator[Zygote]:
    """This test process's zygote (tests/zygote.py), which the scratch projects' stage commands
    and ``pricer`` commands fork from."""
    global _zygote
    started = Zygote(tmp_path_factory.mktemp("zygote"), command_environment())
    _zygote = started
    try:
        yield started
    finally:
        _zygote = None
        started.close()


def _reproduce(directory: Path) -> str:
    # new interpreters, as a user's `dvc repro` starts: the suite's one run of every stage without the zygote
    done = make_project(directory).fresh_interpreters().dvc("repro")
    return done.stdout + done.stderr


@pytest.fixture(scope="session")
def _reproduced(tmp_path_factory) -> tuple[Project, str]:
    directory, output = built_once(tmp_path_factory, "pipeline", _reproduce)
    return Project(directory), output


@pytest.fixture(scope="session")
def pipeline(_reproduced) -> Project:
    """The test run's one reproduced tiny project (outputs not committed): read it, never change it."""
    return _reproduced[0]


@pytest.fixture(scope="session")
def pipeline_repro_output(_reproduced) -> str:
    """The stdout and stderr of ``pipeline``'s ``dvc repro``."""
    return _reproduced[1]


@pytest.fixture(scope="session")
def experiments(pipeline, tmp_path_factory) -> tuple[Project, dict[str, str]]:
    """A copy of ``pipeline`` after ``walkthroughs.shared_start`` (the baseline committed, then the
    experiments ``half-lr`` and ``mlp-fast``, both ``--temp``: the workspace holds the baseline), and
    each command's stdout + stderr by command: read it, never change it (copy it first)."""
    from .walkthroughs import start_experiments  # a module built on this one's Project helpers

    directory, outputs = built_once(tmp_path_factory, "experiments", functools.partial(start_experiments, pipeline))
    return Project(directory / "pricer"), dict(json.loads(outputs))


@pytest.fixture(scope="session")
def comparing(experiments, tmp_path_factory) -> tuple[Path, str]:
    """docs/comparing.md walked once per test run (``walkthroughs.follow_comparing``) from a copy of
    ``experiments``: the directory that holds the walked project (``pricer``), the sweep's copy
    taken after the page's queue block (``swept``), the concurrent reader's report and the queued
    experiments' names; and the blocks' output. Read it, never change it (copy it first)."""
    from .walkthroughs import follow_comparing  # a module built on this one's Project helpers

    return built_once(tmp_path_factory, "comparing", functools.partial(follow_comparing, experiments[0]))


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """A team's services on 127.0.0.1 (team_services.py: PostgreSQL, moto's S3, ``mlflow server``
    with logins): one set for each test module that asks, so that two such modules run side by side."""
    from .team_services import team_services  # it builds on this module's Project helpers

    with team_services(tmp_path_factory.mktemp("team-services")) as running_services:
        yield running_services
