"""Scale benchmark of the deployment: prints figures, asserts nothing.

1. Code location load: `import repazoo_assets.definitions` + `defs.resolve_asset_graph()` in a
   fresh process, best of N (target < 3 s).
2. `users_sensor` with N users in the app database and N registered `users` partitions, on the
   real PostgreSQL (app schema and a PostgreSQL-backed Dagster instance, each in a fresh schema):
   the first tick (no cursor), a steady-state tick (cursor at the newest user, a few new users),
   and a catch-up of N users the sensor has not yet seen, tick after tick (target < 5 s a tick).

    .venv/bin/python bench/scale.py [--users 20000] [--load-runs 3] [--database-url URL]

The backfill throughput on the multiprocess executor is measured by bench/backfill.py (see docs/deployment.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")

LOAD_SNIPPET = """
import time
start, cpu = time.perf_counter(), time.process_time()
import repazoo_assets.definitions as location
graph = location.defs.resolve_asset_graph()
print(f"{time.perf_counter() - start:.3f} {time.process_time() - cpu:.3f} {len(graph.get_all_asset_keys())}")
"""


def bench_load(runs: int) -> None:
    print(f"== code location load (fresh process, best of {runs}); load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    times, cpus, walls = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", LOAD_SNIPPET], cwd=ROOT, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        seconds, cpu, assets = out.stdout.split()
        times.append(float(seconds))
        cpus.append(float(cpu))
    print(f"import + resolve_asset_graph: best {min(times):.2f} s, all {', '.join(f'{t:.2f}' for t in times)} "
          f"({assets} asset keys); CPU time best {min(cpus):.2f} s; whole process incl. interpreter start: "
          f"best {min(walls):.2f} s")


def _schema_url(admin: sa.Engine, base_url: str, prefix: str) -> tuple[str, str]:
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    return schema, f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"


def _insert_users(engine: sa.Engine, ids: list[str], created: list[datetime]) -> None:
    from repazoo_assets.lib.db import tables as t

    rows = [{"id": i, "twitter_user_id": f"tw-{i}", "created_at": c} for i, c in zip(ids, created, strict=True)]
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(t.users), rows[start : start + 5000])


def _tick(instance, app_db, cursor):
    import dagster as dg

    from repazoo_assets.defs.twitter.sensors import users_sensor

    # As the daemon does: resources built for the tick (a new engine), torn down after it.
    started = time.perf_counter()
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"app_db": app_db}) as context:
        result = users_sensor(context)
    elapsed = time.perf_counter() - started
    new = [key for req in (result.dynamic_partitions_requests or []) for key in req.partition_keys]
    # What the daemon does with the result: register the partitions (timed apart from the tick).
    started = time.perf_counter()
    if new:
        instance.add_dynamic_partitions("users", new)
    applied = time.perf_counter() - started
    return elapsed, applied, len(result.run_requests or []), new, result.cursor


def bench_sensor(n_users: int, base_url: str) -> None:
    import dagster as dg

    from repazoo_assets.defs.resources import AppDatabase
    from repazoo_assets.lib.db import create_engine, upgrade

    print(f"\n== users_sensor, {n_users:,} users (PostgreSQL app schema + PostgreSQL Dagster instance)")
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    schemas = []
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-dagster-{uuid.uuid4().hex[:8]}"
    try:
        app_schema, app_url = _schema_url(admin, base_url, "bench_app")
        dagster_schema, dagster_url = _schema_url(admin, base_url, "bench_dagster")
        schemas += [app_schema, dagster_schema]
        engine = create_engine(app_url)
        upgrade(engine)
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
        os.environ["DAGSTER_POSTGRES_URL"] = dagster_url.replace("postgresql+psycopg://", "postgresql+psycopg2://")
        instance = dg.DagsterInstance.from_config(str(home))
        app_db = AppDatabase(url=app_url)

        # Users who signed up over the last 60 days, all already registered as partitions.
        now = datetime.now(UTC)
        ids = [f"user-{i:06d}" for i in range(n_users)]
        created = [now - timedelta(days=60) + timedelta(seconds=i * 60 * 86400 / n_users) for i in range(n_users)]
        started = time.perf_counter()
        _insert_users(engine, ids, created)
        instance.add_dynamic_partitions("users", ids)
        print(f"setup: {n_users:,} users inserted and partitions registered in {time.perf_counter() - started:.1f} s")

        first, applied, runs, new, cursor = _tick(instance, app_db, None)
        print(f"first tick (no cursor, all registered): {first * 1000:.0f} ms, {runs} run requests, cursor {cursor}")
        # Walk the cursor to the newest user (the state after the sensor has seen everyone).
        ticks = 1
        while True:
            elapsed, _, _, _, next_cursor = _tick(instance, app_db, cursor)
            ticks += 1
            if next_cursor == cursor or ticks > 200:
                break
            cursor = next_cursor
        print(f"cursor reached {cursor} after {ticks} ticks")

        fresh = [f"new-{uuid.uuid4().hex[:8]}" for _ in range(10)]
        _insert_users(engine, fresh, [datetime.now(UTC)] * len(fresh))
        steady = []
        for _ in range(3):
            elapsed, applied, runs, new, cursor = _tick(instance, app_db, cursor)
            steady.append((elapsed, runs))
        print("steady-state ticks (10 new users, then none): "
              + ", ".join(f"{e * 1000:.0f} ms / {r} runs" for e, r in steady))

        # Catch-up: N users the sensor has never seen, signed up within a few minutes (a bulk import).
        burst = [f"burst-{i:06d}" for i in range(n_users)]
        t0 = datetime.now(UTC)
        _insert_users(engine, burst, [t0 + timedelta(milliseconds=i * 10) for i in range(n_users)])
        registered, worst, total, ticks = 0, 0.0, 0.0, 0
        while registered < n_users and ticks < 100:
            elapsed, applied, runs, new, next_cursor = _tick(instance, app_db, cursor)
            ticks += 1
            registered += len(new)
            worst, total = max(worst, elapsed), total + elapsed
            if not new and next_cursor == cursor:
                break
            cursor = next_cursor
        print(f"catch-up of {n_users:,} new users created within {n_users * 10 / 1000 / 60:.1f} min: "
              f"{registered:,} registered in {ticks} ticks, worst tick {worst * 1000:.0f} ms, "
              f"mean {total / max(ticks, 1) * 1000:.0f} ms")
        if registered < n_users:
            print(f"  STALLED: {n_users - registered:,} users never registered (cursor stuck at {cursor})")
        instance.dispose()
        engine.dispose()
    finally:
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
        admin.dispose()
        for path in sorted(home.rglob("*"), reverse=True) if home.exists() else []:
            path.unlink() if path.is_file() else path.rmdir()
        if home.exists():
            home.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--load-runs", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    bench_load(args.load_runs)
    bench_sensor(args.users, args.database_url)


if __name__ == "__main__":
    main()
