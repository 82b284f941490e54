"""``pricer train-worker MODEL``: this machine joins a multi-machine training run as node 1, 2, ...

Node 0 runs the train stage as always (``dvc repro`` or ``dvc exp run``) and alone writes the
outputs and tracks the run; each other node runs this command in its own checkout of the same
commit, with the same params.yaml and the same features (``dvc pull``, or ``dvc repro
vectorize``), and ``PRICER_RENDEZVOUS`` / ``PRICER_NODE_RANK`` in its environment. It writes
nothing: its processes compute their share of every step and exit when node 0's run ends.
"""

from __future__ import annotations

import argparse
import os

from pricer.errors import PricerError
from pricer.layout import MODEL_NAMES


class WorkerError(PricerError):
    """This machine cannot join a multi-machine run as configured."""


def cmd_train_worker(args: argparse.Namespace) -> int:
    from pricer import layout
    from pricer.params import load_params
    from pricer.training.distributed import NODE_RANK_ENV, node_rank_from, relaunch_under_torchrun

    root = layout.project_root()
    script = root / "stages" / "train.py"
    if not (root / "params.yaml").is_file() or not script.is_file():
        raise WorkerError(f"{root} is not a pricer checkout (no params.yaml and stages/train.py): "
                          "run train-worker at the root of this node's clone")
    os.chdir(root)  # the stage reads params.yaml and data/ relative to the project root
    params = load_params()
    if params.train.nodes < 2:
        raise WorkerError("params.yaml: train.nodes is 1: set it to the number of machines on every node "
                          "(README, \"Beyond one machine\")")
    if node_rank_from(os.environ) == 0:
        raise WorkerError(f"set {NODE_RANK_ENV} to this machine's node number, 1..{params.train.nodes - 1} "
                          "(node 0 is the machine that runs `dvc repro` or `dvc exp run`)")
    return relaunch_under_torchrun(str(script), [args.model], params.train, cwd=root)


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "train-worker", parents=parents, help="join a multi-machine training run as one of the other nodes",
        description="Train MODEL's share of a multi-machine run (params.yaml: train.nodes > 1) on this machine, "
                    "as node PRICER_NODE_RANK (1, 2, ...), meeting node 0 at PRICER_RENDEZVOUS=host:port. Node 0 "
                    "runs `dvc repro` or `dvc exp run` and alone writes outputs; this command writes nothing. "
                    "Every node needs the same commit, params.yaml and features, or the run is refused. "
                    "PRICER_RENDEZVOUS_TIMEOUT_S (default 300) bounds the wait for the other nodes.",
    )
    parser.add_argument("model", choices=MODEL_NAMES, help="which model node 0 trains")
    parser.set_defaults(handler=cmd_train_worker)
