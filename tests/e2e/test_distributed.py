"""Data-parallel training with torchrun: 2 CPU processes (gloo) against 1, same data and recipe,
on train splits whose rows do not divide evenly between the ranks."""

from __future__ import annotations

import pandas as pd
import pytest

from pricer.predictor import PricePredictor

from .conftest import Project, make_project

pytestmark = pytest.mark.e2e

# The MLP has no dropout, and each step's two parts (each rank's rows of the batch, from its own
# half of the train rows) are together exactly the single process's batch of 64 (see
# pricer.batching.share_of_epoch); the ranks sum their parts of the batch-mean gradient, which
# is the full-batch gradient up to float rounding (1e-7 relative per step), far below the
# run-to-run spread of the validation MAE, so 2% leaves room for rounding to grow over 4 epochs
# and still catches any real difference in what the ranks train on.
MLP_RELATIVE_TOLERANCE = 0.02
# The residual network's ranks draw their own dropout masks (as they must), so their trajectory
# is a different random draw of the same recipe: it lands within the spread of other seeds.
RESNET_RELATIVE_TOLERANCE = 0.15

# Train rows that leave the ranks unequal: odd counts, and counts just above a multiple of the
# batch (the last batch of 65 rows has one row, on one rank only).
ROW_COUNTS = (641, 65, 97)
_projects: dict[int, Project] = {}


@pytest.fixture
def project_with_rows(tmp_path_factory):
    def build(train_rows: int) -> Project:
        if train_rows not in _projects:
            project = make_project(
                tmp_path_factory.mktemp(f"pricer-ddp-{train_rows}"),
                {"data": {"synthetic_items": 1000, "max_train_items": train_rows}, "mlp": {"epochs": 4},
                 "resnet": {"epochs": 3}, "tracking": {"enabled": False}},
            )
            project.dvc("repro", "vectorize")
            _projects[train_rows] = project
        return _projects[train_rows]
    return build


def _train(project: Project, model: str, processes: int) -> float:
    # What the ranks train, not how they are launched (test_nodes.py and test_interruption.py launch
    # them through torchrun): the reference in this process, the ranks forked from one that
    # imported torch and pricer once.
    project.set_params({"train": {"processes": processes}})
    if processes == 1:
        project.run_stage_here("train.py", model)
    else:
        first, *_ = project.run_stage_ranks("train.py", model, world_size=processes)
        assert f"rank 0 of {processes} data-parallel processes" in first
    assert PricePredictor.load(project.root / "models" / model).predict(["Title: a drill"]).shape == (1,)
    return project.read_json(f"metrics/train/{model}.json")["best_val_mae"]


@pytest.mark.parametrize("train_rows", ROW_COUNTS)
@pytest.mark.parametrize(("model", "tolerance"),
                         [("mlp", MLP_RELATIVE_TOLERANCE), ("resnet", RESNET_RELATIVE_TOLERANCE)])
def test_two_processes_train_any_row_count_close_to_one_process(project_with_rows, model, tolerance, train_rows):
    project = project_with_rows(train_rows)
    assert len(pd.read_parquet(project.root / "data/features/train.parquet")) == train_rows
    one, two = _train(project, model, 1), _train(project, model, 2)
    assert two == pytest.approx(one, rel=tolerance), {"1 process": one, "2 processes": two}


def test_a_batch_the_processes_do_not_divide_is_refused_before_any_work(project_with_rows):
    project = project_with_rows(ROW_COUNTS[0])
    project.set_params({"train": {"processes": 3}})
    done = project.run_stage_here("train.py", "mlp", check=False)
    assert done.returncode == 1
    assert "mlp.batch_size (64) must divide evenly among train.processes (3)" in done.stderr
    assert "Traceback" not in done.stderr


def test_more_processes_than_cores_is_refused(project_with_rows):
    project = project_with_rows(ROW_COUNTS[0])
    project.set_params({"train": {"processes": 64}})
    done = project.run_stage_here("train.py", "mlp", check=False)
    assert done.returncode == 1 and "train.processes is 64 but this machine has" in done.stderr
    assert "Traceback" not in done.stderr
