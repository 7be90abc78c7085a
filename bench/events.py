"""Event export benchmark: how close `raw_events` comes to the fastest possible read.

Generates N events (default 1,000,000; ~200 clients with skewed sizes, all three privacy levels)
in a fresh PostgreSQL schema, then reports in one run:

- the floor: `COPY (SELECT …) TO STDOUT (FORMAT binary)` with the bytes discarded;
- the `raw_events` export (ADBC into Arrow, validation, Parquet zstd, verified writes) to a local
  directory object store;
- `processed_events` over every exported hour, through the same library call as the asset
  (`process_hours`: per-client files under each privacy level, hour manifests);
- events/s for each, each stage's ratio to the floor and CPU time (all threads), export +
  processing against the floor, the process's peak RSS, and the load average at start and end
  (wall times on shared cores mean little without it);
- last (after the RSS figures, which it would distort), a floor for processing: the hours' raw
  events read (verified, decoded) and the client-hour files encoded with the processing's Parquet
  options on two threads, with no privacy level, no store and the split untimed: what any
  processing with one Parquet file per client-hour pays here before doing its work.

Targets (this machine, 2 cores): export ≤ 1.5× the floor; export + processing ≤ 2.5× the floor;
peak RSS < 500 MB and no higher at 5M events than at 1M.

    .venv/bin/python bench/events.py [--events N] [--chunk-rows N] [--database-url URL] [--store-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repazoo_assets.lib.db import create_engine, upgrade  # noqa: E402
from repazoo_assets.lib.db import tables as t  # noqa: E402
from repazoo_assets.lib.events.export import export_raw_events  # noqa: E402
from repazoo_assets.lib.events.process import HOUR, PARQUET_OPTIONS, RawBatches, process_hours  # noqa: E402
from repazoo_assets.lib.storage import LocalObjectStore  # noqa: E402

DEFAULT_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
TARGET_RATIO = 1.5
TARGET_TOTAL_RATIO = 2.5
TARGET_RSS_MB = 500


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PhasePeaks:
    """The highest RSS of each phase, sampled every 20 ms from /proc (Linux; nothing elsewhere):
    the lifetime peak above also holds what generating the events left in the process."""

    def __init__(self) -> None:
        self.phase, self.peaks = None, {}
        if os.path.exists("/proc/self/statm"):
            import threading

            threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE") / 2**20
        while True:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            if self.phase is not None:
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            time.sleep(0.02)


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system): steadier than wall time when other
    work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def generate(conn_url: str, schema: str, n: int, seed: int = 7) -> list[str]:
    """N events through COPY FROM, 200 clients with Zipf-like sizes, 1% malformed."""
    rng = random.Random(seed)
    clients = [f"client-{i:03d}" for i in range(200)]
    weights = [1 / (i + 1) for i in range(200)]
    types = ["page_view"] * 5 + ["click"] * 3 + ["signup", "purchase"]
    with psycopg.connect(conn_url, options=f"-csearch_path={schema}") as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into clients (id, name, privacy_level, sync_frequency, destination_bucket) values (%s, %s, %s, %s, %s)",
                [(c, c, ("standard", "gdpr", "hipaa")[i % 3], "hourly", f"bucket-{i:03d}") for i, c in enumerate(clients)],
            )
            with cur.copy(
                "COPY events_log (client_id, event_type, ip_address, user_agent, url, payload, consent_analytics, "
                "consent_marketing, created_at) FROM STDIN"
            ) as copy:
                for i in range(n):
                    if i % 100_000 == 0:  # drawn a block at a time: the generator's memory stays flat
                        chosen = rng.choices(clients, weights, k=min(100_000, n - i))
                    payload = '{"bad"' if i % 100 == 99 else json.dumps({"n": i, "plan": "pro", "value": i % 97})
                    copy.write_row(
                        (
                            chosen[i % 100_000], rng.choice(types), f"203.0.{i % 250}.{i % 200}",
                            "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
                            f"https://shop.example.com/p/{i % 5000}?utm_source=x&email=u{i % 1000}@example.com",
                            payload, i % 10 != 0, i % 3 == 0, f"2026-11-22 {i * 24 // n:02d}:{i % 60:02d}:00+00",
                        )
                    )
        conn.commit()
    return clients


def floor_seconds(conn_url: str, schema: str) -> tuple[float, int]:
    columns = "id, client_id, event_type, ip_address, user_agent, url, payload, consent_analytics, consent_marketing, created_at"
    with psycopg.connect(conn_url, options=f"-csearch_path={schema}") as conn, conn.cursor() as cur:
        started = time.perf_counter()
        size = 0
        with cur.copy(f"COPY (SELECT {columns} FROM events_log ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
            for block in copy:
                size += len(block)
        return time.perf_counter() - started, size


def processing_floor(engine, store, start, end) -> tuple[float, float, int]:
    """(seconds reading the raw events, seconds encoding the client-hour files, files), hour by
    hour as processing goes (memory: one hour)."""
    # Imported here, not at the top: pyarrow must load after repazoo_assets has chosen Arrow's
    # allocator (repazoo_assets/__init__.py), and the top imports psycopg before the package.
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from concurrent.futures import ThreadPoolExecutor

    def encode(table) -> int:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **PARQUET_OPTIONS)
        return sink.getvalue().size

    raw = RawBatches(engine, store, "raw", start, end)
    reading = encoding = 0.0
    files = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        hour = start
        while hour < end:
            started = time.perf_counter()
            parts = [part for _, part in raw.hour(hour) if part.num_rows]
            reading += time.perf_counter() - started
            if parts:  # the split is not timed: one sort, one slice per client
                events = pa.concat_tables(parts).sort_by("client_id")
                runs = pc.run_end_encode(events.column("client_id").combine_chunks())
                bounds = [0, *runs.run_ends.to_pylist()]
                slices = [events.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
                started = time.perf_counter()
                files += len(list(pool.map(encode, slices)))
                encoding += time.perf_counter() - started
            hour += HOUR
    return reading, encoding, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--store-dir", default=None,
                        help="parent of the local object store (default: the system temp dir, on disk; "
                             "/dev/shm takes the disk's fsyncs out of the figures)")
    args = parser.parse_args(argv)

    admin = sa.create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    url = f"{args.database_url}{'&' if '?' in args.database_url else '?'}options={quote(f'-csearch_path={schema}')}"
    plain = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    print(f"load average at start (1/5/15 min): {load()}  ({os.cpu_count()} cores)")
    try:
        engine = create_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        generate(plain, schema, args.events)
        print(f"generated {args.events:,} events in {time.perf_counter() - started:.1f} s")
        with psycopg.connect(plain, options=f"-csearch_path={schema}", autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE events_log")
        floor, size = floor_seconds(plain, schema)
        rss_before = peak_rss_mb()
        phases = PhasePeaks()
        with tempfile.TemporaryDirectory(dir=args.store_dir) as tmp:
            store = LocalObjectStore(Path(tmp))
            store.ensure_bucket("raw")
            started, cpu = time.perf_counter(), cpu_seconds()
            phases.phase = "export"
            report = export_raw_events(engine, store, "raw", chunk_rows=args.chunk_rows)
            export, export_cpu = time.perf_counter() - started, cpu_seconds() - cpu
            rss_export = peak_rss_mb()
            with engine.connect() as conn:
                batches = conn.execute(sa.select(sa.func.count()).select_from(t.raw_batches)).scalar()
                first, last = conn.execute(
                    sa.select(sa.func.min(t.raw_batches.c.min_created_at), sa.func.max(t.raw_batches.c.max_created_at))
                ).one()
            start = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            end = last.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            store.ensure_bucket("processed")
            started, cpu = time.perf_counter(), cpu_seconds()
            phases.phase = "processing"
            hours = process_hours(engine, store, "raw", "processed", start, end, b"bench-pseudonymization-key-0123456789")
            processing, processing_cpu = time.perf_counter() - started, cpu_seconds() - cpu
            phases.phase = None
            rss_at_end = peak_rss_mb()
            reading, encoding, floor_files = processing_floor(engine, store, start, end)
        n = args.events
        print(f"floor  COPY binary to /dev/null   {floor:7.2f} s  {n / floor:12,.0f} events/s  ({size / 1e6:.0f} MB)")
        print(
            f"export raw_events                {export:7.2f} s  {n / export:12,.0f} events/s  "
            f"{export / floor:.2f}× the floor (target ≤ {TARGET_RATIO}×)  "
            f"{'PASS' if export / floor <= TARGET_RATIO else 'FAIL'}  (CPU {export_cpu:.2f} s)"
        )
        print(f"       {report.rows:,} exported, {report.bad_rows:,} dead-lettered, {batches} batches, "
              f"{report.bytes_written / 1e6:.0f} MB Parquet")
        written = sum(sum(h.written.values()) for h in hours)
        dropped = sum(sum(h.dropped.values()) for h in hours)
        print(
            f"process processed_events         {processing:7.2f} s  {n / processing:12,.0f} events/s  "
            f"{processing / floor:.2f}× the floor  (CPU {processing_cpu:.2f} s)"
        )
        print(f"       {len(hours)} hours, {sum(len(h.keys) for h in hours):,} client-hour files, {written:,} written, "
              f"{dropped:,} dropped, {sum(h.raw_reads for h in hours)} raw objects read")
        total = export + processing
        print(
            f"export + processing              {total:7.2f} s  {n / total:12,.0f} events/s  "
            f"{total / floor:.2f}× the floor (target ≤ {TARGET_TOTAL_RATIO}×)  "
            f"{'PASS' if total / floor <= TARGET_TOTAL_RATIO else 'FAIL'}"
        )
        rss = rss_at_end
        print(f"peak RSS {rss:.0f} MB (before the export {rss_before:.0f} MB, after it {rss_export:.0f} MB; "
              f"target < {TARGET_RSS_MB} MB) {'PASS' if rss < TARGET_RSS_MB else 'FAIL'}")
        if phases.peaks:
            print("       RSS peak per phase (sampled every 20 ms): "
                  + ", ".join(f"{name} {mb:.0f} MB" for name, mb in phases.peaks.items()))
        bound = floor + reading + encoding
        print(
            f"floor for processing: raw events read {reading:.2f} s + {floor_files:,} client-hour files encoded "
            f"{encoding:.2f} s (2 threads; no levels, no store, split not timed); with the export at the floor: "
            f"{bound:.2f} s, {bound / floor:.2f}× the floor before any processing work"
        )
        print(f"load average at end (1/5/15 min): {load()}")
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
