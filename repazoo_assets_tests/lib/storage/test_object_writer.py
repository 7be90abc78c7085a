"""Streaming writes (`ObjectStore.writer`): the same contract on the local directory and on S3
(moto's server): nothing visible before commit, the same bytes and SHA-256 as `put`, nothing
left behind by a failure."""

from __future__ import annotations

import hashlib
import io
import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from repazoo_assets.lib.storage import LocalObjectStore, ObjectStore, S3ObjectStore, base, local, s3_client


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3ObjectStore(s3_client(endpoint, "us-east-1"))


@pytest.fixture
def bucket(store: ObjectStore) -> str:
    name = f"w-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    return name


@pytest.fixture
def spool(tmp_path, monkeypatch):
    """The S3 writer's temporary files in a folder of their own, to look for leftovers."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(base.tempfile, "tempdir", str(folder))
    return folder


def leftovers(store: ObjectStore, spool) -> list[str]:
    names = [p.name for p in spool.iterdir()]
    if isinstance(store, LocalObjectStore):
        names += [name for _, _, files in os.walk(store.root) for name in files if name.startswith(".tmp-")]
    return names


def test_streamed_object_has_the_bytes_and_checksum_put_gives(store, bucket, spool):
    data = os.urandom(3 * base.SPILL_BYTES + 123)
    put = store.put(bucket, "put.bin", data)
    with store.writer(bucket, "streamed.bin", content_type="application/x-test") as w:
        for start in range(0, len(data), 1000):  # small writes: buffered, then spilled
            w.write(data[start : start + 1000])
        assert not store.exists(bucket, "streamed.bin")  # nothing visible before the commit
        w.flush()
        assert w.tell() == len(data)
    assert store.get(bucket, "streamed.bin") == data
    head = store.head(bucket, "streamed.bin")
    assert (head.size, head.sha256) == (put.size, put.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert leftovers(store, spool) == []


def test_parquet_written_through_a_writer_is_the_file_written_in_memory(store, bucket, spool):
    table = pa.table({"id": list(range(50_000)), "s": [f"value {i}" for i in range(50_000)]})
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
        writer.write_table(table)
        writer.write_table(table)
    w = store.writer(bucket, "t/events.parquet", content_type="application/vnd.apache.parquet", encrypt=True)
    writer = pq.ParquetWriter(w, table.schema, compression="zstd")
    writer.write_table(table)
    w.flush()  # between row groups, as processing does
    writer.write_table(table)
    writer.close()
    info = store.commit_many([w])[0]
    expected = sink.getvalue().to_pybytes()
    assert store.get(bucket, "t/events.parquet") == expected
    assert info.sha256 == hashlib.sha256(expected).hexdigest() == store.head(bucket, "t/events.parquet").sha256
    assert pq.read_table(io.BytesIO(store.get(bucket, "t/events.parquet"))).num_rows == 100_000
    assert leftovers(store, spool) == []


def test_a_write_that_fails_midway_leaves_no_object_and_no_temporary_file(store, bucket, spool):
    store.put(bucket, "kept.bin", b"old content")
    with pytest.raises(ConnectionResetError):
        with store.writer(bucket, "kept.bin") as w:
            w.write(os.urandom(2 * base.SPILL_BYTES))  # partly on disk already
            raise ConnectionResetError("the source went away")
    with pytest.raises(ConnectionResetError):
        with store.writer(bucket, "never.bin") as w:
            w.write(b"partial")
            raise ConnectionResetError("the source went away")
    assert store.get(bucket, "kept.bin") == b"old content"
    assert list(store.list_keys(bucket)) == ["kept.bin"]
    assert leftovers(store, spool) == []
    with pytest.raises(ValueError):
        w.write(b"more")  # an aborted writer takes no more bytes


def test_a_failed_commit_leaves_no_object_and_no_temporary_file(store, bucket, spool, monkeypatch):
    class Refused(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Refused("the store refused the object")

    if isinstance(store, LocalObjectStore):
        monkeypatch.setattr(local, "_flush", refuse)  # after the sidecars, before any rename
    else:
        monkeypatch.setattr(store, "put", refuse)
    writers = [store.writer(bucket, f"a/{i}.bin") for i in range(3)]
    for w in writers:
        w.write(os.urandom(1000))
    with pytest.raises(Refused):
        store.commit_many(writers)
    assert list(store.list_keys(bucket)) == []
    assert leftovers(store, spool) == []


def test_s3_writer_asks_for_server_side_encryption(s3_endpoint, spool):
    store = S3ObjectStore(s3_client(s3_endpoint, "us-east-1"))
    name = f"w-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    with store.writer(name, "hipaa.parquet", encrypt=True) as w:
        w.write(b"protected")
    with store.writer(name, "plain.parquet") as w:
        w.write(b"standard")
    assert store.client.head_object(Bucket=name, Key="hipaa.parquet").get("ServerSideEncryption") == "AES256"
    assert "ServerSideEncryption" not in store.client.head_object(Bucket=name, Key="plain.parquet")
    assert leftovers(store, spool) == []


def test_local_writer_holds_no_file_descriptor_between_writes(tmp_path):
    store = LocalObjectStore(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    writers = [store.writer("processed", f"c{i}/events.parquet") for i in range(50)]
    for w in writers:
        w.write(b"x" * 10)
        w.flush()
    assert len(os.listdir("/proc/self/fd")) <= before
    infos = store.commit_many(writers)
    assert [i.size for i in infos] == [10] * 50
    assert all(store.head("processed", i.key).sha256 == hashlib.sha256(b"x" * 10).hexdigest() for i in infos)
    assert not [n for _, _, files in os.walk(tmp_path) for n in files if n.startswith(".tmp-")]


def test_local_writer_deletes_stale_temporary_files_of_its_folders(tmp_path):
    store = LocalObjectStore(tmp_path)
    folder = tmp_path / "processed" / "a"
    folder.mkdir(parents=True)
    stale = folder / ".tmp-killed"
    stale.write_bytes(b"client data")
    old = os.stat(stale).st_mtime - local.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    with store.writer("processed", "a/1.bin") as w:
        w.write(b"new")
    assert sorted(p.name for p in folder.iterdir()) == ["1.bin"]
