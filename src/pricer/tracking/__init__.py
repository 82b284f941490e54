"""MLflow tracking: the store a project's runs go to (``store``) and the runs themselves
(``runs``). Everything the stages, the CLI and the tests use is importable from here."""

from pricer.tracking.runs import (
    EVALUATED_DIGEST_TAG,
    KEY_LIBRARIES,
    MODEL_DIGEST_TAG,
    Tracker,
    find_training_run,
    flatten,
    library_versions,
    log_test_figures,
    reopen_training_run,
    run_tags,
    start_run,
    tracked_run,
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
    TrackingError,
    connect,
    default_tracking_uri,
    is_server_uri,
    open_client,
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
    "ARTIFACTS_DIR", "BOUNDED_HTTP_WAITS", "open_client", "store_errors", "store_name", "EVALUATED_DIGEST_TAG", "EXPERIMENT_KIND_TAG", "KEY_LIBRARIES", "MODEL_DIGEST_TAG",
    "MODEL_TRAINING_KIND", "RUNS_TABLE_METRICS", "RUNS_VIEW_KEY", "RUNS_VIEW_NAME",
    "SHARED_VIEW_TAG_PREFIX", "SQLITE_BUSY_TIMEOUT_S", "STORE_FILE", "UI_PORT", "Tracker", "TrackingError", "connect",
    "default_tracking_uri", "find_training_run", "flatten", "is_server_uri", "library_versions", "log_test_figures",
    "open_store", "project_root", "reopen_training_run", "resolve_tracking_uri", "run_tags", "runs_view_state", "runs_view_tag", "start_run",
    "tracked_run", "training_run_of", "ui_address",
]
