"""The batched writes behind processed_events: the local store's put_many (one disk flush per
batch), audit.append_many (one chained row per entry), and processing on the local store."""

import io
import json
import os
import time
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events import process
from repazoo_assets.lib.events.process import process_hours
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.storage import LocalObjectStore, local
from repazoo_assets.lib.storage.base import InvalidKey, ObjectNotFound
from repazoo_assets_tests.lib.events.test_export import event, insert
from repazoo_assets_tests.lib.events.test_process import HOUR, KEY, LEVELS, export_all


def tmp_files(root):
    return [name for _, _, names in os.walk(root) for name in names if name.startswith(".tmp-")]


def test_put_many_writes_every_object_with_its_checksum_and_leaves_no_temporary_file(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.ensure_bucket("processed")
    store.put("processed", "a/1.bin", b"old")
    objects = [{"key": f"a/{i}.bin", "data": bytes([i]) * (i + 1), "content_type": "application/x-test"} for i in range(5)]
    infos = store.put_many("processed", objects)
    assert [i.key for i in infos] == [o["key"] for o in objects]
    for o, info in zip(objects, infos, strict=True):
        assert store.get("processed", o["key"]) == o["data"]  # overwritten where it existed
        head = store.head("processed", o["key"])
        assert (head.size, head.sha256) == (len(o["data"]), info.sha256)
    assert tmp_files(tmp_path) == []


def test_put_many_that_fails_makes_no_object_visible(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.ensure_bucket("processed")
    with pytest.raises(InvalidKey):
        store.put_many("processed", [{"key": "good.bin", "data": b"x"}, {"key": "../escape", "data": b"y"}])
    with pytest.raises(ObjectNotFound):
        store.get("processed", "good.bin")
    assert tmp_files(tmp_path) == []


def test_put_many_deletes_stale_temporary_files_in_the_folders_it_writes(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.ensure_bucket("processed")
    store.put("processed", "a/0.bin", b"old")
    folders = [tmp_path / "processed" / "a", tmp_path / ".meta" / "processed" / "a"]
    old = time.time() - local.STALE_TMP_SECONDS - 60
    for folder in folders:  # left by a writer killed mid-write: client bytes
        (folder / ".tmp-killed").write_bytes(b"client data")
        os.utime(folder / ".tmp-killed", (old, old))
        (folder / ".tmp-writing").write_bytes(b"another writer's file, just begun")
    store.put_many("processed", [{"key": "a/1.bin", "data": b"new"}])
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-")) == [".tmp-writing"]
    assert list(store.list_keys("processed")) == ["a/0.bin", "a/1.bin"]


def test_put_many_without_syncfs_fsyncs_data_and_sidecars_before_renaming(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    store.ensure_bucket("processed")
    monkeypatch.setattr(local, "_SYNCFS", None)  # the fallback (platforms without syncfs)
    synced = []
    fsync = os.fsync

    def recording(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    store.put_many("processed", [{"key": f"a/{i}.bin", "data": b"x"} for i in range(2)])
    temporaries = [p for p in synced if os.path.basename(p).startswith(".tmp-")]
    assert len([p for p in temporaries if "/.meta/" in p]) == 2  # the sidecars
    assert len([p for p in temporaries if "/.meta/" not in p]) == 2  # the data
    assert {str(tmp_path / "processed" / "a"), str(tmp_path / ".meta" / "processed" / "a")} <= set(synced)


def test_put_many_syncs_each_file_system_once(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    store.ensure_bucket("processed")
    calls = []
    real = local._SYNCFS
    if real is None:
        pytest.skip("no syncfs on this platform")
    monkeypatch.setattr(local, "_SYNCFS", lambda fd: calls.append(os.fstat(fd).st_dev) or real(fd))
    store.put_many("processed", [{"key": f"{c}/x.bin", "data": b"x"} for c in "abc"])
    assert len(calls) == 2 and len(set(calls)) == 1  # before and after the renames, one device


def test_append_many_writes_one_chained_row_per_entry(engine):
    audit.append(engine, actor="t", action="export", subject_type="client", subject_id="before")
    entries = [{"actor": "pipeline:events", "action": audit.AuditAction.EXPORT, "subject_type": "client",
                "subject_id": f"c{i}", "details": {"object": f"client_id=c{i}/events.parquet", "rows": i}} for i in range(4)]
    assert audit.append_many(engine, entries) == 4
    audit.append(engine, actor="t", action="export", subject_type="client", subject_id="after")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.audit_log).order_by(t.audit_log.c.id)).all()
    assert [r.subject_id for r in rows] == ["before", "c0", "c1", "c2", "c3", "after"]
    assert [r.details["rows"] for r in rows[1:5]] == [0, 1, 2, 3]
    assert all(b.prev_hash == a.row_hash for a, b in zip(rows, rows[1:]))
    assert audit.verify(engine).ok and audit.verify(engine).rows_checked == 6


def test_append_many_refuses_all_if_one_entry_holds_personal_data(engine):
    entries = [{"actor": "a", "action": "export", "subject_type": "client", "details": {"object": "k"}},
               {"actor": "a", "action": "export", "subject_type": "client", "details": {"who": "jane.doe@gmail.com"}}]
    with pytest.raises(audit.AuditError):
        audit.append_many(engine, entries)
    with pytest.raises(audit.AuditError):
        audit.append_many(engine, [{"actor": "a", "action": "nope", "subject_type": "client"}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.audit_log)).scalar() == 0


@pytest.fixture
def local_loaded(engine, tmp_path):
    with engine.begin() as conn:
        conn.execute(sa.insert(t.clients), [
            {"id": c, "name": c, "privacy_level": level, "sync_frequency": "hourly", "destination_bucket": f"b-{c}"}
            for c, level in LEVELS.items()
        ])
        insert(conn, [
            event(i, client=list(LEVELS)[i % 3], created_at=HOUR + timedelta(minutes=i), consent_analytics=i % 10 != 0,
                  ip_address=f"198.51.100.{i}", payload=json.dumps({"user_id": f"u{i}", "email": f"user{i}@example.com"}))
            for i in range(150)  # two and a half hours
        ])
    store = LocalObjectStore(tmp_path / "store")
    store.bucket, store.processed = "raw", "processed"
    store.ensure_bucket("raw")
    store.ensure_bucket("processed")
    export_all(engine, store)
    return engine, store


def test_processing_on_the_local_store_audits_each_hipaa_file_once_and_keeps_every_row(local_loaded, monkeypatch):
    engine, store = local_loaded
    reports = process_hours(engine, store, "raw", "processed", HOUR, HOUR + timedelta(hours=3), KEY)
    assert [r.raw_rows for r in reports] == [60, 60, 30]
    hipaa_files = [r.files["initech"]["key"] for r in reports]
    with engine.connect() as conn:
        audited = conn.execute(
            sa.select(t.audit_log.c.subject_id, t.audit_log.c.details).where(t.audit_log.c.action == "export")
            .order_by(t.audit_log.c.id)
        ).all()
    assert [(s, d["object"]) for s, d in audited] == [("initech", k) for k in hipaa_files]  # one row per HIPAA write
    assert audit.verify(engine).ok
    for r in reports:
        assert sum(r.written.values()) + sum(r.dropped.values()) == r.raw_rows
        for client, entry in r.files.items():
            table = pq.read_table(io.BytesIO(store.get("processed", entry["key"])))
            assert table.num_rows == entry["rows"] and set(table.column("client_id").to_pylist()) <= {client}
            assert store.head("processed", entry["key"]).sha256 == entry["sha256"]
    assert tmp_files(store.root) == []
    # Cut into tiny slices and row groups, the same rows come out, in the same order.
    before = {k: pq.read_table(io.BytesIO(store.get("processed", k))) for r in reports for k in r.keys}
    monkeypatch.setattr(process, "SLICE_ROWS", 7)
    monkeypatch.setattr(process, "FLUSH_ROWS", 7)
    again = process_hours(engine, store, "raw", "processed", HOUR, HOUR + timedelta(hours=3), KEY)
    for k, table in before.items():
        after = pq.read_table(io.BytesIO(store.get("processed", k)))
        assert after.equals(table)
        assert pq.ParquetFile(io.BytesIO(store.get("processed", k))).num_row_groups >= (table.num_rows > 7) + 1
    assert [r.written for r in again] == [r.written for r in reports]


def test_processing_streams_each_file_and_a_failure_leaves_no_temporary_file(local_loaded, monkeypatch):
    """Client files go straight to their temporary files: an encoding that fails midway, and a
    publication that fails, leave no object of the hour and no temporary file."""
    engine, store = local_loaded
    hour2 = HOUR + timedelta(hours=1)
    apply_levels = process._apply_levels
    calls = []

    def failing_in_the_second_hour(part, *args):
        calls.append(part)
        out = apply_levels(part, *args)
        if part.num_rows and part.column("created_at")[0].as_py() >= hour2:
            raise RuntimeError("level failed")
        return out

    monkeypatch.setattr(process, "_apply_levels", failing_in_the_second_hour)
    monkeypatch.setattr(process, "SLICE_ROWS", 7)  # several row groups already written when it fails
    monkeypatch.setattr(process, "FLUSH_ROWS", 7)
    with pytest.raises(RuntimeError, match="level failed"):
        process_hours(engine, store, "raw", "processed", HOUR, HOUR + timedelta(hours=3), KEY)
    assert tmp_files(store.root) == []
    assert [k for k in store.list_keys("processed") if f"hour={hour2:%H}" in k] == []
    assert store.exists("processed", process.hour_manifest_key(HOUR))

    monkeypatch.setattr(process, "_apply_levels", apply_levels)

    def refused(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(local, "_flush", refused)
    with pytest.raises(OSError, match="disk full"):
        process_hours(engine, store, "raw", "processed", hour2, hour2 + timedelta(hours=1), KEY)
    assert tmp_files(store.root) == []
    assert [k for k in store.list_keys("processed") if f"hour={hour2:%H}" in k] == []


def test_processed_files_are_the_bytes_an_in_memory_encoding_gives(local_loaded):
    """The streamed file is byte for byte the Parquet file the same rows encode to in memory,
    and its recorded SHA-256 is that file's."""
    import hashlib

    import pyarrow as pa

    engine, store = local_loaded
    report = process_hours(engine, store, "raw", "processed", HOUR, HOUR + timedelta(hours=1), KEY)[0]
    for client, entry in report.files.items():
        data = store.get("processed", entry["key"])
        table = pq.read_table(io.BytesIO(data))
        sink = pa.BufferOutputStream()
        with pq.ParquetWriter(sink, process.SCHEMA, **process.PARQUET_OPTIONS) as writer:
            writer.write_table(table)
        assert sink.getvalue().to_pybytes() == data
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
