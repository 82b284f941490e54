"""MLflow runs: one per trained model per pipeline run, always ended, found again by the
content digest of the model directory it trained.

A :class:`Tracker` is a context manager: leaving it ends its run FINISHED, FAILED (with a
pricer error's message as a tag), or KILLED after Ctrl-C or SIGTERM, so no run stays RUNNING."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pricer.digests import directory_md5, file_md5
from pricer.errors import PricerError
from pricer.layout import checkout_commit, project_root
from pricer.params import Params, TrackingParams, flatten
from pricer.signals import sigterm_held
from pricer.tracking import registry
from pricer.tracking.inputs import read_fetch_report, split_datasets
from pricer.tracking.store import (
    MODEL_DIGEST_TAG,
    SQLITE_BUSY_TIMEOUT_S,
    STORE_FILE,
    TrackingError,
    is_server_uri,
    mlflow_client,
    open_store,
    resolve_tracking_uri,
    store_errors,
    ui_address,
)

log = logging.getLogger(__name__)



EVALUATED_DIGEST_TAG = "pricer.evaluated_model_digest"  # an evaluate-only run: the model it priced
TRAINING_RUN_TAG = "pricer.training_run_id"  # an evaluate-only run: the run that trained the model it priced
WORKSPACE = "workspace"  # the experiment name of runs from `dvc repro` (DVC sets DVC_EXP_NAME only in experiments)
# The environment a run had: the md5 of the project's requirements.lock (tools/relock makes it).
LOCK_DIGEST_TAG = "pricer.lock_md5"
LOCK_FILE = "requirements.lock"


def experiment_name() -> str:
    """The DVC experiment this process runs in (``dvc exp run``), or ``workspace``."""
    return os.environ.get("DVC_EXP_NAME") or WORKSPACE


KEY_LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "datasets", "dvc", "mlflow")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in KEY_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class Tracker:
    """A thin wrapper over ``MlflowClient`` for one run; ``run_id`` is None when disabled."""

    client: Any = None
    run_id: str | None = None
    experiment_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None and self.run_id is not None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None, _: Any) -> None:
        if error is None:
            self.finish()
            if self.enabled:
                log.info("MLflow UI: %s", ui_address(self.client.tracking_uri, self.experiment_id))
            return
        with contextlib.suppress(Exception):  # the error being raised matters more than the run's status
            if isinstance(error, PricerError):
                self.set_tags({"error": str(error)[:5000]})
            self.finish("KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED")

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in sorted(flatten(params).items())]  # MLflow params are strings
        for start in range(0, len(items), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=entries)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, directory: str | Path, artifact_path: str) -> None:
        if self.enabled:
            self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        if self.enabled:
            self.client.set_terminated(self.run_id, status)

    def log_epoch(self, record: Any) -> None:
        """One training epoch's figures (a ``pricer.training.loop.EpochRecord``), at its step."""
        self.log_metrics({"train_loss": record.train_loss, "val_loss": record.val_loss, "val_mae": record.val_mae,
                          "lr": record.lr, "epoch_seconds": record.seconds}, step=record.epoch)

    def log_inputs(self, datasets: Mapping[str, Any]) -> None:
        """MLflow datasets (``{context: dataset}``: training, validation, testing) as run inputs."""
        if not self.enabled or not datasets:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        inputs = [DatasetInput(Dataset(**dataset.to_dict()), [InputTag(MLFLOW_DATASET_CONTEXT, context)])
                  for context, dataset in datasets.items()]
        self.client.log_inputs(self.run_id, inputs)

    def log_model_inputs(self, model_ids: list[str]) -> None:
        """MLflow 3 logged models this run used (the models an evaluate run priced)."""
        if not self.enabled or not model_ids:
            return
        from mlflow.entities import LoggedModelInput

        self.client.log_inputs(self.run_id, models=[LoggedModelInput(model_id) for model_id in model_ids])

    def log_model_directory(self, directory: Path, summary: Mapping[str, float], *, register: bool = False) -> None:
        """The trained model as an MLflow Model (``runs:/<run_id>/model``), its summary figures,
        the content tag that finds this run again, and with ``register`` a new registry version."""
        if not self.enabled:
            return
        from pricer.tracking import pyfunc  # imports mlflow's model flavours: slow, and only training logs models

        self.log_metrics(summary)
        digest = directory_md5(directory)
        self.set_tags({MODEL_DIGEST_TAG: digest})
        artifacts = self.client.get_run(self.run_id).info.artifact_uri
        # MLflow's own store calls, not the guarded client's: SIGTERM waits for them too. Its check of
        # the logged model downloads it again, with progress bars: noise in a stage's log
        with sigterm_held(), registry.artifact_progress(False), store_errors(
                self.client.tracking_uri, f"store the logged model in its artifact store {artifacts}"):
            logged = pyfunc.log_pyfunc_model(self.client, directory, experiment_id=self.experiment_id,
                                             run_id=self.run_id, model_digest=digest)
        if not register:
            return
        try:
            registry.register_version(self.client, run_id=self.run_id, logged_model=logged,
                                      extra_tags={"val_mae": summary.get("best_val_mae", summary.get("val_mae", ""))})
        except Exception as error:  # the trained model is saved and logged: a registry outage must not lose it
            log.warning("%s: not registered (%s: %s); register it later with "
                        "`mlflow.register_model('runs:/%s/model', ...)`, or set tracking.register: false",
                        directory, type(error).__name__, str(error).splitlines()[0] if str(error) else "", self.run_id)


def find_training_run(client: Any, experiment_id: str, model_name: str, digest: str) -> str | None:
    """The newest finished run that trained exactly the model directory with ``digest``."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{MODEL_DIGEST_TAG}` = '{digest}' and tags.model = '{model_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def start_run(
    *,
    enabled: bool,
    experiment: str,
    run_name: str,
    tags: Mapping[str, Any],
    root: Path | None = None,
    busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
) -> Tracker:
    """Start a run in the project's store (or a disabled Tracker when tracking is off).

    Raises TrackingError (store locked past ``busy_timeout_s``, corrupt, or server unreachable).
    """
    if not enabled:
        log.info("tracking disabled (tracking.enabled=false): no MLflow run")
        return Tracker()
    uri, client, experiment_id = open_store(experiment, root, busy_timeout_s)
    try:
        run = client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
    except TrackingError:
        raise
    except Exception as error:
        raise TrackingError(f"MLflow store {uri}: cannot create a run: {type(error).__name__}: {error}") from None
    log.info("MLflow run %s (%s) in %s", run.info.run_id, run_name, uri)
    return Tracker(client=client, run_id=run.info.run_id, experiment_id=experiment_id)


def reopen_training_run(
    *,
    enabled: bool,
    model_name: str,
    model_digest: str,
    experiment: str,
    root: Path | None = None,
    busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
) -> Tracker:
    """The run that trained the model directory with ``model_digest``, reopened so the evaluate
    stage adds its test figures there; a disabled Tracker when tracking is off or when this store
    holds no such run (a model pulled from a DVC remote, or trained against another store)."""
    if not enabled:
        return Tracker()
    _, client, experiment_id = open_store(experiment, root, busy_timeout_s)
    run_id = find_training_run(client, experiment_id, model_name, model_digest)
    return Tracker(client=client, run_id=run_id, experiment_id=experiment_id)


def training_run_of(directory: Path, model_name: str, experiment: str = "pricer") -> str | None:
    """The id of the run that trained the model ``directory`` holds, for a listing: None when
    there is no store yet, no such run, or the store cannot be read (the listing goes on)."""
    root = project_root()
    uri = resolve_tracking_uri(root)
    if not is_server_uri(uri) and not (root / STORE_FILE).exists():
        return None
    try:
        client = mlflow_client(uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        return find_training_run(client, found.experiment_id, model_name, directory_md5(directory))
    except Exception as error:  # a listing must not fail on a store problem; training reports those
        log.debug("cannot look up the training run of %s: %s", directory, error)
        return None


def log_test_figures(
    settings: TrackingParams, model_name: str, model_digest: str, figures: Mapping[str, float], *,
    data_source: str, params: Mapping[str, Any], datasets: Mapping[str, Any] | None = None,
) -> None:
    """Record the evaluate stage's test figures in a run of this DVC experiment.

    They join the run that trained the model only when that run is this experiment's own,
    recorded with these params and not evaluated yet (``dvc repro`` or ``dvc exp run`` training
    then evaluating). Otherwise (``dvc exp run -n hit1 -S evaluate.hit_dollars=1`` reruns only
    evaluate, on the baseline's models) they go to a new run of this experiment, tagged with the
    run that trained the model (``pricer.training_run_id``) and taking its logged model as input:
    a record never lands in another experiment's run. ``settings`` is params.yaml's ``tracking``."""
    if not settings.enabled:
        return
    store = {"experiment": settings.experiment, "busy_timeout_s": settings.busy_timeout_s}
    trained = reopen_training_run(enabled=True, model_name=model_name, model_digest=model_digest, **store)
    experiment = experiment_name()
    if trained.enabled:
        mismatch = _not_this_runs_evaluation(trained.client.get_run(trained.run_id), experiment, params)
        if mismatch is None:
            trained.log_metrics(figures)
            trained.log_inputs(datasets or {})
            return
        log.info("%s: the run that trained it (%s) %s; the test figures go to a new run of experiment %r",
                 model_name, trained.run_id, mismatch, experiment)
    else:
        log.warning("%s: the run that trained it is not in this MLflow store (model pulled from a DVC remote, or "
                    "trained against another MLFLOW_TRACKING_URI); logging the test figures to a new run", model_name)
    tags = run_tags(model_name, data_source, {"stage": "evaluate", EVALUATED_DIGEST_TAG: model_digest,
                                              TRAINING_RUN_TAG: trained.run_id or ""},
                    source_name="stages/evaluate.py")
    with start_run(enabled=True, run_name=f"{run_name(model_name)}-evaluate", tags=tags, **store) as tracker:
        tracker.log_params({"params": params})
        tracker.log_metrics(figures)
        tracker.log_inputs(datasets or {})
        if trained.enabled:
            tracker.log_model_inputs(_logged_models_of(trained))


def _not_this_runs_evaluation(run: Any, experiment: str, params: Mapping[str, Any]) -> str | None:
    """Why the evaluate stage must not write into ``run`` (a training run), or None when it may."""
    tags = run.data.tags
    if tags.get("dvc_exp_name") != experiment:
        return f"belongs to experiment {tags.get('dvc_exp_name')!r}"
    if tags.get("dvc_baseline_rev", "") != os.environ.get("DVC_EXP_BASELINE_REV", ""):
        return f"ran on baseline {tags.get('dvc_baseline_rev') or 'none'!r}"
    if "test_mae" in run.data.metrics:
        return "has test figures already"
    recorded = run.data.params
    differing = sorted(key for key, value in flatten({"params": params}).items()
                       if recorded.get(key) != str(value)[:6000])
    if differing:
        return f"recorded other params ({', '.join(name.removeprefix('params.') for name in differing[:5])})"
    return None


def _logged_models_of(tracker: Tracker) -> list[str]:
    """The ids of the models ``tracker``'s run logged (MLflow 3's logged models)."""
    found = tracker.client.search_logged_models([tracker.experiment_id],
                                                filter_string=f"source_run_id = '{tracker.run_id}'")
    return [model.model_id for model in found]


def run_name(model_name: str) -> str:
    """``resnet-<DVC experiment>``: the run's name in the UI says which experiment it belongs to."""
    return f"{model_name}-{experiment_name()}"


@contextmanager
def training_run(params: Params, model_name: str, file_md5s: Mapping[str, str], *, is_main: bool,
                 source_name: str = "stages/train.py") -> Iterator[Tracker]:
    """The run of one train stage (only the main data-parallel rank tracks), or of the ensemble
    stage: tagged with its DVC experiment, code and data, the data it read logged as inputs, and
    always ended."""
    report = read_fetch_report()
    tags = run_tags(model_name, params.data.source, source_name=source_name, extra={
        "data_kind": report.get("kind", ""),
        "data_revision": report.get("resolved_revision") or params.data.revision or "",
        **{f"input_md5.{path}": md5 for path, md5 in file_md5s.items()},
    })
    settings = params.tracking
    with start_run(enabled=settings.enabled and is_main, experiment=settings.experiment, tags=tags,
                   busy_timeout_s=settings.busy_timeout_s, run_name=run_name(model_name)) as tracker:
        tracker.log_inputs(split_datasets(params.data.source, report, file_md5s))
        yield tracker


def run_tags(model_name: str, data_source: str, extra: Mapping[str, Any] | None = None,
             source_name: str = "") -> dict[str, str]:
    """Tags that tie a run to its DVC experiment, code revision and data: MLflow's own system
    tags (the UI's Source column shows the script and commit) and pricer's DVC tags."""
    commit = checkout_commit()
    tags = {
        "model": model_name,
        "data_source": data_source,
        "dvc_exp_name": experiment_name(),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "mlflow.source.name": source_name,
        "mlflow.source.type": "LOCAL",
    }
    lock = project_root() / LOCK_FILE
    tags[LOCK_DIGEST_TAG] = file_md5(lock) if lock.is_file() else "none"
    tags.update({f"version.{k}": v for k, v in library_versions().items()})
    tags["version.python"] = platform.python_version()
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags
