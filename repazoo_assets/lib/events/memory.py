"""Which allocator Arrow uses for the event pipeline.

Arrow's default pool (mimalloc in these wheels) keeps freed pages in per-thread heaps for reuse.
The pipeline allocates from four threads (the export's reader, the processing's two encoders and
its writer) and frees most of it every batch, so those heaps kept growing with the run: peak RSS
at 1M events was 506 MB with mimalloc, 367 MB with the system allocator (glibc), at no measured
CPU cost (13.8 s against 19.7 s of processing CPU, same load). The system allocator also hands
memory back on `release_unused()` (malloc_trim), so the footprint follows the batch, not the run.

Two defaults, set in two places. `pa.set_memory_pool` (below) changes only the pool of pyarrow's
Python layer (arrays built from Python, compute functions called from it). Arrow's C++ code, the
Parquet writer's and reader's column buffers among it, allocates from the C++ process default,
read once from `ARROW_DEFAULT_MEMORY_POOL` when pyarrow loads: the package's `__init__` sets it to
`system` before anything imports pyarrow. With only the Python-layer switch, processing 5M events
kept a 1 GB mimalloc reservation holding 76 MB (57 MB at 1M): peak RSS of processing alone 309 MB
against 257 MB with both, 289 against 245 MB at 1M (measured here, one process per phase).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import pyarrow as pa

log = logging.getLogger(__name__)

# glibc's mallopt parameter for the number of malloc arenas. By default glibc gives each thread
# that allocates concurrently its own arena (up to 8 per core), and freed memory stays in them:
# with the pipeline's threads, peak RSS at 200,000 events per hour went from 470 MB to 405 MB
# with two arenas (382 -> 369 MB at 1M events a day), at no measured CPU cost.
_M_ARENA_MAX = -8
ARENAS = 2
# glibc's mallopt parameter for the size from which an allocation gets its own mapping (given
# back to the system when freed) instead of a piece of a heap. glibc starts at 128 KB but raises
# the threshold to the size of each such block freed, up to 32 MB, so the pipeline's multi-MB
# column buffers soon came from the heaps, and the holes they left between smaller long-lived
# blocks could not be given back: 45 MB of free heap at the peak of processing 5M events, peak
# RSS 325 MB against 287 MB with the threshold fixed at 256 KB (export: 352 -> 321 MB).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024


def use_system_allocator() -> None:
    """Make the system allocator Arrow's default pool for this process, with few malloc arenas
    and a fixed mmap threshold (idempotent). `ARROW_DEFAULT_MEMORY_POOL=system
    MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=262144` in the environment do the same from the
    process's start. Logs a warning, once, where Arrow's C++ code still allocates elsewhere (the
    variable names another pool, or pyarrow was imported before this package could set it)."""
    global _configured
    if _configured:
        return
    _configured = True
    pool = pa.system_memory_pool()
    if pa.default_memory_pool().backend_name != pool.backend_name:
        pa.set_memory_pool(pool)
    _limit_arenas()
    if not _native_code_uses_system_allocator():
        log.warning(
            "Arrow's C++ code does not allocate with the system allocator (ARROW_DEFAULT_MEMORY_POOL names "
            "another pool, or pyarrow was imported before repazoo_assets): the event pipeline's peak memory "
            "will be higher; set ARROW_DEFAULT_MEMORY_POOL=system in the environment"
        )


_configured = False


def _native_code_uses_system_allocator() -> bool:
    """True when a Parquet write (C++ allocations from the process default pool) allocates
    nothing from Arrow's other pools, mimalloc and jemalloc (their allocation counters)."""
    import pyarrow.parquet as pq

    def counts() -> list[int]:
        found = []
        for make in (getattr(pa, "mimalloc_memory_pool", None), getattr(pa, "jemalloc_memory_pool", None)):
            try:
                found.append(make().num_allocations() if make else 0)
            except NotImplementedError:  # not built into this pyarrow
                found.append(0)
        return found

    before = counts()
    pq.write_table(pa.table({"probe": ["x" * 64]}), pa.BufferOutputStream())
    return counts() == before


def _limit_arenas() -> None:
    """At most `ARENAS` glibc malloc arenas for threads started from now on (what
    `MALLOC_ARENA_MAX=2` does from the start), and blocks of `MMAP_THRESHOLD` bytes or more
    mapped on their own (which also stops glibc's dynamic threshold); nothing where the C library
    is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, ARENAS)
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
