"""Repazoo's data platform: the Dagster code location (`repazoo_assets.definitions`) and its library."""

import os
import sys

# Arrow's C++ code (the Parquet writer's and reader's buffers among it) allocates from a process
# default chosen once, when pyarrow loads, from this variable; `pa.set_memory_pool` only changes
# what pyarrow's Python layer allocates. It must be set before the first `import pyarrow`, and
# every entry point (code location, CLI, workers, benchmarks) imports this package first. Why the
# system allocator: lib/events/memory.py. An operator's own setting wins.
if "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
