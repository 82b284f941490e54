"""The migrated-once MLflow store of tests/conftest.py: a store copied from it is what MLflow's
own migrations make, at MLflow's current schema revision, and its own store."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from mlflow.store.db.utils import _get_latest_schema_revision
from mlflow.tracking import MlflowClient


def _schema(database: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def test_a_new_store_is_a_copy_of_the_migrated_template_at_the_current_schema(mlflow_store_template, tmp_path):
    copies = mlflow_store_template.copies
    store = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{store}")
    (default,) = client.search_experiments()  # opening the store creates it, and its default experiment
    assert mlflow_store_template.copies > copies, "the store was migrated anew, not copied"
    assert _schema(store) == _schema(mlflow_store_template.template) and len(_schema(store)) > 20
    with contextlib.closing(sqlite3.connect(store)) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == _get_latest_schema_revision()
    assert default.name == "Default"
    experiment = client.create_experiment("pricer", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "test_mae", 1.5)
    assert client.get_run(run.info.run_id).data.metrics == {"test_mae": 1.5}
    # the template itself stays empty: nothing a store wrote went back into it
    with contextlib.closing(sqlite3.connect(mlflow_store_template.template)) as connection:
        assert connection.execute("SELECT count(*) FROM experiments").fetchone() == (0,)
