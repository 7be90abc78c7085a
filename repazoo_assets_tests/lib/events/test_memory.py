"""Arrow's C++ allocations (the Parquet writer's and reader's buffers) come from the system
allocator once the package is imported: checked in fresh interpreters, where the import order
is known."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
{first}
from repazoo_assets.lib.events import memory
memory.use_system_allocator()
memory.use_system_allocator()  # idempotent: one probe, at most one warning
print("native-system", memory._native_code_uses_system_allocator())
"""


def run_probe(first: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    return subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)


def test_the_package_makes_arrow_native_code_allocate_with_the_system_allocator():
    done = run_probe("import repazoo_assets")
    assert "native-system True" in done.stdout
    assert "WARNING" not in done.stderr


@pytest.mark.parametrize(
    ("first", "env"),
    [("import pyarrow", {}), ("import repazoo_assets", {"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"})],
    ids=["pyarrow-imported-first", "operator-chose-mimalloc"],
)
def test_native_allocations_elsewhere_are_reported_once(first, env):
    """pyarrow loaded before the package (its C++ default already chosen), or an operator's own
    choice (kept): the pipeline still runs, and says once why its memory will be higher."""
    done = run_probe(first, **env)
    assert "native-system False" in done.stdout
    assert done.stderr.count("does not allocate with the system allocator") == 1
