"""Set the concurrency pool limits of the Dagster instance ($DAGSTER_HOME) from a YAML file of
`pool: limit` lines (deploy/pools.yaml). The same as `dagster instance concurrency set POOL LIMIT`
for each line; idempotent, so it can run on every deploy."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from dagster import DagsterInstance


def read_limits(path: Path) -> dict[str, int]:
    limits = yaml.safe_load(path.read_text()) or {}
    if not isinstance(limits, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in limits.items()
    ):
        raise SystemExit(f"{path}: expected `pool: limit` lines with non-negative integer limits")
    return limits


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("pools.yaml")
    limits = read_limits(path)
    with DagsterInstance.get() as instance:
        for pool, limit in sorted(limits.items()):
            instance.event_log_storage.set_concurrency_slots(pool, limit)
            print(f"pool {pool}: limit {limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
