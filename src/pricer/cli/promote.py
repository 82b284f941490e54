"""``pricer promote``: move a registered model's ``champion`` alias to a version the user chose.

Never automatic: the user compares experiments first (``pricer compare``, the MLflow UI), then
promotes one; ``mlflow models serve -m models:/pricer-resnet@champion`` serves whatever holds it.
"""

from __future__ import annotations

import argparse
import sys

from pricer.layout import MODEL_NAMES


def cmd_promote(args: argparse.Namespace) -> int:
    from pricer.tracking.registry import promote  # imports torch and MLflow: only when promoting

    promotion = promote(args.model, exp=args.exp, version=args.version)
    sys.stdout.write(promotion.describe() + "\n")
    return 0


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "promote", parents=parents, help="move a registered model's champion alias to a chosen version",
        description="Point models:/pricer-<MODEL>@champion at one registered version: the newest one a DVC "
                    "experiment trained (--exp NAME) or a version number (--version N). Each train stage "
                    "registers a new version (tracking.register); the alias moves only when you say so.",
    )
    parser.add_argument("model", choices=MODEL_NAMES, help="which model")
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--exp", metavar="NAME", help="the DVC experiment whose model to promote (dvc exp show)")
    chosen.add_argument("--version", type=int, metavar="N", help="the registered version to promote")
    parser.set_defaults(handler=cmd_promote)
