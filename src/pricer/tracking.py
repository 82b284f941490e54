"""MLflow tracking: one store per project, one run per trained model per pipeline run.

The default store is SQLite at the project root. ``dvc exp run --temp`` and ``--queue`` run the
pipeline in a copy under ``<root>/.dvc/tmp/exps/``; runs from there must still land in the
root's store, so the root is found by stepping out of that folder. ``MLFLOW_TRACKING_URI``
overrides everything (a shared tracking server, say).

Waits are bounded: a busy SQLite store (another process writing, e.g. a parallel queued
experiment) is waited on for ``busy_timeout_s`` seconds (``tracking.busy_timeout_s``, default
60), then the run fails with a TrackingError naming the store, before any training starts; a
tracking server gets one health check with a 10 s timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
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

from pricer.errors import PricerError
from pricer.layout import project_root

log = logging.getLogger(__name__)

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
SQLITE_BUSY_TIMEOUT_S = 60  # parallel queued experiments write to one SQLite file
# Ties a run to the model directory it trained, by content, so that no DVC output has to hold a
# run id (which would change the output's hash on every run).
MODEL_DIGEST_TAG = "pricer.model_digest"
EVALUATED_DIGEST_TAG = "pricer.evaluated_model_digest"  # an evaluate-only run: the model it priced
# The MLflow 3 UI opens an experiment in its GenAI mode unless the experiment says otherwise
# (values from the UI's ExperimentKind enum) or the address asks for the training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
UI_PORT = 5000
KEY_LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "datasets", "dvc", "mlflow")


class TrackingError(PricerError):
    """The tracking store cannot be used; raised before any training starts."""


def default_tracking_uri(root: Path, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> str:
    return f"sqlite:///{root / STORE_FILE}?timeout={busy_timeout_s:g}"


def resolve_tracking_uri(
    root: Path, environ: Mapping[str, str] | None = None, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root, busy_timeout_s)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in KEY_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"mlp": {"lr": 0.01}}`` → ``{"mlp.lr": "0.01"}`` (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@contextmanager
def _store_lock(root: Path, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Iterator[None]:
    """Serialise store creation/migration: two queued runs may open a new store at once."""
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f".{STORE_FILE}.lock"
    with open(lock_path, "w") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"{lock_path} is held by another process for more than {timeout_s:g}s "
                        "(tracking.busy_timeout_s); wait for it to finish, or run with -S tracking.enabled=false"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Tracker:
    """A thin wrapper over ``MlflowClient`` for one run; ``run_id`` is None when disabled."""

    client: Any = None
    run_id: str | None = None
    experiment_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None and self.run_id is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in sorted(flatten(params).items())]
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
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        inputs = [DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])
                  for context, dataset in datasets.items()]
        self.client.log_inputs(self.run_id, inputs)

    def log_model_directory(self, directory: Path, digest: str, summary: Mapping[str, float], *,
                            register: bool = False) -> None:
        """The trained model as an MLflow Model (``runs:/<run_id>/model``), its summary figures,
        the content tag that finds this run again, and with ``register`` a new registry version."""
        if not self.enabled:
            return
        from pricer import registry, serving

        self.log_metrics(summary)
        self.set_tags({MODEL_DIGEST_TAG: digest})
        logged = serving.log_pyfunc_model(self.client, directory, experiment_id=self.experiment_id, run_id=self.run_id)
        if not register:
            return
        try:
            registry.register_version(self.client, run_id=self.run_id, logged_model=logged,
                                      extra_tags={"val_mae": summary.get("best_val_mae", "")})
        except Exception as error:  # the trained model is saved and logged: a registry outage must not lose it
            log.warning("%s: not registered (%s: %s); register it later with "
                        "`mlflow.register_model('runs:/%s/model', ...)`, or set tracking.register: false",
                        directory, type(error).__name__, str(error).splitlines()[0] if str(error) else "", self.run_id)


@contextmanager
def tracked_run(start: Any) -> Iterator[Tracker]:
    """Yield ``start()``'s tracker and always end its run: FINISHED, FAILED (with the error as a
    tag), or KILLED after Ctrl-C or SIGTERM, so that no run stays RUNNING."""
    tracker = start()
    try:
        yield tracker
    except BaseException as error:
        with contextlib.suppress(Exception):
            if isinstance(error, PricerError):
                tracker.set_tags({"error": str(error)[:5000]})
            tracker.finish("KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED")
        raise
    tracker.finish()
    if tracker.enabled:
        log.info("MLflow UI: %s", ui_address(tracker.client.tracking_uri, tracker.experiment_id))


def ui_address(tracking_uri: str, experiment_id: str | None, port: int = UI_PORT) -> str:
    """Where to see an experiment's training runs: the tracking server's page, or for a local
    store the command that serves it and the page it serves (in model-training mode)."""
    page = f"#/experiments/{experiment_id}?workflowType=machine_learning"
    if _is_server(tracking_uri):
        return f"{tracking_uri.rstrip('/')}/{page}"
    store = tracking_uri.split("?", 1)[0]
    return f"`mlflow ui --backend-store-uri {store} --port {port}`, then open http://127.0.0.1:{port}/{page}"


def find_training_run(client: Any, experiment_id: str, model_name: str, digest: str) -> str | None:
    """The newest finished run that trained exactly the model directory with ``digest``."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{MODEL_DIGEST_TAG}` = '{digest}' and tags.model = '{model_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _check_reachable(uri: str) -> None:
    """Fail in seconds, not after MLflow's default minutes of retries, on a dead server."""
    if not _is_server(uri):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10):
            pass
    except (urllib.error.URLError, OSError) as error:
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({error}); start it, unset "
            "MLFLOW_TRACKING_URI to use the local store, or run with -S tracking.enabled=false"
        ) from None


def _store_problem(error: Exception) -> str:
    """A hint for the store errors people meet, after MLflow's own (long) message."""
    text = str(error)
    if "database is locked" in text:
        return ("another process holds a lock on the store longer than the busy timeout "
                "(tracking.busy_timeout_s); wait for it, raise the timeout, or")
    if "file is not a database" in text or "malformed" in text:
        return "the file is not an SQLite database (corrupt?); move it away (a new store is then created), or"
    return "fix or move the store, or"


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _check_sqlite_integrity(uri: str) -> None:
    """A damaged SQLite store must fail here, before training, not at the first epoch's log."""
    import sqlite3

    path = _sqlite_file(uri)
    if path is None or not path.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as connection:
            verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as error:
        if "malformed" not in str(error):
            return  # locked, or not a database at all: opening it below reports those, with their hints
        verdict = str(error)
    if verdict != "ok":
        raise TrackingError(
            f"MLflow store {path} is damaged (SQLite says: {verdict}); move it away (a new store is then created) "
            "or run with -S tracking.enabled=false")


def _check_artifact_location(uri: str, experiment: Any, root: Path) -> None:
    """The project's own store keeps artifacts in the project: refuse one that points elsewhere
    (a project copied with ``cp -a`` would write into the original's ``mlartifacts``)."""
    if _sqlite_file(uri) != root / STORE_FILE:
        return  # MLFLOW_TRACKING_URI: that store decides where its artifacts go
    expected = (root / ARTIFACTS_DIR).resolve().as_uri()
    if experiment.artifact_location != expected:
        raise TrackingError(
            f"MLflow store {root / STORE_FILE}: experiment {experiment.name!r} keeps its artifacts in "
            f"{experiment.artifact_location}, outside this project (was the project copied or moved?); "
            f"move {STORE_FILE} away to start a store of this project's own, set -S tracking.experiment=<new name>, "
            "or run with -S tracking.enabled=false")


def connect(uri: str, experiment: str, root: Path, lock_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> tuple[Any, str]:
    """Open the store and make sure ``experiment`` exists; return (client, experiment_id)."""
    _check_reachable(uri)
    from mlflow.tracking import MlflowClient

    try:
        with _store_lock(root, lock_timeout_s):
            _check_sqlite_integrity(uri)
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # the registry lives in the same store
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                _check_artifact_location(uri, found, root)
                if found.tags.get(EXPERIMENT_KIND_TAG) is None:  # a store from before pricer set it
                    client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
                return client, found.experiment_id
            kind = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            if _is_server(uri):
                # a tracking server chooses where artifacts go, so that every client can see them
                experiment_id = client.create_experiment(experiment, tags=kind)
            else:
                artifacts = (root / ARTIFACTS_DIR).resolve()
                experiment_id = client.create_experiment(experiment, artifact_location=artifacts.as_uri(), tags=kind)
            return client, experiment_id
    except TrackingError:
        raise
    except Exception as error:  # MLflow raises many types for a locked/corrupt/foreign store
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise TrackingError(
            f"MLflow store {uri} cannot be used: {type(error).__name__}: {first_line} "
            f"({_store_problem(error)} run with -S tracking.enabled=false)"
        ) from None


def _open(experiment: str, root: Path | None, busy_timeout_s: float) -> tuple[str, Any, str]:
    """The project's store (or MLFLOW_TRACKING_URI's): its uri, a client, the experiment id."""
    root = root or project_root()
    uri = resolve_tracking_uri(root, busy_timeout_s=busy_timeout_s)
    return (uri, *connect(uri, experiment, root, busy_timeout_s))


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
    uri, client, experiment_id = _open(experiment, root, busy_timeout_s)
    try:
        run = client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
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
    _, client, experiment_id = _open(experiment, root, busy_timeout_s)
    run_id = find_training_run(client, experiment_id, model_name, model_digest)
    return Tracker(client=client, run_id=run_id, experiment_id=experiment_id)


def training_run_of(directory: Path, model_name: str, experiment: str = "pricer") -> str | None:
    """The id of the run that trained the model ``directory`` holds, for a listing: None when
    there is no store yet, no such run, or the store cannot be read (the listing goes on)."""
    from pricer.digests import directory_md5

    root = project_root()
    uri = resolve_tracking_uri(root)
    if not _is_server(uri) and not (root / STORE_FILE).exists():
        return None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        return find_training_run(client, found.experiment_id, model_name, directory_md5(directory))
    except Exception as error:  # a listing must not fail on a store problem; training reports those
        log.debug("cannot look up the training run of %s: %s", directory, error)
        return None


def log_test_figures(
    settings: Any, model_name: str, model_digest: str, figures: Mapping[str, float], *,
    data_source: str, params: Mapping[str, Any], datasets: Mapping[str, Any] | None = None,
) -> None:
    """Add the evaluate stage's test figures to the run that trained the model, or to a new run
    when that run is not in this store. ``settings`` is params.yaml's ``tracking`` section."""
    if not settings.enabled:
        return
    store = {"experiment": settings.experiment, "busy_timeout_s": settings.busy_timeout_s}
    tracker = reopen_training_run(enabled=True, model_name=model_name, model_digest=model_digest, **store)
    if tracker.enabled:
        tracker.log_metrics(figures)
        tracker.log_inputs(datasets or {})
        return
    log.warning("%s: the run that trained it is not in this MLflow store (model pulled from a DVC remote, or "
                "trained against another MLFLOW_TRACKING_URI); logging the test figures to a new run", model_name)
    tags = run_tags(model_name, data_source, {"stage": "evaluate", EVALUATED_DIGEST_TAG: model_digest},
                    source_name="stages/evaluate.py")
    with tracked_run(lambda: start_run(enabled=True, run_name=f"{model_name}-{os.environ.get('DVC_EXP_NAME', 'workspace')}",
                                       tags=tags, **store)) as tracker:
        tracker.log_params({"params": params})
        tracker.log_metrics(figures)
        tracker.log_inputs(datasets or {})


def run_tags(model_name: str, data_source: str, extra: Mapping[str, Any] | None = None,
             source_name: str = "") -> dict[str, str]:
    """Tags that tie a run to its DVC experiment, code revision and data: MLflow's own system
    tags (the UI's Source column shows the script and commit) and pricer's DVC tags."""
    commit = _git_revision()
    tags = {
        "model": model_name,
        "data_source": data_source,
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "mlflow.source.name": source_name,
        "mlflow.source.type": "LOCAL",
    }
    tags.update({f"version.{k}": v for k, v in library_versions().items()})
    tags["version.python"] = platform.python_version()
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags


def _git_revision() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()
