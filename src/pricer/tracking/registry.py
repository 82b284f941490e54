"""The MLflow model registry: one registered model per architecture, an alias the user moves.

Every tracked training run with ``tracking.register: true`` adds a version to ``pricer-mlp`` or
``pricer-resnet``, tagged with where it came from (DVC experiment, git commit, data source and
revision, validation MAE, model directory digest). Which version serves is a decision: the
``champion`` alias moves only when ``promote`` is called, never as a side effect of training.
``load_predictor`` loads a model directory, ``runs:/<run_id>/model`` or
``models:/pricer-resnet@champion`` (the logged artifacts are downloaded, then read by
``PricePredictor.load``, which never unpickles code).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pricer.console import progress_enabled
from pricer.ensemble import Predictor, load_directory
from pricer.errors import PricerError
from pricer.layout import PREDICTOR_NAMES, project_root
from pricer.predictor import ModelLoadError
from pricer.tracking.store import MODEL_DIGEST_TAG, STORE_FILE, mlflow_client, resolve_tracking_uri, store_errors

log = logging.getLogger(__name__)

NAME_PREFIX = "pricer-"
CHAMPION = "champion"
MLFLOW_URI_SCHEMES = ("runs:/", "models:/")
PROGRESS_VARIABLE = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # MLflow's switch for its download progress bars
# Run tags copied to each registered version: the version says where it came from on its own.
PROVENANCE_TAGS = ("model", "dvc_exp_name", "dvc_baseline_rev", "git_commit", "data_source", "data_revision",
                   "pricer.model_digest")


class RegistryError(PricerError):
    """A registered model, version or experiment asked for is not in the registry."""


@dataclass(frozen=True)
class Promotion:
    registered_name: str
    version: int
    dvc_exp_name: str
    previous_version: int | None  # where the alias pointed before (None: it was not set)

    def describe(self) -> str:
        before = f" (was version {self.previous_version})" if self.previous_version is not None else ""
        return (f"{self.registered_name}@{CHAMPION} -> version {self.version} "
                f"(experiment {self.dvc_exp_name or '?'}){before}")


def registered_name(model_name: str) -> str:
    """``resnet`` or ``pricer-resnet`` -> ``pricer-resnet``; anything else is a RegistryError."""
    short = model_name.removeprefix(NAME_PREFIX)
    if short not in PREDICTOR_NAMES:
        choices = ", ".join(f"{name} ({NAME_PREFIX}{name})" for name in PREDICTOR_NAMES)
        raise RegistryError(f"{model_name!r} is not a pricer model; expected one of {choices}")
    return NAME_PREFIX + short


def register_version(client: Any, *, run_id: str, logged_model: Any, extra_tags: Mapping[str, Any]) -> Any:
    """A new version of ``pricer-<model>`` for the model logged by ``run_id``; its ModelVersion."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    from pricer.tracking.pyfunc import global_store  # imports mlflow: slow, and only training registers

    run_tags = client.get_run(run_id).data.tags
    name = registered_name(run_tags["model"])
    try:
        client.create_registered_model(name, description=f"pricer's {run_tags['model']} price regressor "
                                                          "(input: product texts; output: price in dollars)")
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    tags = ({key: run_tags[key] for key in PROVENANCE_TAGS if key in run_tags}
            | {k: str(v) for k, v in extra_tags.items()})
    with global_store(client.tracking_uri):
        version = client.create_model_version(name, source=f"models:/{logged_model.model_id}", run_id=run_id,
                                              tags=tags, model_id=logged_model.model_id)
    log.info("registered %s version %s (promote it with `pricer promote %s --version %s`)",
             name, version.version, run_tags["model"], version.version)
    return version


def store_uri(root: Path | None = None) -> str:
    """The project's store (or MLFLOW_TRACKING_URI's): it holds the registry too."""
    return resolve_tracking_uri(root or project_root())


def registry_client(root: Path | None = None) -> Any:
    """A client of the project's registry; a RegistryError (and no new empty store) where the
    project has no store yet."""
    uri = store_uri(root)
    store = (root or project_root()) / STORE_FILE
    if uri.startswith("sqlite:///") and uri.split("?", 1)[0] == f"sqlite:///{store}" and not store.exists():
        raise RegistryError(f"no MLflow store at {store}: run `dvc repro` here first (each train stage "
                            "registers its model), or set MLFLOW_TRACKING_URI to the store that has them")
    return mlflow_client(uri)


def _versions(client: Any, name: str) -> list[Any]:
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise RegistryError(f"{name} has no registered versions in {client.tracking_uri.split('?')[0]}; "
                            "train with tracking.register: true first (dvc repro / dvc exp run)")
    return sorted(versions, key=lambda found: int(found.version))


def promote(model_name: str, *, exp: str | None = None, version: int | None = None,
            root: Path | None = None) -> Promotion:
    """Move ``pricer-<model>@champion`` to ``version``, or to the newest version trained by DVC
    experiment ``exp``; exactly one of the two. Raises RegistryError naming what was not found."""
    if (exp is None) == (version is None):
        raise RegistryError("promote: give exactly one of --exp NAME or --version N")
    client = registry_client(root)
    name = registered_name(model_name)
    versions = _versions(client, name)
    if version is not None:
        chosen = [found for found in versions if int(found.version) == version]
        if not chosen:
            raise RegistryError(f"{name} has no version {version}; it has versions "
                                f"{', '.join(str(found.version) for found in versions)}")
    else:
        chosen = [found for found in versions if found.tags.get("dvc_exp_name") == exp]
        if not chosen:
            known = sorted({found.tags.get("dvc_exp_name", "?") for found in versions})
            raise RegistryError(f"{name} has no version from experiment {exp!r}; experiments with versions: "
                                f"{', '.join(known)}")
        if len(chosen) > 1:
            log.warning("%s: experiment %r has versions %s; promoting the newest, %s", name, exp,
                        ", ".join(str(found.version) for found in chosen), chosen[-1].version)
    target = chosen[-1]
    previous = (client.get_registered_model(name).aliases or {}).get(CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, target.version)
    promotion = Promotion(name, int(target.version), target.tags.get("dvc_exp_name", ""),
                          int(previous) if previous is not None else None)
    log.info("%s", promotion.describe())
    return promotion


def is_mlflow_uri(location: str | Path) -> bool:
    return str(location).startswith(MLFLOW_URI_SCHEMES)


def _unversioned(uri: str) -> str | None:
    """The registered name when ``uri`` is ``models:/<name>`` with neither a version nor an alias
    (MLflow would look for a logged model with that id and report it "not found")."""
    if not uri.startswith("models:/"):
        return None
    reference = uri.removeprefix("models:/").rstrip("/")
    if "/" in reference or "@" in reference or reference.startswith("m-"):  # m-...: a logged model's id
        return None
    return reference


@contextmanager
def artifact_progress(shown: bool) -> Iterator[None]:
    """MLflow's download progress bars on or off (its own setting, an environment variable)."""
    saved = os.environ.get(PROGRESS_VARIABLE)
    os.environ[PROGRESS_VARIABLE] = "true" if shown else "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_VARIABLE, None)
        else:
            os.environ[PROGRESS_VARIABLE] = saved


def _check_training_run(uri: str, run_id: str | None, artifact_dir: Path, store: str) -> None:
    """The logged model against the run that logged it: a deleted run is refused (``runs:/``) or
    warned about (``models:/``: the registered version stands on its own), and model files whose
    digest is not the run's ``pricer.model_digest`` tag are refused. Raises ModelLoadError."""
    from mlflow.exceptions import MlflowException

    from pricer.tracking.pyfunc import check_model_digest  # imports mlflow's model flavours: slow

    if not run_id:
        log.warning("%s: the model names no training run; its files cannot be checked against %s", uri,
                    MODEL_DIGEST_TAG)
        return
    try:
        run = mlflow_client(store).get_run(run_id)
    except MlflowException:
        log.warning("%s: its training run %s is not in %s; the model files cannot be checked against %s", uri,
                    run_id, store.split("?")[0], MODEL_DIGEST_TAG)
        return
    if run.info.lifecycle_stage == "deleted":
        restore = f"restore it with `mlflow runs restore --run-id {run_id}`"
        if uri.startswith("runs:/"):
            raise ModelLoadError(f"{uri}: run {run_id} is deleted; {restore} to price with its model")
        log.warning("%s: the run that trained this version (%s) is deleted; %s", uri, run_id, restore)
    expected = run.data.tags.get(MODEL_DIGEST_TAG)
    if expected is None:
        log.warning("%s: run %s has no %s tag; the model files cannot be checked", uri, run_id, MODEL_DIGEST_TAG)
        return
    try:
        check_model_digest(artifact_dir, expected, f"the tag of run {run_id}")
    except ModelLoadError as error:
        raise ModelLoadError(f"{uri}: {str(error).removeprefix(f'{artifact_dir}: ')}") from None


def load_predictor(location: str | Path, *, device: str = "cpu", root: Path | None = None) -> Predictor:
    """A PricePredictor (or EnsemblePredictor) from a model directory or an MLflow model URI
    (``runs:/<run_id>/model``, ``models:/pricer-resnet@champion``, ``models:/pricer-mlp/3``), its files checked
    against the
    ``pricer.model_digest`` tag of the run that logged them. Raises ModelLoadError."""
    if not is_mlflow_uri(location):
        return load_directory(location, device=device)
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from pricer.tracking.pyfunc import MODEL_ARTIFACT, global_store

    uri, store = str(location), store_uri(root)
    mlflow_client(store)  # a dead server or a damaged store: one line now, not minutes of retries later
    name = _unversioned(uri)
    if name is not None:
        raise ModelLoadError(f"{uri} names no version: use {uri.rstrip('/')}@{CHAMPION} (the version `pricer "
                             f"promote` chose) or {uri.rstrip('/')}/<version number>")
    with (tempfile.TemporaryDirectory(prefix="pricer-model-") as scratch, global_store(store),
          artifact_progress(progress_enabled("auto"))):
        try:
            with store_errors(store, f"download {uri}"):
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=scratch, tracking_uri=store,
                                                            registry_uri=store)
            model = Model.load(local)
            artifacts = model.flavors["python_function"]["artifacts"]
        except MlflowException as error:
            raise ModelLoadError(f"{uri}: {(error.message.strip().splitlines() or [''])[0]}") from None
        except (OSError, KeyError) as error:
            raise ModelLoadError(f"{uri}: not a pricer MLflow model ({type(error).__name__}: {error})") from None
        if MODEL_ARTIFACT not in artifacts:
            raise ModelLoadError(f"{uri}: not a pricer MLflow model (no {MODEL_ARTIFACT!r} artifact)")
        directory = Path(local) / artifacts[MODEL_ARTIFACT]["path"]
        _check_training_run(uri, model.run_id, directory, store)
        return load_directory(directory, device=device)
