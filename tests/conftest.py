"""Shared fixtures: tiny, deterministic data so every unit test runs in well under a second.

``mlflow_store_template`` (session, autouse): every new SQLite MLflow store this process opens
starts as a copy of one empty store migrated once per session, instead of being migrated anew
(seconds each, for about 40 stores).

The suite runs in three pytest-xdist workers (pyproject.toml: ``-n 3 --dist loadscope``): a worker
takes a whole test module at a time, so module fixtures are built once and a module's tests run
in their order. The end-to-end modules, the slowest, are handed out first, the longest of them
first (``LONGEST_FIRST``), so that no worker is left finishing a long module while the others idle.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "real_items_sample.parquet"


# The end-to-end modules that take longest, longest first (measured with `--durations=0`); the
# others follow in collection order. A name missing here only costs balance, never a test.
LONGEST_FIRST = ("test_sweep.py", "test_interruption.py", "test_team.py", "test_team_faults.py", "test_distributed.py",
                 "test_docs.py", "test_compare.py", "test_reliability.py", "test_nodes.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def order(item: pytest.Item) -> tuple[bool, int]:
        module = Path(item.nodeid.split("::", 1)[0])
        end_to_end = module.parts[:2] == ("tests", "e2e")
        longest = LONGEST_FIRST.index(module.name) if module.name in LONGEST_FIRST else len(LONGEST_FIRST)
        return not end_to_end, longest if end_to_end else 0

    items.sort(key=order)  # stable: in collection order otherwise


class MigratedStoreTemplate:
    """Stands in for MLflow's ``_initialize_tables(engine)`` (create the tables of an empty
    store, then run every schema migration): on SQLite files, the first call migrates an empty
    ``template`` that way and each call copies it into the new store (SQLite's backup API).
    MLflow then checks the copy's schema revision against its own (``_verify_schema``), as for
    any store it opens, and creates the store's default experiment."""

    def __init__(self, template: Path, migrate: Callable) -> None:
        self.template = template
        self.migrate = migrate
        self.copies = 0

    def __call__(self, engine) -> None:
        if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
            self.migrate(engine)
            return
        if not self.template.exists():
            from mlflow.store.db.utils import create_sqlalchemy_engine

            template_engine = create_sqlalchemy_engine(f"sqlite:///{self.template}")
            try:
                self.migrate(template_engine)
            finally:
                template_engine.dispose()
        connection = engine.raw_connection()
        try:
            with contextlib.closing(sqlite3.connect(self.template)) as template:
                template.backup(connection.driver_connection)
        finally:
            connection.close()
        self.copies += 1


@pytest.fixture(scope="session", autouse=True)
def mlflow_store_template(tmp_path_factory) -> Iterator[MigratedStoreTemplate]:
    """New SQLite MLflow stores in this process start from one migrated template (see above).
    Stores that subprocesses open (stage scripts, ``dvc``, servers) are migrated as usual."""
    import mlflow.store.db.utils as db_utils
    import mlflow.store.model_registry.sqlalchemy_store as registry_store

    stand_in = MigratedStoreTemplate(tmp_path_factory.mktemp("mlflow-template") / "mlflow.db",
                                     db_utils._initialize_tables)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db_utils, "_initialize_tables", stand_in)  # the tracking store calls it through the module
        patch.setattr(registry_store, "_initialize_tables", stand_in)  # the registry store imported the name
        yield stand_in


@pytest.fixture
def real_sample_path() -> Path:
    if not REAL_SAMPLE.exists():
        pytest.skip(f"real data sample not present at {REAL_SAMPLE} (only on the team's machines)")
    return REAL_SAMPLE


@pytest.fixture
def tiny_texts() -> list[str]:
    words = ["steel", "plastic", "premium", "budget", "pack", "watt", "guitar", "drill", "cable", "lamp"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(120)]


@pytest.fixture
def random_csr() -> sp.csr_matrix:
    matrix = sp.random(200, 50, density=0.08, format="lil", dtype=np.float32, random_state=1)
    matrix[5, :] = 0  # an empty row: its output must be the bias alone
    return matrix.tocsr()


@pytest.fixture(scope="session")
def catalogue_features():
    """A small learnable problem: 1,200 catalogue items hashed to 512 columns, split 1000/200."""
    from pricer.catalogue import generate_catalogue
    from pricer.features import VectorizerSettings, vectorize_texts

    items = generate_catalogue(1200, seed=0)
    settings = VectorizerSettings(n_features=512)
    matrix = vectorize_texts(items["summary"].tolist(), settings)
    prices = items["price"].to_numpy()
    return settings, matrix[:1000], prices[:1000], matrix[1000:], prices[1000:], items


@dataclass(frozen=True)
class LoggedModel:
    """A tiny model trained by a tracked run in a scratch store: its directory, run and version."""

    root: Path
    directory: Path
    run_id: str
    experiment_id: str
    version: str
    texts: list[str]


def log_tiny_model(root: Path, exp_name: str, seed: int) -> LoggedModel:
    """Save a freshly initialised residual network under ``root/models/resnet`` and log it the
    way the train stage does (a run, the pyfunc model, a registry version)."""
    import torch

    from pricer import tracking
    from pricer.catalogue import generate_catalogue
    from pricer.features import VectorizerSettings
    from pricer.models import build_model
    from pricer.predictor import PricePredictor
    from pricer.target import TargetTransform

    items = generate_catalogue(300, seed=0)
    architecture = {"kind": "resnet", "n_features": 512, "hidden": 16, "layers": 3, "dropout": 0.2}
    torch.manual_seed(seed)
    predictor = PricePredictor("resnet", build_model(architecture).eval(), architecture,
                               VectorizerSettings(n_features=512),
                               TargetTransform.fit("standardized_log", items["price"].to_numpy()))
    from pricer.features import vectorize_texts
    from pricer.intervals import Calibration

    held_out = items.iloc[200:]  # the range is calibrated on items the texts below do not include
    predictor.calibration = Calibration.fit(held_out["price"].to_numpy(), predictor.predict_matrix(
        vectorize_texts(held_out["summary"].tolist(), predictor.vectorizer)))
    directory = root / "models" / "resnet"
    predictor.save(directory)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("DVC_EXP_NAME", exp_name)
        tracker = tracking.start_run(enabled=True, experiment="pricer", run_name=f"resnet-{exp_name}", root=root,
                                     tags=tracking.run_tags("resnet", "synthetic", {"data_revision": ""}))
        tracker.log_model_directory(directory, {"best_val_mae": 12.5}, register=True)
        tracker.finish()
    (version,) = tracker.client.search_model_versions(f"run_id = '{tracker.run_id}'")
    return LoggedModel(root, directory, tracker.run_id, tracker.experiment_id, version.version,
                       items["summary"].tolist()[:40])


@pytest.fixture(scope="session")
def logged_model(tmp_path_factory) -> LoggedModel:
    return log_tiny_model(tmp_path_factory.mktemp("store"), "bright-lamp", seed=0)
