"""The data stages on a Dask cluster give the bytes they give on this machine (issue 22, part 2)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pricer import engine
from pricer.features import VectorizerSettings, vectorize_split
from pricer.layout import SPLITS
from pricer.sources import write_raw_splits

distributed = pytest.importorskip("dask.distributed")


def _files(directory: Path) -> dict[str, bytes]:
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def _fetch_and_vectorize(root: Path, n_jobs: int) -> tuple[dict, dict[str, bytes]]:
    report = write_raw_splits(root / "raw", "synthetic", synthetic_items=12_000, seed=3)
    settings = VectorizerSettings(n_features=512)
    for split in SPLITS:
        vectorize_split(root / "raw" / f"{split}.parquet", root / "features", split, settings,
                        chunk_rows=2_500, n_jobs=n_jobs)
    return report, _files(root)


def test_a_local_dask_cluster_gives_identical_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engine.SCHEDULER_ENV, raising=False)
    local_report, local_files = _fetch_and_vectorize(tmp_path / "local", n_jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        monkeypatch.setenv(engine.SCHEDULER_ENV, cluster.scheduler_address)
        with distributed.Client(cluster) as client:
            dask_report, dask_files = _fetch_and_vectorize(tmp_path / "dask", n_jobs=1)
            # The work really ran on the workers: each has run tasks.
            ran = client.run(lambda dask_worker: len(dask_worker.state.log))
    assert all(count > 0 for count in ran.values()) and len(ran) == 2
    assert dask_report == local_report
    assert sorted(dask_files) == sorted(local_files) and len(local_files) > 10
    assert all(dask_files[name] == local_files[name] for name in local_files)


def test_an_unreachable_scheduler_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine.SCHEDULER_ENV, "tcp://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2)
    started = time.monotonic()
    expected = r"^PRICER_DASK_SCHEDULER=tcp://127\.0\.0\.1:9: cannot reach the Dask scheduler within 2 s .*unset"
    with pytest.raises(engine.EngineError, match=expected), engine.ordered_map(1):
        pass
    assert time.monotonic() - started < 30


def test_without_an_address_work_runs_locally_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engine.SCHEDULER_ENV, raising=False)
    for n_jobs in (1, 2):
        with engine.ordered_map(n_jobs) as run:
            assert list(run(abs, range(-20, 0))) == list(range(20, 0, -1))
