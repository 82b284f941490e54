"""Hugging Face Hub datasets: the commit probe, the cached snapshot, the unreachable-Hub message.

Before loading a Hub dataset we ask the Hub for the dataset's commit (one API call with a
:data:`HUB_PROBE_TIMEOUT_S` timeout and no retries): it gives the commit sha for the report,
pins the download to it, and turns "Hub unreachable" into a clear error in seconds instead of
``datasets``' ~25 s of retries (connection refused) or minutes (a host that never answers).
With ``HF_HUB_OFFLINE=1`` the probe is skipped and only the local Hub cache is used.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from pricer.sources.batches import SplitBatches
from pricer.sources.errors import DataError, describe_error
from pricer.sources.local import dataset_batches, load_hub_layout_dir, parquet_files

logger = logging.getLogger(__name__)

HUB_PROBE_TIMEOUT_S = 10.0


def load_hub(dataset_id: str, revision: str | None) -> tuple[dict[str, SplitBatches], str | None]:
    import datasets

    commit = resolve_hub_commit(dataset_id, revision)
    if datasets.config.HF_HUB_OFFLINE:
        snapshot = cached_hub_snapshot(dataset_id, revision)
        if snapshot is not None:
            logger.info("%s: HF_HUB_OFFLINE is set; reading the cached snapshot %s", dataset_id, snapshot)
            return load_hub_layout_dir(dataset_id, snapshot), snapshot.name
    try:
        # Pinned to the commit the probe saw, so the report's sha is the data's sha.
        loaded = datasets.load_dataset(dataset_id, revision=commit or revision)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise DataError(f"{dataset_id}: no such Hub dataset or revision {revision!r}: {error}") from error
    except ConnectionError as error:
        raise DataError(_hub_unreachable_message(dataset_id, revision, error)) from error
    except Exception as error:
        raise DataError(f"{dataset_id}: could not load the Hub dataset: {describe_error(error)}") from error
    if isinstance(loaded, datasets.Dataset):
        return {"train": dataset_batches(dataset_id, "train", loaded)}, commit
    return {str(split): dataset_batches(dataset_id, str(split), dataset) for split, dataset in loaded.items()}, commit


def cached_hub_snapshot(dataset_id: str, revision: str | None) -> Path | None:
    """The Hub cache's snapshot folder of ``revision`` (None = main) when it holds parquet files.

    ``datasets`` 5.2 in offline mode only looks in its own Arrow cache (filled by an earlier online
    ``load_dataset``); the Hub cache that ``hf download`` and ``load_dataset`` itself fill
    (``$HF_HOME/hub/datasets--owner--name/snapshots/<sha>/``) is ignored, so a dataset
    downloaded there could not be used offline. We read that snapshot as a Hub-layout
    directory; its folder name is the commit sha, so the report keeps the resolved revision.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(dataset_id, repo_type="dataset", revision=revision, local_files_only=True)
    except LocalEntryNotFoundError as error:
        if type(error).__name__ == "IncompleteSnapshotError":  # huggingface_hub >= 1.x: a partial download
            raise DataError(f"{dataset_id}: {error}") from error
        return None
    snapshot = Path(folder)
    return snapshot if parquet_files(snapshot) else None


def resolve_hub_commit(dataset_id: str, revision: str | None) -> str | None:
    """The commit sha of ``revision`` (None = main); None when offline. One bounded API call."""
    import datasets
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if datasets.config.HF_HUB_OFFLINE:
        logger.info("%s: HF_HUB_OFFLINE is set; using the local Hub cache, commit sha not resolved", dataset_id)
        return None
    try:
        # dataset_info makes a single request (no retry loop), so the timeout bounds the wait.
        info = HfApi().dataset_info(dataset_id, revision=revision, timeout=HUB_PROBE_TIMEOUT_S)
    except RevisionNotFoundError as error:
        raise DataError(f"{dataset_id}: the Hub dataset has no revision {revision!r}") from error
    except RepositoryNotFoundError as error:
        raise DataError(
            f"{dataset_id}: no such Hub dataset (or it is private/gated and no token grants access)"
        ) from error
    except HfHubHTTPError as error:
        raise DataError(f"{dataset_id}: the Hub refused the request: {describe_error(error)}") from error
    except Exception as error:  # network failures arrive as several client-library types
        raise DataError(_hub_unreachable_message(dataset_id, revision, error)) from error
    logger.info("%s: revision %s is commit %s", dataset_id, revision or "main", info.sha)
    return info.sha


def _hub_unreachable_message(dataset_id: str, revision: str | None, error: BaseException) -> str:
    import datasets

    local_dir = dataset_id.split("/")[-1]
    pin = f" --revision {revision}" if revision else ""
    why = (
        "HF_HUB_OFFLINE is set and the dataset is not in the local Hub cache"
        if datasets.config.HF_HUB_OFFLINE
        else f"could not reach the Hugging Face Hub: {describe_error(error)}"
    )
    cached = None
    if not datasets.config.HF_HUB_OFFLINE:
        with contextlib.suppress(DataError):
            cached = cached_hub_snapshot(dataset_id, revision)
    if cached is not None:
        why += f". This revision is in the local Hub cache ({cached}): rerun with HF_HUB_OFFLINE=1 to use it"
    return (
        f"{dataset_id}: {why}. To use a local copy instead, on a machine with network run\n"
        f"    hf download {dataset_id} --repo-type dataset{pin} --local-dir {local_dir}\n"
        f"(`huggingface-cli download` with older huggingface_hub), copy the {local_dir}/ folder "
        f"next to params.yaml, then run\n"
        f"    dvc exp run -S data.source={local_dir}"
    )
