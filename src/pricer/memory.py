"""Arrow's memory pool for the stages: one that gives freed memory back to the system.

The catalogue's text and every parquet column pricer reads are Arrow strings. pyarrow's default
pool (mimalloc in its wheels) keeps freed pages for reuse, so a stage that replaces one copy of
its text by another is charged for both: shuffling the 820,000-row catalogue into its splits
frees ~2 GB that the fetch stage's resident memory still counted (5.5 GB peak, past the 4 GB a
stage may use; 3.5 GB with jemalloc). jemalloc, told not to wait, returns freed memory at once; the system
allocator is the fallback where a pyarrow build lacks jemalloc. A pool the user chose with
``ARROW_DEFAULT_MEMORY_POOL`` is left alone.
"""

from __future__ import annotations

import os

import pyarrow as pa


def use_returning_memory_pool() -> str:
    """Make jemalloc (else the system allocator) Arrow's default pool; the pool's name."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return pa.default_memory_pool().backend_name
    for make_pool in (pa.jemalloc_memory_pool, pa.system_memory_pool):
        try:
            pool = make_pool()
        except NotImplementedError:  # this pyarrow was built without it
            continue
        pa.set_memory_pool(pool)
        if pool.backend_name == "jemalloc":
            pa.jemalloc_set_decay_ms(0)  # return freed pages at once, not after jemalloc's decay time
        return pool.backend_name
    return pa.default_memory_pool().backend_name
