"""Everything pricer does with MLflow, and the one home of it: the store a project's runs go to
(``store``), the runs (``runs``), the data they read as dataset inputs (``inputs``), the trained
model as a ``pyfunc`` MLflow Model (``pyfunc``, loaded through ``model_code``) and the model
registry (``registry``). The stages, the CLI and the tests import from here.
"""

from pricer.tracking.runs import (
    EVALUATED_DIGEST_TAG,
    KEY_LIBRARIES,
    LOCK_DIGEST_TAG,
    MODEL_DIGEST_TAG,
    TRAINING_RUN_TAG,
    Tracker,
    experiment_name,
    find_training_run,
    library_versions,
    log_test_figures,
    reopen_training_run,
    run_name,
    run_tags,
    start_run,
    training_run,
    training_run_of,
)
from pricer.tracking.store import (
    ARTIFACTS_DIR,
    BOUNDED_HTTP_WAITS,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    RUNS_TABLE_METRICS,
    RUNS_VIEW_KEY,
    RUNS_VIEW_NAME,
    SHARED_VIEW_TAG_PREFIX,
    SQLITE_BUSY_TIMEOUT_S,
    STORE_FILE,
    UI_PORT,
    GuardedClient,
    TrackingError,
    bound_http_waits,
    connect,
    default_tracking_uri,
    is_server_uri,
    mlflow_client,
    open_store,
    project_root,
    resolve_tracking_uri,
    runs_view_state,
    runs_view_tag,
    store_errors,
    store_name,
    ui_address,
)

__all__ = [
    "ARTIFACTS_DIR", "BOUNDED_HTTP_WAITS", "EVALUATED_DIGEST_TAG", "EXPERIMENT_KIND_TAG", "KEY_LIBRARIES",
    "LOCK_DIGEST_TAG", "MODEL_DIGEST_TAG", "MODEL_TRAINING_KIND", "RUNS_TABLE_METRICS", "RUNS_VIEW_KEY",
    "RUNS_VIEW_NAME", "SHARED_VIEW_TAG_PREFIX", "SQLITE_BUSY_TIMEOUT_S", "STORE_FILE", "TRAINING_RUN_TAG", "UI_PORT",
    "GuardedClient",
    "Tracker", "TrackingError", "bound_http_waits", "connect", "default_tracking_uri", "experiment_name",
    "find_training_run",
    "is_server_uri", "library_versions", "log_test_figures", "mlflow_client", "open_store", "project_root",
    "reopen_training_run", "resolve_tracking_uri", "run_name", "run_tags", "runs_view_state", "runs_view_tag",
    "start_run", "store_errors", "store_name", "training_run", "training_run_of", "ui_address",
]
