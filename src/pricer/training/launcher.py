"""``python -m pricer.training.launcher TORCHRUN-ARGS...``: torchrun's agent, with one-line failures.

``torch.distributed.run`` (torchrun) ends a failed run with a traceback and a failure report,
although each failed rank has already said what went wrong in its own one-line ``pricer:``
message. This runs the same agent in-process, quiet: a failed rank's exit status is passed on
without more output, and a rendezvous that does not complete (a node that never arrives, an
address nobody listens on or that is taken) is one line naming the address and the wait.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from torch.distributed import DistError
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous import RendezvousError
from torch.distributed.run import parse_args, run

EXIT_FAILED = 1


def rendezvous_failure(address: str, nodes: int, node_rank: int, timeout_s: str, error: BaseException) -> str:
    """The one line for a rendezvous that did not complete."""
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if node_rank == 0:
        waited_for = f"the other {nodes - 1} node(s) (`pricer train-worker` with PRICER_NODE_RANK 1..{nodes - 1})"
    else:
        waited_for = "node 0 (the machine that runs `dvc repro` or `dvc exp run`)"
    return (f"pricer: train: node {node_rank} waited {timeout_s} s at PRICER_RENDEZVOUS={address} for {waited_for}, "
            f"in vain ({first_line}); start every node within PRICER_RENDEZVOUS_TIMEOUT_S of each other, "
            "with the same address")


def main(argv: Sequence[str]) -> int:
    args = parse_args(list(argv))
    # the agent's own log lines (its OMP_NUM_THREADS notice, the failure report) are not the user's business
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as failed:
        # the failed rank has printed its one-line error: pass its status on
        codes = [failure.exitcode for failure in failed.failures.values()]
        return next((code for code in codes if code and code > 0), EXIT_FAILED)
    except (DistError, RendezvousError, TimeoutError) as error:
        timeout_s = dict(item.split("=", 1) for item in args.rdzv_conf.split(",") if "=" in item).get("timeout", "?")
        address = f"{args.master_addr}:{args.master_port}"
        nodes = int(str(args.nnodes).split(":")[-1])
        print(rendezvous_failure(address, nodes, int(args.node_rank), timeout_s, error), file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
