"""Data sources for the fetch stage: load product items, split them, validate every split.

``fetch_splits`` is the entry point; see :mod:`pricer.sources.resolve` for the kinds of source.
Modules: ``resolve`` (which kind a source string names), ``local`` and ``diagnose`` (files and
directories, and naming the broken one), ``hub`` (Hugging Face Hub datasets), ``synthetic``
(the generated catalogue), ``split`` (train/validation/test), ``validate`` (rows), ``fetch``.
"""

from pricer.sources.errors import DataError
from pricer.sources.fetch import FetchResult, fetch_splits, stream_splits, write_raw_splits
from pricer.sources.resolve import ResolvedSource, resolve_source

__all__ = [
    "DataError", "FetchResult", "ResolvedSource", "fetch_splits", "resolve_source", "stream_splits", "write_raw_splits",
]
