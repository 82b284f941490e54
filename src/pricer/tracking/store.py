"""The MLflow store a project's runs go to: where it is, opening it, and refusing a store that
cannot be used before any training starts.

The default store is SQLite at the project root. ``dvc exp run --temp`` and ``--queue`` run the
pipeline in a copy under ``<root>/.dvc/tmp/exps/``; runs from there must still land in the
root's store, so the root is found by stepping out of that folder. ``MLFLOW_TRACKING_URI``
overrides everything (a shared tracking server, say).

Waits are bounded: a busy SQLite store (another process writing, e.g. a parallel queued
experiment) is waited on for ``busy_timeout_s`` seconds (``tracking.busy_timeout_s``, default
60), then the run fails with a TrackingError naming the store, before any training starts; a
tracking server gets one health check with a 10 s timeout, and MLflow's HTTP retries are bounded
(``BOUNDED_HTTP_WAITS``, unless the user set them). Whatever the store or server answers that is
not about the request itself (a damaged file, a server that stops answering, a refused login, an
artifact store failing) becomes one ``TrackingError`` line naming the store, from ``store_errors``:
the stages and the ``pricer`` commands all go through it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pricer.errors import PricerError
from pricer.layout import project_root
from pricer.signals import sigterm_held

STORE_FILE = "mlflow.db"
# Ties a run to the model directory it trained, by content, so that no DVC output has to hold a
# run id (which would change the output's hash on every run); a logged model is checked against it.
MODEL_DIGEST_TAG = "pricer.model_digest"


ARTIFACTS_DIR = "mlartifacts"


SQLITE_BUSY_TIMEOUT_S = 60  # parallel queued experiments write to one SQLite file


# The MLflow 3 UI opens an experiment in its GenAI mode unless the experiment says otherwise
# (values from the UI's ExperimentKind enum) or the address asks for the training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


MODEL_TRAINING_KIND = "custom_model_development"


UI_PORT = 5000


# The UI keeps its choice of runs-table columns in each browser, and a first visit shows no
# metric. A saved view is the UI's own way to open the table with chosen columns: an experiment
# tag ``mlflow.sharedViewState.<key>`` holding the view (the envelope the UI writes when a user
# saves one), applied when the runs page's address carries ``viewStateShareKey=<key>`` and
# listed under "Views". pricer keeps one such view and links to it. The address must name the
# runs page itself (``/runs``): the bare experiment address redirects and drops the key.
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."


RUNS_VIEW_KEY = "pricer-runs"


RUNS_VIEW_NAME = "pricer: test MAE"


RUNS_TABLE_METRICS = ("test_mae", "test_mae_ci95_low", "test_mae_ci95_high", "best_val_mae")


def runs_view_state() -> dict[str, Any]:
    """The runs table pricer links to: test MAE with its 95% interval and the best validation
    MAE beside each run's name, then the UI's default columns (source, dataset, models)."""
    metrics = [f"metrics.`{name}`" for name in RUNS_TABLE_METRICS]
    defaults = [f"attributes.`{name}`" for name in ("Source", "Models", "Dataset")]
    return {
        "selectedColumns": defaults + metrics,
        "columnOrder": ["attributes.`Run Name`", "runDateAndNestInfo", *metrics,
                        "attributes.`Source`", "attributes.`Dataset`", "duration", "attributes.`Models`"],
        "columnWidths": {"attributes.`Dataset`": 200},
    }


def runs_view_tag(experiment_tags: Mapping[str, str]) -> dict[str, str]:
    """The tag that keeps pricer's runs view, when ``experiment_tags`` lack it or hold an older
    view; empty when the view is current (so a rerun writes nothing)."""
    key = SHARED_VIEW_TAG_PREFIX + RUNS_VIEW_KEY
    state = json.dumps(runs_view_state(), separators=(",", ":"))
    with contextlib.suppress(TypeError, ValueError, KeyError):
        held = json.loads(experiment_tags[key])
        if held["state"] == state and held["name"] == RUNS_VIEW_NAME:
            return {}
    now_ms = int(time.time() * 1000)
    envelope = {"name": RUNS_VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms, "state": state}
    return {key: json.dumps(envelope, separators=(",", ":"))}


class TrackingError(PricerError):
    """The tracking store cannot be used; raised before any training starts."""


def default_tracking_uri(root: Path, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> str:
    return f"sqlite:///{root / STORE_FILE}?timeout={busy_timeout_s:g}"


def resolve_tracking_uri(
    root: Path, environ: Mapping[str, str] | None = None, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root, busy_timeout_s)


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


def ui_address(tracking_uri: str, experiment_id: str | None, port: int = UI_PORT) -> str:
    """Where to see an experiment's training runs: the tracking server's page, or for a local
    store the command that serves it and the page it serves (in model-training mode)."""
    page = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_KEY}"
    if is_server_uri(tracking_uri):
        return f"{tracking_uri.rstrip('/')}/{page}"
    store = tracking_uri.split("?", 1)[0]
    return f"`mlflow ui --backend-store-uri {store} --port {port}`, then open http://127.0.0.1:{port}/{page}"


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


# MLflow retries a failing request 7 times with backoff factor 2 (about 4 minutes, then a
# traceback) and waits 120 s for each answer. pricer's defaults fail within seconds to a minute;
# a user's own setting of any of these wins.
BOUNDED_HTTP_WAITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


# MLflow answers about the request itself with these codes (no such model, a name taken, a bad
# value): the caller explains those in its own terms. Every other failure is the store's (MLflow
# reports a database error as BAD_REQUEST, so that code is the store's too).
REQUEST_ERROR_CODES = ("RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def bound_http_waits(environ: dict[str, str] | None = None) -> None:
    """Give MLflow's HTTP retry settings pricer's bounded defaults, where the user set none."""
    environ = os.environ if environ is None else environ
    for name, value in BOUNDED_HTTP_WAITS.items():
        environ.setdefault(name, value)


def store_name(uri: str) -> str:
    """How a message names a store: a server's address, a database without its password, an
    SQLite file's path."""
    path = _sqlite_file(uri)
    if path is not None:
        return f"MLflow store {path}"
    parts = urlsplit(uri)
    if parts.password is not None:  # postgresql://user:password@host/db: never print the password
        host = parts.hostname or ""
        netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
        uri = urlunsplit(parts._replace(netloc=netloc))
    kind = "MLflow tracking server" if is_server_uri(uri) else "MLflow store"
    return f"{kind} {uri.split('?', 1)[0].rstrip('/')}"


def is_request_error(error: BaseException) -> bool:
    """An MLflow error about the request (see REQUEST_ERROR_CODES), not about the store."""
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException) and error.error_code in REQUEST_ERROR_CODES


def _login() -> str:
    return os.environ.get("MLFLOW_TRACKING_USERNAME", "")


def _failure_reason(error: BaseException) -> str:
    """What went wrong, in a few words: MLflow's messages run to many lines and URLs."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if "Max retries exceeded" in text or "ConnectionError" in text or "timed out" in text.lower():
        if "too many" in text and "error responses" in text:
            codes = text[text.index("too many"):].split(" error responses", 1)[0].removeprefix("too many ")
            return f"it answered HTTP {codes} to every try"
        if "timed out" in text.lower() or "Timeout" in text:
            return "it did not answer in time (MLFLOW_HTTP_REQUEST_TIMEOUT)"
        return "it does not answer (connection refused or reset)"
    status = next((code for code in ("500", "502", "503", "504") if f"error code {code}" in text), None)
    if status:
        return f"it answered HTTP {status}: {text.split('Response body:', 1)[-1].strip()[:200]}"
    return f"{type(error).__name__}: {text[:300]}"


def store_problem(uri: str, error: BaseException, action: str) -> str:
    """One line for a store failure: the store, the login for an access problem, what failed,
    and what to do."""
    from mlflow.exceptions import MlflowException

    name = store_name(uri)
    code = error.error_code if isinstance(error, MlflowException) else ""
    if code == "UNAUTHENTICATED":
        login = _login()
        if not login or not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
            given = f" (the username is {login!r}, the password is unset)" if login else ""
            return (f"{name} asks for a login (HTTP 401) to {action}: set MLFLOW_TRACKING_USERNAME and "
                    f"MLFLOW_TRACKING_PASSWORD{given}")
        return (f"{name} refused the login {login!r} (HTTP 401, wrong username or password) to {action}: "
                "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    if code == "PERMISSION_DENIED":
        return (f"{name}: the login {_login() or '(none)'!r} may not {action} (HTTP 403 permission denied); "
                "ask the server's admin for the permission (docs/team.md)")
    if _sqlite_file(uri) is not None:
        first_line = (str(error).strip().splitlines() or [""])[0]
        return (f"MLflow store {uri} cannot be used: {type(error).__name__}: {first_line} "
                f"({_sqlite_hint(error)} run with -S tracking.enabled=false)")
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", BOUNDED_HTTP_WAITS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    return (f"{name} failed to {action}: {_failure_reason(error)} (after {retries} retries; "
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT set how long pricer waits)"
            if is_server_uri(uri) else f"{name} failed to {action}: {_failure_reason(error)}")


@contextmanager
def store_errors(uri: str, action: str) -> Iterator[None]:
    """Turn a store failure inside the block into a one-line TrackingError naming the store;
    pricer's own errors and MLflow's answers about the request itself pass through."""
    try:
        yield
    except PricerError:
        raise
    except Exception as error:
        if is_request_error(error):
            raise
        raise TrackingError(store_problem(uri, error, action)) from None


class GuardedClient:
    """An ``MlflowClient`` whose every call goes through ``store_errors``: a store failure in
    the middle of a stage or a command is one line, wherever the call is made. A SIGTERM waits
    for the call (``sigterm_held``): cut mid-transaction, the call left the SQLite store locked
    for the one that marks the run KILLED, and the run stayed RUNNING."""

    def __init__(self, client: Any, uri: str) -> None:
        self._client = client
        self._uri = uri

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found
        action = name.replace("_", " ")

        def guarded(*args: Any, **kwargs: Any) -> Any:
            with sigterm_held(), store_errors(self._uri, action):
                return found(*args, **kwargs)

        return guarded


def _check_reachable(uri: str) -> None:
    """Fail in seconds, not after MLflow's default minutes of retries, on a dead server."""
    if not is_server_uri(uri):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10):
            pass
    except (urllib.error.URLError, OSError) as error:
        raise TrackingError(
            f"{store_name(uri)} is unreachable ({error}); start it, unset "
            "MLFLOW_TRACKING_URI to use the local store, or run with -S tracking.enabled=false"
        ) from None


def _sqlite_hint(error: BaseException) -> str:
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


def _check_database_artifacts(uri: str, experiment: str) -> None:
    """A database other than the project's own SQLite file (``postgresql://``, ``mysql://``) is
    shared: its runs' artifacts must go where every user can read them, which only the user can
    say, by creating the experiment with its artifact location."""
    if is_server_uri(uri) or _sqlite_file(uri) is not None:
        return
    raise TrackingError(
        f"{store_name(uri)} has no experiment {experiment!r}, and pricer will not choose where its artifacts go: "
        f"create it with an artifact location every user can read, `mlflow experiments create --experiment-name "
        f"{experiment} --artifact-location s3://<bucket>/<path>` (with MLFLOW_TRACKING_URI set as now), or point "
        "MLFLOW_TRACKING_URI at a tracking server (`mlflow server --artifacts-destination ...`; docs/team.md)")


def mlflow_client(uri: str) -> GuardedClient:
    """The one place pricer opens an MLflow client (the registry lives in the same store as the
    runs), checked first: a dead server or a damaged SQLite file fails here, in seconds, as one
    line; every later call goes through ``store_errors``, with MLflow's HTTP waits bounded."""
    bound_http_waits()
    _check_reachable(uri)
    _check_sqlite_integrity(uri)
    from mlflow.tracking import MlflowClient  # importing mlflow takes seconds: only when a store is used

    with store_errors(uri, "open it"):
        return GuardedClient(MlflowClient(tracking_uri=uri, registry_uri=uri), uri)


def connect(uri: str, experiment: str, root: Path, lock_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> tuple[Any, str]:
    """Open the store and make sure ``experiment`` exists; return (client, experiment_id)."""
    from mlflow.exceptions import MlflowException

    try:
        with _store_lock(root, lock_timeout_s):
            client = mlflow_client(uri)
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                _check_artifact_location(uri, found, root)
                if found.tags.get(EXPERIMENT_KIND_TAG) is None:  # a store from before pricer set it
                    client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
                for key, value in runs_view_tag(found.tags).items():  # a store from before pricer kept it
                    client.set_experiment_tag(found.experiment_id, key, value)
                return client, found.experiment_id
            _check_database_artifacts(uri, experiment)
            kind = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND} | runs_view_tag({})
            try:
                if is_server_uri(uri):
                    # a tracking server chooses where artifacts go, so that every client can see them
                    experiment_id = client.create_experiment(experiment, tags=kind)
                else:
                    artifacts = (root / ARTIFACTS_DIR).resolve()
                    experiment_id = client.create_experiment(experiment, artifact_location=artifacts.as_uri(),
                                                             tags=kind)
            except MlflowException as error:  # another clone created it in the meantime
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment_id = client.get_experiment_by_name(experiment).experiment_id
            return client, experiment_id
    except TrackingError:
        raise
    except Exception as error:  # MLflow raises many types for a locked/corrupt/foreign store
        raise TrackingError(store_problem(uri, error, "open the experiment")) from None


def open_store(experiment: str, root: Path | None, busy_timeout_s: float) -> tuple[str, Any, str]:
    """The project's store (or MLFLOW_TRACKING_URI's): its uri, a client, the experiment id."""
    root = root or project_root()
    uri = resolve_tracking_uri(root, busy_timeout_s=busy_timeout_s)
    return (uri, *connect(uri, experiment, root, busy_timeout_s))
