"""train_<model>: fit one regressor on the hashed features, save it, track it in MLflow.

Usage: ``python stages/train.py mlp|resnet``. With ``train.processes > 1`` or ``train.nodes > 1``
the script relaunches itself under ``torchrun`` (on the other machines ``pricer train-worker``
does); rank 0 alone tracks and writes outputs.
"""

from __future__ import annotations

import os
import sys

from pricer import layout, tracking
from pricer.atomic import remove_stale_temporaries
from pricer.console import progress_enabled, run_stage
from pricer.digests import directory_md5
from pricer.params import load_params
from pricer.run_inputs import read_fetch_report, split_datasets
from pricer.training.distributed import (check_same_run, checkout_commit, needs_relaunch, process_group,
                                         relaunch_under_torchrun, run_fingerprint)
from pricer.training.runner import load_training_data, plan_training, run_training, save_training_outputs, training_outputs


def main(model_name: str) -> int:
    if model_name not in layout.MODEL_NAMES:
        raise SystemExit(f"usage: train.py {{{'|'.join(layout.MODEL_NAMES)}}}")
    params = load_params()
    if needs_relaunch(params.train):
        return relaunch_under_torchrun(__file__, [model_name], params.train)
    with process_group(params.train) as processes:
        if processes.is_main:
            remove_stale_temporaries(*training_outputs(model_name))  # left by a run killed mid-write
        data = load_training_data(rank=processes.rank, world_size=processes.world_size)
        if processes.distributed:  # every rank, on every node, trains the same commit, params and features
            check_same_run(processes, run_fingerprint(checkout_commit(), params.as_dict(), data.file_md5s))
        plan = plan_training(params, model_name, data, processes.device)
        report = read_fetch_report()
        tags = tracking.run_tags(model_name, params.data.source, source_name="stages/train.py", extra={
            "data_kind": report.get("kind", ""),
            "data_revision": report.get("resolved_revision") or params.data.revision or "",
            **{f"input_md5.{path}": md5 for path, md5 in data.file_md5s.items()},
        })
        start = lambda: tracking.start_run(  # noqa: E731 - only rank 0 opens a run
            enabled=params.tracking.enabled and processes.is_main, experiment=params.tracking.experiment,
            busy_timeout_s=params.tracking.busy_timeout_s, tags=tags,
            run_name=f"{model_name}-{os.environ.get('DVC_EXP_NAME', 'workspace')}")
        with tracking.tracked_run(start) as run:
            run.log_params({"params": params.as_dict(), "recipe": plan.recipe.to_dict(), "architecture": plan.architecture,
                            "parameters": plan.parameters, "processes": processes.world_size,
                            "device": str(processes.device)})
            run.log_inputs(split_datasets(params.data.source, report, data.file_md5s))
            trained = run_training(plan, data, processes, on_epoch=run.log_epoch,
                                   checkpoint_path=layout.checkpoint_file(model_name), resume=params.train.resume,
                                   progress=progress_enabled(params.train.progress))
            if processes.is_main:
                directory = save_training_outputs(trained)
                run.log_model_directory(directory, directory_md5(directory), trained.summary,
                                        register=params.tracking.register)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage("train", lambda: main(sys.argv[1] if len(sys.argv) > 1 else "")))
