"""The MLflow store: naming it without secrets, bounded waits, and one line for its failures."""

import os
import signal

import pytest

from pricer import tracking


def test_a_store_is_named_without_its_password():
    assert (tracking.store_name("postgresql://mlflow:s3cret@db:5432/mlflow?sslmode=require")
            == "MLflow store postgresql://mlflow@db:5432/mlflow")
    assert tracking.store_name("http://127.0.0.1:5000/") == "MLflow tracking server http://127.0.0.1:5000"


def test_mlflow_http_retries_are_bounded_unless_the_user_set_them():
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "300"}
    tracking.bound_http_waits(environ)
    assert environ == {"MLFLOW_HTTP_REQUEST_TIMEOUT": "300", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def test_the_guarded_client_turns_store_failures_into_one_line_and_lets_request_errors_through(tmp_path,
                                                                                                monkeypatch):
    from mlflow.exceptions import MlflowException

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.resolve_tracking_uri(tmp_path)
    client, experiment_id = tracking.connect(uri, "pricer", tmp_path)
    with pytest.raises(MlflowException) as taken:  # about the request: the caller decides
        client.create_experiment("pricer")
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"
    (tmp_path / "mlflow.db").write_bytes(b"\0" * 8192)  # the store breaks under a running client
    with pytest.raises(tracking.TrackingError, match=r"^MLflow store .*mlflow\.db.* cannot be used: .*"
                                                     r"tracking\.enabled=false\)$") as failed:
        client.search_runs([experiment_id])
    assert "\n" not in str(failed.value)


class _Stop(BaseException):
    pass


def test_sigterm_waits_for_a_store_call_to_end_whole_then_stops_the_stage():
    # cut mid-transaction, a call left the SQLite store locked for the one that marks the run KILLED
    from pricer.signals import sigterm_raises
    from pricer.tracking.store import GuardedClient

    calls = []

    class Store:
        def log_batch(self, run_id):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):  # the interpreter runs a handler between bytecodes: here
                pass
            calls.append(run_id)
            return "logged"

        def set_terminated(self, run_id, status):
            calls.append(status)

    client = GuardedClient(Store(), "sqlite:///mlflow.db")
    with pytest.raises(_Stop), sigterm_raises(_Stop):
        try:
            client.log_batch("run-1")
            calls.append("went on after the call")
        except _Stop:
            client.set_terminated("run-1", "KILLED")
            raise
    assert calls == ["run-1", "KILLED"]
