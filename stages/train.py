"""train_<model>: fit one regressor on the hashed features, save it, track it in MLflow.

Usage: ``python stages/train.py mlp|resnet``. With ``train.processes > 1`` or ``train.nodes > 1``
the script relaunches itself under ``torchrun`` (on the other machines ``pricer train-worker``
does); rank 0 alone tracks and writes outputs.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from pricer import layout, tracking
from pricer.atomic import refuse_outputs_outside, remove_stale_temporaries
from pricer.console import progress_enabled, run_stage
from pricer.cores import check_at_most_cores
from pricer.params import load_params
from pricer.training.distributed import check_same_run, needs_relaunch, process_group, relaunch_under_torchrun
from pricer.training.runner import (
    check_features_fit_in_memory,
    load_training_data,
    plan_training,
    run_training,
    save_training_outputs,
    training_outputs,
)


def main(model_name: str) -> int:
    if model_name not in layout.MODEL_NAMES:
        raise SystemExit(f"usage: train.py {{{'|'.join(layout.MODEL_NAMES)}}}")
    refuse_outputs_outside(Path.cwd(), layout.stage_outputs(f"train_{model_name}"))  # before anything is written
    params = load_params()
    check_at_most_cores("train.threads", params.train.threads)
    if needs_relaunch(params.train):
        return relaunch_under_torchrun(__file__, [model_name], params.train)
    with process_group(params.train) as processes:
        if processes.is_main:
            remove_stale_temporaries(*training_outputs(model_name))  # left by a run killed mid-write
        check_features_fit_in_memory(processes=params.train.processes, world_size=processes.world_size)
        data = load_training_data(rank=processes.rank, world_size=processes.world_size)
        check_same_run(processes, params.as_dict(), data.file_md5s)  # on every node: same commit, params, data
        plan = plan_training(params, model_name, data, processes.device)
        with tracking.training_run(params, model_name, data.file_md5s, is_main=processes.is_main) as run:
            run.log_params({"params": params.as_dict(), "recipe": plan.recipe.to_dict(),
                            "architecture": plan.architecture,
                            "parameters": plan.parameters, "processes": processes.world_size,
                            "device": str(processes.device)})
            trained = run_training(plan, data, processes, on_epoch=run.log_epoch,
                                   checkpoint_path=layout.checkpoint_file(model_name), resume=params.train.resume,
                                   progress=progress_enabled(params.train.progress))
            if processes.is_main:
                directory = save_training_outputs(trained)
                run.log_model_directory(directory, trained.summary, register=params.tracking.register)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("train", functools.partial(main, sys.argv[1] if len(sys.argv) > 1 else "")))
