"""Tests for pricer.sources.hub: plumbing with a stand-in for datasets, and the Hub's failure modes
(offline, against loopback servers only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pytest

from helpers import not_found_hub
from pricer.sources import DataError, fetch_splits, hub

from .frames import all_ids, items

REPO_ROOT = Path(__file__).resolve().parents[2]
HUB_ERROR_BUDGET_S = 30.0


def fake_hub_datasets(
    monkeypatch: pytest.MonkeyPatch, splits: dict[str, pd.DataFrame], commit: str | None
) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def load_dataset(path: str, **kwargs: Any) -> datasets.DatasetDict:
        calls.append({"path": path, **kwargs})
        return datasets.DatasetDict({name: datasets.Dataset.from_pandas(frame) for name, frame in splits.items()})

    monkeypatch.setattr(hub, "resolve_hub_commit", lambda dataset_id, revision: commit)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_dataset_is_pinned_to_the_resolved_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    splits = {"train": items(10), "validation": items(2, first_id=10), "test": items(2, first_id=12)}
    calls = fake_hub_datasets(monkeypatch, splits, sha)
    result = fetch_splits("ed-donner/items_lite", revision="main")
    assert calls == [{"path": "ed-donner/items_lite", "revision": sha}]  # and never trust_remote_code
    report = result.report
    assert (report["kind"], report["revision"], report["resolved_revision"]) == ("hub", "main", sha)
    assert all_ids(result) == list(range(14))


def test_hub_dataset_without_train_split_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub_datasets(monkeypatch, {"validation": items(3), "test": items(3)}, None)
    with pytest.raises(DataError, match=r"ed-donner/items_lite: no 'train' split"):
        fetch_splits("ed-donner/items_lite")


def test_hub_not_found_from_datasets_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(path: str, **kwargs: Any) -> None:
        raise datasets.exceptions.DatasetNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    monkeypatch.setattr(hub, "resolve_hub_commit", lambda dataset_id, revision: None)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(DataError, match=r"someone/nothing: no such Hub dataset or revision 'v9'"):
        fetch_splits("someone/nothing", revision="v9")


def child_environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A clean environment for a child process: its own empty Hub cache, no proxies, no Hub
    settings from the caller (huggingface_hub reads them once, at import)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("HF_", "HUGGINGFACE_")) and not key.upper().endswith("_PROXY")
    }
    environment |= {
        "HF_HOME": str(tmp_path / "hf-home"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), environment.get("PYTHONPATH", "")]),
    }
    return environment | settings


CHILD = """
import json, sys
from pricer.sources import DataError, fetch_splits
try:
    fetch_splits(sys.argv[1], revision=sys.argv[2] or None)
    print(json.dumps({"error": None}))
except DataError as error:
    print(json.dumps({"error": str(error)}))
"""


def fetch_in_child(
    environment: dict[str, str], source: str = "ed-donner/items_lite", revision: str = ""
) -> tuple[str, float]:
    """Run fetch_splits in a fresh interpreter (Hub settings are read at import); the error and
    the wall time, interpreter start included."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, source, revision],
        env=environment, capture_output=True, text=True, timeout=2 * HUB_ERROR_BUDGET_S, check=False,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    error = json.loads(completed.stdout.strip().splitlines()[-1])["error"]
    assert error is not None, "fetch_splits unexpectedly succeeded"
    return error, elapsed


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_explains_local_copy(message: str) -> None:
    assert message.startswith("ed-donner/items_lite: ")
    assert "hf download ed-donner/items_lite --repo-type dataset --local-dir items_lite" in message
    assert "dvc exp run -S data.source=items_lite" in message


def test_hub_at_a_closed_port_fails_fast_with_a_local_copy_hint(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_loopback_port()}"  # bound then released: nothing listens
    message, elapsed = fetch_in_child(child_environment(tmp_path, HF_ENDPOINT=endpoint))
    assert "could not reach the Hugging Face Hub" in message and "ConnectError" in message
    assert_explains_local_copy(message)
    assert elapsed < 10, f"took {elapsed:.1f}s"


@contextmanager
def silent_server(lifetime_s: float = 2 * HUB_ERROR_BUDGET_S) -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback server that accepts connections and never answers; it stops by itself after
    ``lifetime_s`` and at the end of the with-block."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept_until_stopped() -> None:
        deadline = time.monotonic() + lifetime_s
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            accepted.append(connection)
        for connection in accepted:
            connection.close()

    thread = threading.Thread(target=accept_until_stopped, name="silent-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_hub_that_never_answers_fails_within_the_budget(tmp_path: Path) -> None:
    with silent_server() as (endpoint, accepted):
        message, elapsed = fetch_in_child(child_environment(tmp_path, HF_ENDPOINT=endpoint))
        assert accepted, "the child never connected to the silent server"
    assert "could not reach the Hugging Face Hub" in message and "Timeout" in message
    assert_explains_local_copy(message)
    assert elapsed < HUB_ERROR_BUDGET_S, f"took {elapsed:.1f}s"


def test_hub_offline_mode_without_a_cache(tmp_path: Path) -> None:
    message, elapsed = fetch_in_child(child_environment(tmp_path, HF_HUB_OFFLINE="1"))
    assert "HF_HUB_OFFLINE is set and the dataset is not in the local Hub cache" in message
    assert_explains_local_copy(message)
    assert elapsed < 10, f"took {elapsed:.1f}s"


def test_unknown_hub_dataset_and_revision_are_named(tmp_path: Path) -> None:
    with not_found_hub() as endpoint:
        environment = child_environment(tmp_path, HF_ENDPOINT=endpoint)
        no_dataset, _ = fetch_in_child(environment, "someone/no-such-items")
        no_revision, _ = fetch_in_child(environment, "ed-donner/items_lite", "v999")
    assert no_dataset.startswith("someone/no-such-items: no such Hub dataset")
    assert no_revision == "ed-donner/items_lite: the Hub dataset has no revision 'v999'"
