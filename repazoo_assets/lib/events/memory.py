"""Which allocator Arrow uses for the event pipeline.

Arrow's default pool (mimalloc in these wheels) keeps freed pages in per-thread heaps for reuse.
The pipeline allocates from four threads (the export's reader, the processing's two encoders and
its writer) and frees most of it every batch, so those heaps kept growing with the run: peak RSS
at 1M events was 506 MB with mimalloc, 367 MB with the system allocator (glibc), at no measured
CPU cost (13.8 s against 19.7 s of processing CPU, same load). The system allocator also hands
memory back on `release_unused()` (malloc_trim), so the footprint follows the batch, not the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa

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
    process's start."""
    pool = pa.system_memory_pool()
    if pa.default_memory_pool().backend_name != pool.backend_name:
        pa.set_memory_pool(pool)
        _limit_arenas()


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
