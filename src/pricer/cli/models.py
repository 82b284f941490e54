"""``pricer models``, and the models the ``pricer`` commands price with.

Loading a model directory is :meth:`pricer.predictor.PricePredictor.load` (the one home of it,
also behind ``pricer.load_model``); here a loaded model only gets its output column label and
the MLflow run that trained it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pricer.cli.errors import CliError
from pricer.cli.table import text_table
from pricer.layout import MODELS_DIR, PREDICTOR_NAMES, enclosing_project, model_dir

if TYPE_CHECKING:  # importing torch is slow: loading imports it when first needed
    from pricer.predictor import PricePredictor

log = logging.getLogger("pricer.cli")

DEFAULT_MODELS = tuple(model_dir(name).as_posix() for name in PREDICTOR_NAMES)


@dataclass
class LoadedModel:
    label: str  # column name in the output: the model's name, made unique if needed
    path: Path
    predictor: PricePredictor
    mlflow_run_id: str | None = None

    @property
    def name(self) -> str:
        return self.predictor.name

    @property
    def version(self) -> str:
        return self.predictor.version

    def describe(self) -> dict[str, Any]:
        predictor = self.predictor
        info = dict(predictor.info)
        return {
            "label": self.label,
            "name": predictor.name,
            "version": self.version,
            "path": str(self.path),
            "kind": predictor.architecture.get("kind"),
            "text_field": predictor.vectorizer.text_field,
            "n_features": predictor.vectorizer.n_features,
            "target": predictor.target.kind if hasattr(predictor, "target") else None,
            "calibrated": predictor.calibration is not None,
            "parameters": info.get("parameters"),
            "best_epoch": info.get("best_epoch"),
            "best_val_mae": info.get("best_val_mae", info.get("val_mae")),
            "mlflow_run_id": self.mlflow_run_id,
        }


def _training_run(directory: Path, model_name: str) -> str | None:
    """The MLflow run that trained ``directory``, found by its content digest in the project's
    store; None for a model this store did not train (pulled, copied, saved by hand)."""
    from pricer import tracking  # imports MLflow: seconds, and only a listing needs it

    return tracking.training_run_of(directory, model_name)


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory where it is below it (models/mlp), else whole."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def load_models(paths: Sequence[str] | None, *, device: str = "cpu",
                with_training_runs: bool = False) -> list[LoadedModel]:
    """Load ``paths`` (default: the pipeline's models/mlp, models/resnet and models/ensemble,
    whichever exist); a bare pipeline model name (``ensemble``) that is no path here means
    ``models/<name>``. ``with_training_runs``: also find the MLflow run that trained each model
    directory (the listing shows it; pricing does not open the store, which costs a second or more)."""
    from pricer.predictor import ModelLoadError  # imports torch: seconds, and `pricer --help` needs none of it
    from pricer.tracking.registry import is_mlflow_uri, load_predictor

    explicit = bool(paths)
    project = None if explicit else enclosing_project()
    # From a subdirectory of the project, the project's models (a path given by the user: as given)
    candidates = list(paths) if explicit else [str(_shown(project / name if project else Path(name)))
                                                for name in DEFAULT_MODELS]
    models: list[LoadedModel] = []
    seen: set[tuple[str, str]] = set()
    for raw in candidates:
        if raw in PREDICTOR_NAMES and not Path(raw).exists():
            raw = str(model_dir(raw))
        path = Path(raw)
        if not explicit and not path.exists():
            # a project trained before the ensemble stage existed has no models/ensemble: not worth a warning
            (log.debug if raw == DEFAULT_MODELS[-1] else log.warning)("%s: not found, skipped", path)
            continue
        try:
            predictor = load_predictor(raw, device=device)  # a directory, runs:/... or models:/...@alias
        except ModelLoadError as error:
            raise CliError(str(error)) from None
        if (predictor.name, predictor.version) in seen:
            log.warning("%s: the same model (%s %s) was given twice; using it once", path, predictor.name,
                        predictor.version)
            continue
        seen.add((predictor.name, predictor.version))
        run = _training_run(path, predictor.name) if with_training_runs and not is_mlflow_uri(raw) else None
        models.append(LoadedModel(predictor.name, path, predictor, run))
        log.debug("loaded %s from %s (version %s)", predictor.name, path, predictor.version)
    if not models:
        where = _shown(project / MODELS_DIR) if project else MODELS_DIR
        looked = "" if project else f" (no DVC project, a directory with .dvc/, at or above {Path.cwd()})"
        raise CliError(f"no trained models found in {where}/{looked}: run `dvc repro` or `dvc pull` first, "
                       "or pass --model DIR")
    names = [model.label for model in models]
    for model in models:
        if names.count(model.name) > 1:
            model.label = f"{model.name}@{model.version}"
    return models


def cmd_models(args: argparse.Namespace) -> int:
    described = [model.describe() for model in load_models(args.model, device="cpu", with_training_runs=True)]
    if args.format == "json":
        sys.stdout.write(json.dumps(described, indent=2) + "\n")
        return 0
    keys = ["label", "version", "path", "kind", "parameters", "text_field", "best_epoch", "best_val_mae",
            "mlflow_run_id"]
    lines = [keys] + [["" if entry[key] is None else str(entry[key]) for key in keys] for entry in described]
    sys.stdout.write(text_table(lines))
    return 0


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "models", parents=parents, help="show the trained models: version, architecture, training summary",
        description="Show each model's label, version (the first 8 hex digits of sha256(weights.pt)), path, "
                    "architecture, the text field it reads, its best epoch and validation MAE, and the MLflow "
                    "run that trained it.",
    )
    parser.add_argument("-m", "--model", action="append", metavar="DIR",
                        help="a model directory or a pipeline model's name (repeat; default: models/mlp, "
                             "models/resnet and models/ensemble)")
    parser.add_argument("-f", "--format", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(handler=cmd_models)
