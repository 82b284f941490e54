"""Interruption end to end, with the real stage scripts on a tiny project (bigger than the shared
pipeline, untracked, only fetched and vectorized by dvc): a stage SIGKILLed at any write leaves
each output absent, old, or complete and loadable, never half-written; leftovers are hidden
temporaries, cleaned by the next run. A training run killed after a checkpoint resumes
(``train.resume: true``) and ends with exactly the weights and metrics of an uninterrupted run;
SIGTERM marks the stage's MLflow run KILLED; data-parallel workers die with their stage.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from helpers import run_stage_forked, start_stage_forked

from pricer.features import read_manifest
from pricer.predictor import PricePredictor

from .conftest import Project, make_project, snapshot

pytestmark = pytest.mark.e2e

HIDDEN_TEMPORARY = re.compile(r"^\..+\.(tmp.*|old)$")  # what pricer.atomic writes before the rename


def _kill_at_write(kill_at: int, write_log: str | None) -> None:
    """Count the writes of the stage this process runs next under its output folders (audit events
    fire just before the operation) and SIGKILL the process at write number ``kill_at`` (0: never);
    ``write_log`` lists them."""
    log = open(write_log, "w", buffering=1) if write_log else None  # noqa: SIM115 (open until the process ends)
    watched = tuple(folder + os.sep for folder in ("data", "models", "metrics", "checkpoints"))
    events = {"open", "os.rename", "os.mkdir"}  # creations, writes and renames (os.replace is os.rename)
    count = 0

    def hook(event: str, args: tuple) -> None:
        nonlocal count
        if event not in events or not isinstance(args[0], str | bytes | os.PathLike):
            return
        if event == "open":
            mode, flags = args[1], args[2]
            writing = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if not writing:
                return
        path = os.path.relpath(os.path.abspath(os.fsdecode(args[0])))
        if not path.startswith(watched):
            return
        count += 1
        if log:
            log.write(f"{count}\t{event}\t{path}\n")
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


RESUME_EPOCHS = 5


@pytest.fixture(scope="module")
def vectorized_project(tmp_path_factory) -> Project:
    project = make_project(
        tmp_path_factory.mktemp("pricer-interrupt"),
        {"data": {"synthetic_items": 2000}, "vectorize": {"n_jobs": 1},
         "resnet": {"hidden": 32, "epochs": RESUME_EPOCHS},
         "train": {"device": "cpu"}, "tracking": {"enabled": False}},
    )
    project.dvc("repro", "vectorize")
    return project


# The stages below run in processes forked from one that imported torch and pricer once
# (helpers.start_stage_forked): each dies as a stage process does, without a fresh interpreter's
# seconds of imports before its first write.

def writes_of(project: Project, stage: list[str], tmp_path: Path) -> tuple[list[list[str]], float]:
    """Run ``stage`` to completion, listing its writes; and how long it took."""
    log = tmp_path / "writes.log"
    started = time.monotonic()
    status = run_stage_forked(project.root, *stage, environment=project.env,
                              before=functools.partial(_kill_at_write, 0, str(log)))
    assert status == 0, f"{' '.join(stage)} failed ({status}): its output is in the captured stderr"
    return [line.split("\t") for line in log.read_text().splitlines()], time.monotonic() - started


def killed_at_write(project: Project, stage: list[str], number: int) -> None:
    status = run_stage_forked(project.root, *stage, environment=project.env,
                              before=functools.partial(_kill_at_write, number, None))
    assert status == -signal.SIGKILL, (number, status)


def killed_after(project: Project, stage: list[str], seconds: float) -> None:
    """SIGKILL ``stage`` ``seconds`` after it starts."""
    process = start_stage_forked(project.root, *stage, environment=project.env)
    process.join(seconds)
    process.kill()
    process.join(30)


def kill_moments(writes: list[list[str]], groups: tuple[str, ...], seed: int) -> list[int]:
    """One write (by number) per output group, drawn with ``seed``: every output is hit mid-write."""
    rng = random.Random(seed)
    moments = []
    for group in groups:
        numbers = [int(number) for number, _, path in writes if re.search(group, path)]
        assert numbers, (group, writes)
        moments.append(rng.choice(numbers))
    return sorted(set(moments))


def assert_each_output_old_or_complete(root: Path, before: dict[str, bytes], loaders: dict[str, callable],
                                       folders: tuple[str, ...], context: str) -> None:
    for relative, load in loaders.items():
        path = root / relative
        if not path.exists():
            continue  # absent: the writer had not got there (or was between two renames)
        if path.is_file() and before.get(relative) == path.read_bytes():
            continue  # old
        try:
            load(path)  # new: must be complete
        except Exception as error:
            pytest.fail(f"{context}: {relative} is half-written: {type(error).__name__}: {error}")
    expected = {Path(relative).name for relative in loaders}
    for folder in folders:
        for entry in (root / folder).iterdir() if (root / folder).is_dir() else []:
            allowed = entry.name in expected or entry.name in ("train", "history", ".gitignore")
            assert allowed or HIDDEN_TEMPORARY.match(entry.name), f"{context}: stray {entry}"


def leftovers(root: Path, folders: tuple[str, ...]) -> list[str]:
    return [str(entry) for folder in folders if (root / folder).is_dir()
            for entry in (root / folder).iterdir() if HIDDEN_TEMPORARY.match(entry.name)]


def _load_parts(path: Path) -> None:
    """A split's matrix directory: its manifest and every part it lists."""
    for part in read_manifest(path.parent, path.name)["parts"]:
        sp.load_npz(path / part["file"])


VECTORIZE_LOADERS = {
    **{f"data/features/{s}": _load_parts for s in ("train", "validation", "test")},
    **{f"data/features/{s}.parquet": pd.read_parquet for s in ("train", "validation", "test")},
}


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _load_history(path: Path) -> None:
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["epoch", "train_loss", "val_loss", "val_mae", "lr"] and len(frame) >= 1


def _load_checkpoint(path: Path) -> None:
    assert torch.load(path, map_location="cpu", weights_only=True)["history"]


TRAIN_LOADERS = {
    "models/resnet": PricePredictor.load,
    "checkpoints/resnet.pt": _load_checkpoint,
    "metrics/history/resnet.csv": _load_history,
    "metrics/train/resnet.json": lambda path: _load_json(path)["best_epoch"],
}
TRAIN_FOLDERS = ("models", "checkpoints", "metrics", "metrics/history", "metrics/train")


def test_killed_vectorize_leaves_each_output_old_or_complete(vectorized_project, tmp_path):
    project = vectorized_project
    stage = ["stages/vectorize.py"]
    original = snapshot(project.root, ("data/features/**/*",))
    writes, seconds = writes_of(project, stage, tmp_path)
    project.set_params({"vectorize": {"binary": False}})  # new outputs differ from the old ones
    try:
        moments = kill_moments(writes, (r"\.train\..*part-\d+\.npz", r"validation\.parquet",
                                        r"\.test\..*manifest\.json"), seed=5)
        for number in moments:
            before = snapshot(project.root, ("data/features/**/*",))
            killed_at_write(project, stage, number)
            assert_each_output_old_or_complete(project.root, before, VECTORIZE_LOADERS, ("data/features",),
                                               f"killed at write {number} {writes[number - 1]}")
        before = snapshot(project.root, ("data/features/**/*",))
        killed_after(project, stage, random.Random(6).uniform(0.5, 0.95) * seconds)
        assert_each_output_old_or_complete(project.root, before, VECTORIZE_LOADERS, ("data/features",),
                                           "killed at random")
    finally:
        project.run("git", "checkout", "params.yaml")
    # the next `dvc repro` notices the changed folder and restores it exactly, leftovers gone
    project.dvc("repro", "vectorize")
    assert leftovers(project.root, ("data/features",)) == []
    assert snapshot(project.root, ("data/features/**/*",)) == original


@pytest.mark.parametrize("settings", [
    {},
    # two data-parallel ranks (each with its own dropout stream) and the lazy input optimizer
    # (its moments, step count and float64 decay log in the checkpoint, its own gradient averaging)
    {"train": {"processes": 2}, "resnet": {"input_optimizer": "lazy"}},
], ids=["one-process", "two-processes-lazy"])
def test_training_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(vectorized_project, tmp_path,
                                                                                 settings):
    project = vectorized_project
    stage = [sys.executable, "stages/train.py", "resnet"]
    checkpoint = project.root / "checkpoints/resnet.pt"
    results = ("models/resnet/weights.pt", "models/resnet/model.json", "metrics/train/resnet.json",
               "metrics/history/resnet.csv")
    project.set_params({"train": {"resume": True}})
    project.set_params(settings)
    try:
        checkpoint.unlink(missing_ok=True)
        project.run_stage_here("train.py", "resnet")  # the reference: its process is not under test
        uninterrupted = {path: (project.root / path).read_bytes() for path in results}

        checkpoint.unlink()
        process = project.start(*stage, log=tmp_path / "killed.log")
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
        completed = len(torch.load(checkpoint, map_location="cpu", weights_only=True)["history"])
        assert 1 <= completed < RESUME_EPOCHS, f"killed after {completed} of {RESUME_EPOCHS} epochs"

        done = project.run(*stage)
        assert f"resuming after epoch {completed}" in done.stderr
        resumed_epochs = re.findall(rf"resnet epoch (\d+)/{RESUME_EPOCHS}", done.stderr)
        assert resumed_epochs == [str(e) for e in range(completed + 1, RESUME_EPOCHS + 1)]
        for path in results:
            assert (project.root / path).read_bytes() == uninterrupted[path], f"{path} differs after resuming"
    finally:
        project.run("git", "checkout", "params.yaml")


def test_killed_training_leaves_each_output_old_or_complete_and_the_next_run_cleans_up(vectorized_project, tmp_path):
    project = vectorized_project
    stage = ["stages/train.py", "resnet"]
    outputs = ("models/resnet/*", "checkpoints/*", "metrics/*/resnet.*")
    try:
        project.set_params({"resnet": {"epochs": 2}})
        if not (project.root / "models/resnet").exists():
            project.run_stage_here("train.py", "resnet")  # outputs to kill over: set-up
        project.set_params({"lr": 0.003})
        writes, seconds = writes_of(project, stage, tmp_path)  # the writes over existing outputs: the "old" ones
        project.set_params({"lr": 0.005})
        before = snapshot(project.root, outputs)
        killed_after(project, stage, random.Random(8).uniform(0.5, 0.95) * seconds)
        assert_each_output_old_or_complete(project.root, before, TRAIN_LOADERS, TRAIN_FOLDERS, "killed at random")

        # the model folder's swap: old folder renamed aside, new one not yet in place
        (dir_swap,) = [int(n) for n, event, path in writes
                       if event == "os.rename" and re.match(r"models/\.resnet\.[^/]*\.tmp$", path)]
        moments = kill_moments(writes,
                               (r"^checkpoints/", r"^models/\.resnet\.[^/]*\.tmp/\.weights", r"^metrics/train/"),
                               seed=7)
        for number in [m for m in moments if m != dir_swap] + [dir_swap]:
            before = snapshot(project.root, outputs)
            killed_at_write(project, stage, number)
            assert_each_output_old_or_complete(project.root, before, TRAIN_LOADERS, TRAIN_FOLDERS,
                                               f"killed at write {number} {writes[number - 1]}")
        assert not (project.root / "models/resnet").exists() and leftovers(project.root, TRAIN_FOLDERS)

        done = project.run_stage_here("train.py", "resnet")  # the next run completes and removes the leftovers
        assert "left by an interrupted run" in done.stderr
        assert leftovers(project.root, TRAIN_FOLDERS) == []
        for relative, load in TRAIN_LOADERS.items():
            load(project.root / relative)
    finally:
        project.run("git", "checkout", "params.yaml")


def _wait_for(predicate, timeout: float, process, log: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not predicate():
        state = "still running: killed" if process.poll() is None else f"exited with {process.returncode}"
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # started in a session of its own (Project.start)
            process.wait(timeout=30)
        pytest.fail(f"waited {timeout:g} s for {what} ({state}):\n{log.read_text()[-2000:]}")


def test_sigterm_to_a_train_stage_marks_its_mlflow_run_killed_and_keeps_the_old_outputs(vectorized_project, tmp_path):
    project = vectorized_project
    log = tmp_path / "train.log"
    try:
        project.set_params({"tracking": {"enabled": True}, "resnet": {"epochs": 3}})
        before = snapshot(project.root, ("models/resnet/*", "metrics/*/resnet.*"))
        process = project.start(sys.executable, "stages/train.py", "resnet", log=log)
        _wait_for(lambda: "resnet epoch 1/" in log.read_text(), 300, process, log, "the stage's first epoch")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()[-2000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
        (run,) = [r for r in project.mlflow_runs() if r.data.tags.get("model") == "resnet"]
        assert run.info.status == "KILLED"
        assert snapshot(project.root, ("models/resnet/*", "metrics/*/resnet.*")) == before
    finally:
        project.run("git", "checkout", "params.yaml")


def test_data_parallel_workers_die_with_a_killed_stage(vectorized_project, tmp_path):
    psutil = pytest.importorskip("psutil")
    project = vectorized_project
    log = tmp_path / "ddp.log"
    try:
        project.set_params({"train": {"processes": 2}, "mlp": {"epochs": 50}})
        process = project.start(sys.executable, "stages/train.py", "mlp", log=log)
        _wait_for(lambda: "mlp epoch 1/" in log.read_text(), 300, process, log, "the stage's first epoch")
        workers = [child for child in psutil.Process(process.pid).children(recursive=True)
                   if "stages/train.py" in " ".join(child.cmdline())]
        assert len(workers) >= 2, log.read_text()[-2000:]
        process.kill()  # the stage alone, as a crash or the OOM killer would: not its process group
        process.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"orphaned workers: {[p.pid for p in alive]}"
        checkpoint = project.root / "checkpoints/mlp.pt"
        stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        time.sleep(3)
        assert (checkpoint.stat().st_mtime_ns if checkpoint.exists() else None) == stamp, "written after the kill"
    finally:
        project.run("git", "checkout", "params.yaml")
