"""Hours of raw events, split per client under each client's privacy level.

For each hour: the raw batches that overlap it are read (each object's SHA-256 verified), the
events of that hour kept, and one Parquet file per client-hour written,
`client_id=<id>/dt=YYYY-MM-DD/hour=HH/events.parquet` (a rerun overwrites the same key:
idempotent). HIPAA objects ask for server-side encryption, and each HIPAA write is audited. A
client's file holds only that client's events: the split is by `client_id`, each client's rows
one run of equal `client_id` values (Arrow's run-end encoding of the sorted column), checked
against the client before writing.

Each hour ends with a manifest, `hours/dt=YYYY-MM-DD/hour=HH/manifest.json`: raw rows, every
client file (rows, SHA-256) and every dropped row by reason, so processed = raw − dropped can be
checked later against the objects themselves (`verify_hour_counts`). A rerun deletes client files
of the previous manifest it no longer writes (a client removed since), and when a client file's
content changes (late events) its delivery record is removed so the hour is delivered again.

An hour is streamed one raw slice at a time (each slice's rows appended as row groups to the
client files' writers), and a range of hours reads each raw batch once: a batch is kept while
later hours of the range still need it, within a row budget (past it the oldest is dropped and
read again if needed). Memory is bounded by the batch size, not by an hour's volume.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import suppress
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.memory import use_system_allocator
from repazoo_assets.lib.events.export import DEFAULT_CHUNK_ROWS, RAW_ROW_GROUP_ROWS, SCHEMA, ExportError
from repazoo_assets.lib.events.privacy_levels import LEVELS, TransformCache, apply_level
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.storage.base import ObjectInfo, ObjectNotFound, ObjectStore, ObjectWriter

HOUR = timedelta(hours=1)
# Raw events kept between the hours of one run, as their verified compressed objects (about 6
# bytes an event): a few batches of the default size.
DEFAULT_CACHE_ROWS = 4 * DEFAULT_CHUNK_ROWS
# Threads that encode the client files' row groups and write them: Parquet encoding and
# compression run outside the GIL, so two threads use the two cores; more only contend for the GIL.
DEFAULT_WORKERS = 2
# Threads that upload the hour's client files to a store that publishes one object at a time
# (S3: no `commits_in_batches`): network waits, not CPU, so they get their own pool rather than
# queueing behind the encoder's two threads.
PUT_WORKERS = 8
# Raw rows handled at once (their payloads are Python objects while the levels apply: 50,000
# made peak RSS 515 MB at 200,000 events an hour, 20,000 made it 442 MB, 10,000 no better), and
# processed rows held before they are encoded (one row group per client per this many rows of
# the hour: small files cost per row group, so an hour of 1M events a day, ~42,000, is one row
# group per file). Both bound memory whatever the volume.
SLICE_ROWS = RAW_ROW_GROUP_ROWS
FLUSH_ROWS = 50_000
# Statistics only where a reader can prune with them (ids, times); dictionaries as Arrow decides.
# Snappy, not zstd as in the raw bucket: a client-hour file is small (a few hundred rows for
# most clients) and Arrow's zstd sets up a compression context for every column chunk, 0.45 ms
# more per file than snappy for 200 rows x 10 columns (0.69 against 0.26 ms measured here):
# 1.8 s of the 12.6 s of processing CPU at 1M events (4,800 files), 7.6 s of 36 s at 5M. The
# files are about 1.7x bigger (10.6 against 6.2 KB for 200 rows); snappy is Parquet's default
# codec, read by every client tool.
PARQUET_OPTIONS = {"compression": "snappy", "write_statistics": ["id", "created_at"]}
PARQUET_TYPE = "application/vnd.apache.parquet"


@dataclass
class HourReport:
    hour: datetime
    raw_rows: int = 0
    written: dict[str, int] = field(default_factory=dict)  # client -> rows
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    keys: list[str] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)  # client -> {key, rows, sha256, level}
    redelivered: list[str] = field(default_factory=list)  # clients whose delivered hour changed
    removed: list[str] = field(default_factory=list)  # stale client files deleted
    raw_reads: int = 0  # raw objects fetched for this hour (0 when all came from the run's cache)
    batch_keys: list[str] = field(default_factory=list)  # the raw batches the hour's events came from


def processed_key(client_id: str, hour: datetime) -> str:
    return f"client_id={client_id}/dt={hour:%Y-%m-%d}/hour={hour:%H}/events.parquet"


def hour_manifest_key(hour: datetime) -> str:
    return f"hours/dt={hour:%Y-%m-%d}/hour={hour:%H}/manifest.json"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hour_slice(table: pa.Table, hour: datetime) -> pa.Table:
    times = table.column("created_at")
    return table.filter(pc.and_(pc.greater_equal(times, pa.scalar(hour, times.type)),
                                pc.less(times, pa.scalar(hour + HOUR, times.type))))


class RawBatches:
    """The raw batches overlapping a range of hours, each fetched and verified once while it is
    still needed (objects of at most `max_rows` events kept, as the compressed bytes that were
    verified), and decoded one row group at a time, only where the row group's `created_at`
    statistics overlap the hour asked for."""

    def __init__(self, engine: Engine, store: ObjectStore, bucket: str, start: datetime, end: datetime,
                 *, max_rows: int = DEFAULT_CACHE_ROWS, columns: list[str] | None = None) -> None:
        b = t.raw_batches
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(b.c.object_key, b.c.sha256, b.c.min_created_at, b.c.max_created_at)
                .where(b.c.min_created_at < end, b.c.max_created_at >= start)
                .order_by(b.c.first_event_id)
            ).all()
        self._batches = [(r.object_key, r.sha256, _utc(r.min_created_at), _utc(r.max_created_at)) for r in rows]
        self._store, self._bucket, self._max_rows, self._columns = store, bucket, max_rows, columns
        self._cache: dict[str, pq.ParquetFile] = {}
        self.reads = 0

    def hour(self, hour: datetime) -> Iterator[tuple[str, pa.Table]]:
        """The raw events of `hour`, one (batch key, slice of at most `SLICE_ROWS` rows) at a time,
        in batch order; a batch that overlaps the hour but holds none of its rows yields one empty
        slice. Only the row groups whose times overlap the hour are decoded (the export writes
        row groups of `SLICE_ROWS` events), one at a time; a row group lying within the hour is
        sliced without a copy, one that straddles it is filtered. Memory: the compressed objects
        kept and one decoded row group, whatever the hour's volume."""
        for key, sha256, first, last in self._batches:
            if first < hour + HOUR and last >= hour:
                raw = self._file(key, sha256)
                if last < hour + HOUR:  # no later hour needs it
                    self._cache.pop(key, None)
                empty = True
                for group in range(raw.metadata.num_row_groups):
                    low, high = _time_range(raw.metadata.row_group(group), first, last)
                    if low >= hour + HOUR or high < hour:
                        continue
                    table = raw.read_row_group(group, columns=self._columns)
                    inside = low >= hour and high < hour + HOUR
                    for offset in range(0, table.num_rows, SLICE_ROWS):
                        part = table.slice(offset, SLICE_ROWS)
                        if not inside:
                            part = _hour_slice(part, hour)
                            if not part.num_rows:
                                continue
                        empty = False
                        yield key, part
                        del part
                    del table
                if empty:
                    yield key, raw.schema_arrow.empty_table().select(self._columns or raw.schema_arrow.names)
                del raw
        for key, _, _, last in self._batches:
            if last < hour + HOUR:
                self._cache.pop(key, None)

    def _file(self, key: str, sha256: str) -> pq.ParquetFile:
        if key in self._cache:
            return self._cache[key]
        data = self._store.get(self._bucket, key)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ExportError(f"raw object {key} does not match its recorded SHA-256")
        raw = pq.ParquetFile(pa.BufferReader(data))
        self.reads += 1
        rows = raw.metadata.num_rows
        while self._cache and sum(f.metadata.num_rows for f in self._cache.values()) + rows > self._max_rows:
            self._cache.pop(next(iter(self._cache)))  # the oldest first
        self._cache[key] = raw
        return raw


def _time_range(group: pq.RowGroupMetaData, first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """The row group's first and last `created_at` from its statistics; the batch's range where the
    statistics are missing (then the rows are filtered)."""
    names = [group.column(i).path_in_schema for i in range(group.num_columns)]
    if "created_at" in names:
        stats = group.column(names.index("created_at")).statistics
        if stats is not None and stats.has_min_max and isinstance(stats.min, datetime):
            return _utc(stats.min), _utc(stats.max)
    return first, last


def process_hour(
    engine: Engine, store: ObjectStore, raw_bucket: str, processed_bucket: str, hour: datetime, key: bytes
) -> HourReport:
    return process_hours(engine, store, raw_bucket, processed_bucket, hour, hour + HOUR, key)[0]


def process_hours(
    engine: Engine, store: ObjectStore, raw_bucket: str, processed_bucket: str, start: datetime, end: datetime,
    key: bytes, *, cache_rows: int = DEFAULT_CACHE_ROWS, workers: int = DEFAULT_WORKERS,
) -> list[HourReport]:
    """Process each hour of `[start, end)` (whole UTC hours), reading each raw batch once."""
    use_system_allocator()
    start, end = _utc(start), _utc(end)
    raw = RawBatches(engine, store, raw_bucket, start, end, max_rows=cache_rows)
    cache = TransformCache()
    reports, hour = [], start
    # Hour h is written (files, audit rows, manifest) in the `store` thread while hour h+1 is
    # transformed and encoded here: the file system's work overlaps the CPU's. One writer, so
    # hours are recorded in order; at most one hour's encoded files wait.
    with (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="processed-events") as pool,
          ThreadPoolExecutor(max_workers=1, thread_name_prefix="processed-events-store") as writer,
          ThreadPoolExecutor(max_workers=PUT_WORKERS, thread_name_prefix="processed-events-put") as uploads):
        written = None
        try:
            while hour < end:
                if written is not None and written.done():  # a failed write stops the run now
                    reports.append(written.result())
                    written = None
                with engine.connect() as conn:  # read per hour: a client removed meanwhile is honoured
                    clients = dict(conn.execute(
                        sa.select(t.clients.c.id, t.clients.c.privacy_level).where(t.clients.c.deleted_at.is_(None))
                    ).all())
                reads = raw.reads
                previous = _read_manifest(store, processed_bucket, hour)
                report, files = _encode_hour(hour, raw.hour(hour), clients, key, cache, pool, store, processed_bucket)
                report.raw_reads = raw.reads - reads
                try:
                    if written is not None:
                        reports.append(written.result())
                    written = writer.submit(_store_hour, engine, store, processed_bucket, report, files, previous, uploads)
                except BaseException:
                    _abort([sink for *_, sink in files])  # never handed to the writer: no temporary file left
                    raise
                del files
                hour += HOUR
                # Arrow keeps freed blocks for reuse; handing them back after each hour keeps the
                # process's footprint at one hour's working set whatever the range.
                pa.default_memory_pool().release_unused()
            if written is not None:
                reports.append(written.result())
                written = None
        except BaseException as exc:
            _note_writer_failure(exc, written)
            raise
    return reports


def _note_writer_failure(exc: BaseException, written) -> None:
    """The main thread failed while an hour was being written: the write is waited for, and its
    own failure, if any, noted on `exc` (its type only: a store's message may name objects)."""
    if written is None:
        return
    try:
        written.result()
    except BaseException as failure:  # noqa: BLE001 - reported through the note, exc is raised
        if failure is not exc:
            exc.add_note(f"writing the previous hour also failed ({type(failure).__name__}); it has no manifest")


def _by_client(events: pa.Table) -> list[tuple[str, pa.Table]]:
    """The events split per client, in client order: one sort, then one slice per run of equal
    `client_id` values (run-end encoding), so each slice holds one client's rows by construction."""
    if not events.num_rows:
        return []
    events = events.sort_by([("client_id", "ascending"), ("id", "ascending")])
    runs = pc.run_end_encode(events.column("client_id").combine_chunks())
    clients, ends = runs.values.to_pylist(), runs.run_ends.to_pylist()
    if len(set(clients)) != len(clients):  # cannot happen after the sort; never write if it did
        raise ExportError("refusing to write: a client's events are not contiguous after sorting")
    out, offset = [], 0
    for client_id, end in zip(clients, ends, strict=True):
        out.append((client_id, events.slice(offset, end - offset)))
        offset = end
    return out


def _read_manifest(store: ObjectStore, bucket: str, hour: datetime) -> dict | None:
    try:
        return json.loads(store.get(bucket, hour_manifest_key(hour)))
    except ObjectNotFound:
        return None


def _delivered_clients(engine: Engine, hour: datetime) -> set[str]:
    d = t.client_deliveries
    with engine.connect() as conn:
        return set(conn.execute(sa.select(d.c.client_id).where(d.c.window_start == hour)).scalars())


def _close(writer: pq.ParquetWriter, sink: ObjectWriter) -> None:
    writer.close()  # the footer
    sink.close()  # the rest of the file to its temporary file; published by the hour's commit


def _abort(sinks: list[ObjectWriter]) -> None:
    """Client files that will not be published: their temporary files deleted."""
    for sink in sinks:
        sink.abort()


def _flush(files: dict[str, list], pending: dict[str, list[pa.Table]], pool: ThreadPoolExecutor) -> None:
    """Each client's pending rows appended to its file as one row group, the clients in parallel
    (Parquet encoding and compression run outside the GIL), and the row group passed on to the file's
    temporary file: memory holds the pending rows, not the files. Emptied on return."""
    def append(client_id: str, tables: list[pa.Table]) -> None:
        _, sink, writer, _ = files[client_id]
        writer.write_table(pa.concat_tables(tables))
        sink.flush()

    _run_all(pool, [(append, c, tables) for c, tables in pending.items()])
    pending.clear()


def _run_all(pool: ThreadPoolExecutor, calls: list[tuple]) -> None:
    """The calls run on `pool`, all finished (failed or not) before the first failure is
    raised: nothing still writes to a file when the caller aborts it."""
    futures = [pool.submit(*call) for call in calls]
    wait(futures)
    for future in futures:
        future.result()


def _commit_all(store: ObjectStore, sinks: list[ObjectWriter], uploads: ThreadPoolExecutor) -> list[ObjectInfo]:
    """The hour's client files published: as one batch where the store has it (the local store
    flushes the disk once per batch, not per object), else one object per thread of `uploads`.
    Files not published when one fails are aborted (no object, no temporary file)."""
    if store.commits_in_batches:
        return store.commit_many(sinks)
    futures = [uploads.submit(sink.commit) for sink in sinks]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        wait(futures)
        _abort(sinks)
        raise


def _apply_levels(events: pa.Table, clients: dict[str, str], key: bytes, report: HourReport, cache: TransformCache):
    """(client, level, rows) for every client with events this hour, each level applied once to
    all its clients' events (the rules are per row; only the level depends on the client). A
    client whose events were all dropped still gets its (empty) file."""
    present = set(pc.unique(events.column("client_id")).to_pylist()) if events.num_rows else set()
    removed = present - set(clients)
    if removed:
        gone = pc.is_in(events.column("client_id"), value_set=pa.array(sorted(removed), pa.string()))
        report.dropped["client removed"] += pc.sum(pc.cast(gone, pa.int64())).as_py()
    out = []
    for level in LEVELS:
        members = sorted(c for c in present if clients.get(c) == level)
        if not members:
            continue
        mine = events.filter(pc.is_in(events.column("client_id"), value_set=pa.array(members, pa.string())))
        result = apply_level(mine, level, key, cache)
        report.dropped.update(result.dropped)
        split = dict(_by_client(result.table))
        out += [(c, level, split.get(c, result.table.slice(0, 0))) for c in members]
    return sorted(out, key=lambda item: item[0])


def _encode_hour(hour, parts, clients, key, cache, pool, store, bucket) -> tuple[HourReport, list[tuple[str, str, int, ObjectWriter]]]:
    """The hour streamed a raw slice at a time: each slice's levels applied and its rows held per
    client until `FLUSH_ROWS` are pending, then appended to each client's Parquet writer as one
    row group per client, encoded in parallel, each file written straight to the store's
    temporary file for it (`store.writer`: nothing visible until the hour's commit). Returns
    the report so far and the unpublished files (client, level, rows, writer) in client order.
    Memory: the pending rows, not the hour's volume nor its files. On failure no temporary file
    is left."""
    report = HourReport(hour)
    files: dict[str, list] = {}  # client -> [level, sink, writer, rows]
    try:
        return _encode_hour_into(report, files, parts, clients, key, cache, pool, store, bucket)
    except BaseException:
        for _, sink, writer, _ in files.values():
            with suppress(Exception):
                writer.close()
            sink.abort()
        raise


def _encode_hour_into(report, files, parts, clients, key, cache, pool, store, bucket):
    pending: dict[str, list[pa.Table]] = {}
    pending_rows = 0
    batch_keys = []
    for batch_key, part in parts:
        if not batch_keys or batch_keys[-1] != batch_key:
            batch_keys.append(batch_key)
        report.raw_rows += part.num_rows
        for client_id, level, rows in _apply_levels(part, clients, key, report, cache):
            if rows.num_rows and rows.column("client_id")[0].as_py() != client_id:
                raise ExportError(f"refusing to write: rows of another client in {client_id}'s output")
            if client_id not in files:
                sink = store.writer(bucket, processed_key(client_id, report.hour), content_type=PARQUET_TYPE,
                                    encrypt=level == "hipaa")
                files[client_id] = [level, sink, None, 0]
                files[client_id][2] = pq.ParquetWriter(sink, SCHEMA, **PARQUET_OPTIONS)
            if rows.num_rows:
                pending.setdefault(client_id, []).append(rows if rows.schema.equals(SCHEMA) else rows.cast(SCHEMA))
                files[client_id][3] += rows.num_rows
                pending_rows += rows.num_rows
        del part
        if pending_rows >= FLUSH_ROWS:
            _flush(files, pending, pool)
            pending_rows = 0
    _flush(files, pending, pool)
    report.batch_keys = batch_keys
    mine = sorted(files.items())
    _run_all(pool, [(_close, entry[2], entry[1]) for _, entry in mine])
    return report, [(client_id, entry[0], entry[3], entry[1]) for client_id, entry in mine]


def _store_hour(engine, store, bucket, report: HourReport, files, previous, uploads) -> HourReport:
    """The hour's client files written as one batch, its deliveries re-opened where a file
    changed, one audit row per HIPAA file, then the hour's manifest."""
    hour = report.hour
    infos = _commit_all(store, [sink for *_, sink in files], uploads)
    entries = [
        (client_id, {"key": info.key, "rows": rows, "sha256": info.sha256, "level": level})
        for (client_id, level, rows, _), info in zip(files, infos, strict=True)
    ]
    delivered = _delivered_clients(engine, hour)
    for client_id, entry in entries:
        report.written[client_id] = entry["rows"]
        report.keys.append(entry["key"])
        report.files[client_id] = entry
        if client_id in delivered:  # changed since it was delivered? (late events)
            # Without a manifest (an hour processed before manifests existed) it cannot be told:
            # delivered again, to the same key.
            before = previous["files"].get(client_id, {}).get("sha256") if previous else None
            if before != entry["sha256"] and _forget_delivery(engine, client_id, hour):
                report.redelivered.append(client_id)
    hipaa = [(c, e) for c, e in report.files.items() if e["level"] == "hipaa"]
    if hipaa:  # one audit row per HIPAA file, all of the hour's in one transaction and one INSERT
        audit.append_many(engine, [
            {"actor": "pipeline:events", "action": audit.AuditAction.EXPORT, "subject_type": "client", "subject_id": client_id,
             "details": {"object": entry["key"], "rows": entry["rows"], "encryption": "AES256"}}
            for client_id, entry in hipaa
        ])
    _write_manifest(store, bucket, report, previous)
    return report


def _forget_delivery(engine: Engine, client_id: str, hour: datetime) -> bool:
    """The delivered copy of this client-hour is out of date: without its record the hour is
    pending again, and the next delivery overwrites the client's file at the same key."""
    d = t.client_deliveries
    with engine.begin() as conn:
        return conn.execute(sa.delete(d).where(d.c.client_id == client_id, d.c.window_start == hour)).rowcount > 0


def _write_manifest(store: ObjectStore, bucket: str, report: HourReport, previous) -> None:
    for client_id, entry in (previous or {}).get("files", {}).items():
        if client_id not in report.files:  # no longer written (client removed): not left behind
            store.delete(bucket, entry["key"])
            report.removed.append(client_id)
    manifest = {
        "hour": report.hour.isoformat(),
        "raw_rows": report.raw_rows,
        "raw_batches": report.batch_keys,
        "files": report.files,
        "dropped": dict(sorted(report.dropped.items())),
        "processed_at": datetime.now(UTC).isoformat(),
    }
    store.put(bucket, hour_manifest_key(report.hour), json.dumps(manifest, indent=1, sort_keys=True).encode(),
              content_type="application/json")


@dataclass
class HourCounts:
    """processed_events of one hour measured against the raw objects: `problems` is empty when
    raw = processed + dropped and every client file is there as recorded."""

    hour: datetime
    raw_rows: int = 0
    processed_rows: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    files: int = 0
    problems: list[str] = field(default_factory=list)


def verify_hour_counts(
    engine: Engine, store: ObjectStore, raw_bucket: str, processed_bucket: str, hour: datetime
) -> HourCounts:
    """Counts the hour's raw events from the raw objects (SHA-256 verified), the rows of each
    client file from the file itself, and the drops from the hour's manifest."""
    hour = _utc(hour)
    result = HourCounts(hour)
    raw = RawBatches(engine, store, raw_bucket, hour, hour + HOUR, columns=["created_at"])
    result.raw_rows = sum(part.num_rows for _, part in raw.hour(hour))
    try:
        manifest = json.loads(store.get(processed_bucket, hour_manifest_key(hour)))
    except ObjectNotFound:
        if result.raw_rows:
            result.problems.append(f"{result.raw_rows} raw events but the hour was not processed")
        return result
    result.dropped = {k: int(v) for k, v in manifest.get("dropped", {}).items()}
    for client_id, entry in sorted(manifest.get("files", {}).items()):
        try:
            data = store.get(processed_bucket, entry["key"])
        except ObjectNotFound:
            result.problems.append(f"{entry['key']}: missing")
            continue
        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        result.processed_rows += rows
        result.files += 1
        if rows != entry["rows"]:
            result.problems.append(f"{entry['key']}: {rows} rows, {entry['rows']} recorded")
        elif hashlib.sha256(data).hexdigest() != entry["sha256"]:
            result.problems.append(f"{entry['key']}: altered (SHA-256 differs from the recorded one)")
    accounted = result.processed_rows + sum(result.dropped.values())
    if accounted != result.raw_rows:
        late = result.raw_rows - manifest.get("raw_rows", 0)
        result.problems.append(
            f"raw {result.raw_rows} != processed {result.processed_rows} + dropped {sum(result.dropped.values())}"
            + (f" ({late} raw events arrived after the hour was processed: rerun it)" if late > 0 else "")
        )
    return result
