"""Tests for pricer.sources.hub: plumbing with a stand-in for datasets, and the Hub's failure modes
(offline, against loopback servers only)."""

from __future__ import annotations

import hashlib
import io
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
# A child process's whole run: interpreter start and the `datasets` import (several seconds,
# three times that on a loaded 2-core machine) plus the failed request. What the bound rules out
# is the Hub client's retries with backoff, which take minutes.
HUB_ERROR_BUDGET_S = 60.0


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
    assert elapsed < HUB_ERROR_BUDGET_S, f"took {elapsed:.1f}s"


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
    assert elapsed < HUB_ERROR_BUDGET_S, f"took {elapsed:.1f}s"


def test_unknown_hub_dataset_and_revision_are_named(tmp_path: Path) -> None:
    with not_found_hub() as endpoint:
        environment = child_environment(tmp_path, HF_ENDPOINT=endpoint)
        no_dataset, _ = fetch_in_child(environment, "someone/no-such-items")
        no_revision, _ = fetch_in_child(environment, "ed-donner/items_lite", "v999")
    assert no_dataset.startswith("someone/no-such-items: no such Hub dataset")
    assert no_revision == "ed-donner/items_lite: the Hub dataset has no revision 'v999'"


# --------------------------------------------------------------------------------------------
# The Hub success path through the real libraries: a Hugging Face cache laid out on disk the
# way `hf download` / an online `load_dataset` leave it, read offline with no stand-in.

CACHED_COMMIT = "3f1c0de5a7b24e6f9c8d7e6f5a4b3c2d1e0f9a8b"
CACHED_IDS = {"train": list(range(40)), "validation": list(range(100, 106)), "test": list(range(200, 204))}


def build_hub_cache(hub_cache: Path, dataset_id: str, splits: dict[str, pd.DataFrame], commit: str) -> Path:
    """``<hub_cache>/datasets--owner--name`` as huggingface_hub writes it: content-addressed blobs
    (git sha1 for small files, sha256 for LFS files such as parquet), the commit's snapshot of
    relative symlinks into them, ``refs/main`` and the tree listing the library checks a cached
    snapshot against (``trees/<commit>.json``, huggingface_hub >= 1.x)."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils.sha import git_hash

    storage = hub_cache / repo_folder_name(repo_id=dataset_id, repo_type="dataset")
    files = {"README.md": b"---\nlicense: mit\n---\n"}
    for split, frame in splits.items():
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        files[f"data/{split}-00000-of-00001.parquet"] = buffer.getvalue()
    entries = {}
    for relative, content in files.items():
        is_lfs = relative.endswith(".parquet")
        sha256 = hashlib.sha256(content).hexdigest()
        blob = storage / "blobs" / (sha256 if is_lfs else git_hash(content))
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        pointer = storage / "snapshots" / commit / relative
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        entries[relative] = TreeCacheEntry(
            size=len(content), blob_id=git_hash(content),
            lfs_sha256=sha256 if is_lfs else None, lfs_size=len(content) if is_lfs else None,
        )
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    write_tree_cache(str(storage), commit, entries)
    return storage


@pytest.fixture
def hub_cache(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A real Hub cache of ``owner/items`` at :data:`CACHED_COMMIT`, and an offline child
    environment whose HF_HOME, HF_HUB_CACHE and HF_DATASETS_CACHE are all fresh temp dirs."""
    from huggingface_hub import scan_cache_dir

    splits = {"train": items(40), "validation": items(6, first_id=100), "test": items(4, first_id=200)}
    hub_cache = tmp_path / "hub-cache"
    build_hub_cache(hub_cache, "owner/items", splits, CACHED_COMMIT)
    # The library itself recognises the layout: one complete dataset repo, one revision, no warnings.
    info = scan_cache_dir(hub_cache)
    assert not info.warnings, info.warnings
    (repo,) = info.repos
    assert (repo.repo_id, repo.repo_type, [rev.commit_hash for rev in repo.revisions]) == (
        "owner/items", "dataset", [CACHED_COMMIT]
    )
    environment = child_environment(
        tmp_path, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub_cache), HF_DATASETS_CACHE=str(tmp_path / "datasets-cache")
    )
    return hub_cache, environment


CHILD_REPORT = """
import json, sys
from pricer.sources import DataError, fetch_splits
try:
    result = fetch_splits(sys.argv[1], revision=sys.argv[2] or None)
except DataError as error:
    print(json.dumps({"error": str(error)}))
else:
    ids = {split: frame["id"].tolist() for split, frame in result.splits.items()}
    print(json.dumps({"error": None, "report": result.report, "ids": ids}))
"""


def fetch_report_in_child(environment: dict[str, str], source: str, revision: str = "") -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD_REPORT, source, revision],
        env=environment, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("revision", [CACHED_COMMIT, ""], ids=["pinned", "main-via-refs"])
def test_a_real_hub_cache_loads_offline(hub_cache: tuple[Path, dict[str, str]], revision: str) -> None:
    _, environment = hub_cache
    answer = fetch_report_in_child(environment, "owner/items", revision)
    assert answer["error"] is None, answer["error"]
    report = answer["report"]
    assert (report["kind"], report["revision"], report["resolved_revision"]) == ("hub", revision or None, CACHED_COMMIT)
    assert report["split_strategy"] == "as_given"
    assert report["source_splits"] == {"test": 4, "train": 40, "validation": 6}
    assert answer["ids"] == CACHED_IDS


def test_a_real_hub_cache_through_the_fetch_stage(hub_cache: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    _, environment = hub_cache
    project = tmp_path / "project"
    project.mkdir()
    params = {"data": {"source": "owner/items", "revision": CACHED_COMMIT}, "train": {"progress": False}}
    (project / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "stages" / "fetch.py")],
        cwd=project, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads((project / "data" / "fetch_report.json").read_text())
    revisions = (report["source"], report["revision"], report["resolved_revision"])
    assert revisions == ("owner/items", CACHED_COMMIT, CACHED_COMMIT)
    written = {split: pd.read_parquet(project / "data" / "raw" / f"{split}.parquet") for split in CACHED_IDS}
    assert {split: frame["id"].tolist() for split, frame in written.items()} == CACHED_IDS
    assert written["train"]["summary"].tolist() == items(40)["summary"].tolist()


def test_a_real_hub_cache_with_a_file_missing_is_named(hub_cache: tuple[Path, dict[str, str]]) -> None:
    storage, environment = hub_cache[0] / "datasets--owner--items", hub_cache[1]
    (storage / "snapshots" / CACHED_COMMIT / "data" / "test-00000-of-00001.parquet").unlink()  # an interrupted download
    answer = fetch_report_in_child(environment, "owner/items", CACHED_COMMIT)
    assert answer["error"].startswith("owner/items: The cached snapshot for 'owner/items'")
    assert "data/test-00000-of-00001.parquet" in answer["error"]


def test_a_real_hub_cache_without_the_asked_revision_is_named(hub_cache: tuple[Path, dict[str, str]]) -> None:
    other_commit = "0" * 40
    answer = fetch_report_in_child(hub_cache[1], "owner/items", other_commit)
    assert "HF_HUB_OFFLINE is set and the dataset is not in the local Hub cache" in answer["error"]
    assert f"hf download owner/items --repo-type dataset --revision {other_commit}" in answer["error"]
