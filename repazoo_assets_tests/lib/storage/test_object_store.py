"""The object-store contract: the same tests on the local directory and on S3 (moto's server)."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from repazoo_assets.lib.storage import (
    InvalidKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreUnreachable,
    PresignedUrlExpired,
    PresignedUrlInvalid,
    S3ObjectStore,
    s3_client,
)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3ObjectStore(s3_client(endpoint, "us-east-1"))


@pytest.fixture
def bucket(store: ObjectStore) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    return name


def fetch_presigned(store: ObjectStore, url: str) -> bytes:
    if isinstance(store, LocalObjectStore):
        return store.open_presigned(url)
    response = httpx.get(url)
    response.raise_for_status()
    return response.content


class _Exploding(io.RawIOBase):
    """A stream that yields some bytes and then fails, like a dropped upstream connection."""

    def __init__(self, good: bytes):
        self._good = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._good.read(len(buffer))
        if not chunk:
            raise ConnectionResetError("upstream went away")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_put_get_head_roundtrip(store, bucket):
    data = os.urandom(100_000)
    info = store.put(bucket, "a/b/c.bin", data, content_type="application/octet-stream")
    assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert store.get(bucket, "a/b/c.bin") == data
    head = store.head(bucket, "a/b/c.bin")
    assert (head.size, head.sha256) == (info.size, info.sha256)
    assert head.last_modified is not None


def test_put_from_stream_and_from_path(store, bucket, tmp_path):
    data = b"line\n" * 300_000  # 1.5 MB: more than one read chunk
    info = store.put(bucket, "stream.txt", io.BytesIO(data))
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    path = tmp_path / "upload.txt"
    path.write_bytes(data[:1000])
    info = store.put(bucket, "path.txt", path)
    assert store.get(bucket, "path.txt") == data[:1000]
    assert store.head(bucket, "path.txt").size == 1000


def test_download_to_file(store, bucket, tmp_path):
    store.put(bucket, "x/y.json", b'{"a": 1}')
    target = tmp_path / "y.json"
    info = store.download(bucket, "x/y.json", target)
    assert target.read_bytes() == b'{"a": 1}'
    assert info.sha256 == hashlib.sha256(b'{"a": 1}').hexdigest()


def test_overwrite_replaces_content_and_checksum(store, bucket):
    store.put(bucket, "k", b"first")
    store.put(bucket, "k", b"second version")
    assert store.get(bucket, "k") == b"second version"
    assert store.head(bucket, "k").sha256 == hashlib.sha256(b"second version").hexdigest()


def test_missing_objects_raise_object_not_found(store, bucket):
    for call in (store.get, store.head, store.open):
        with pytest.raises(ObjectNotFound) as excinfo:
            call(bucket, "nope/missing.bin")
        assert "nope/missing.bin" in str(excinfo.value)
    assert store.exists(bucket, "nope/missing.bin") is False


def test_list_by_prefix_is_sorted_and_exact(store, bucket):
    for key in ["events/dt=2026-11-02/b", "events/dt=2026-11-01/a", "events/dt=2026-11-01/c", "other/z"]:
        store.put(bucket, key, key.encode())
    assert list(store.list_keys(bucket, "events/dt=2026-11-01/")) == [
        "events/dt=2026-11-01/a",
        "events/dt=2026-11-01/c",
    ]
    assert len(list(store.list_keys(bucket))) == 4
    infos = list(store.list(bucket, "other/"))
    assert [(i.key, i.size) for i in infos] == [("other/z", 7)]
    assert list(store.list_keys(bucket, "absent/")) == []


def test_delete_and_delete_prefix(store, bucket):
    store.put(bucket, "p/1", b"1")
    store.put(bucket, "p/2", b"2")
    store.put(bucket, "q/3", b"3")
    assert store.delete(bucket, "p/1") is True
    assert store.delete(bucket, "p/1") is False
    assert store.delete_prefix(bucket, "p/") == 1
    assert list(store.list_keys(bucket)) == ["q/3"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "back\\slash", "nul\x00"])
def test_invalid_keys_are_refused(store, bucket, key):
    with pytest.raises(InvalidKey):
        store.put(bucket, key, b"x")


@pytest.mark.parametrize("name", ["UPPER", "a", "under_score", "../up"])
def test_invalid_bucket_names_are_refused(store, name):
    with pytest.raises(InvalidKey, match="invalid bucket name"):
        store.put(name, "k", b"x")


def test_presigned_url_serves_the_object_until_it_expires(store, bucket):
    store.put(bucket, "exports/user.json", b'{"tweets": []}')
    url = store.presigned_get_url(bucket, "exports/user.json", 60)
    assert fetch_presigned(store, url) == b'{"tweets": []}'
    before = int(time.time())
    short = store.presigned_get_url(bucket, "exports/user.json", 1)
    if isinstance(store, LocalObjectStore):
        time.sleep(2.1)
        with pytest.raises(PresignedUrlExpired):
            store.open_presigned(short)
    else:
        # moto does not enforce expiry (S3 does): check the expiry that S3 would enforce.
        query = parse_qs(urlparse(short).query)
        if "Expires" in query:
            assert before + 1 <= int(query["Expires"][0]) <= int(time.time()) + 1
        else:
            assert query["X-Amz-Expires"] == ["1"]
    with pytest.raises(ValueError, match="expires_in must be positive"):
        store.presigned_get_url(bucket, "exports/user.json", 0)


def test_local_presigned_url_with_forged_signature_is_refused(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("exports", "k.json", b"{}")
    url = store.presigned_get_url("exports", "k.json", 60)
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    with pytest.raises(PresignedUrlInvalid):
        store.open_presigned(forged)
    other = LocalObjectStore(tmp_path / "elsewhere")  # a different signing key
    with pytest.raises(PresignedUrlInvalid):
        other.open_presigned(url)


def test_failed_upload_leaves_no_object_and_keeps_the_old_one(store, bucket):
    store.put(bucket, "atomic.bin", b"old content")
    with pytest.raises(Exception):
        store.put(bucket, "atomic.bin", io.BufferedReader(_Exploding(b"new " * 1000)))
    assert store.get(bucket, "atomic.bin") == b"old content"
    with pytest.raises(Exception):
        store.put(bucket, "never.bin", io.BufferedReader(_Exploding(b"partial")))
    assert not store.exists(bucket, "never.bin")
    assert list(store.list_keys(bucket)) == ["atomic.bin"]


def test_local_store_leaves_no_temp_files_after_a_failed_write(tmp_path):
    store = LocalObjectStore(tmp_path)
    with pytest.raises(ConnectionResetError):
        store.put("raw", "d/x.bin", io.BufferedReader(_Exploding(b"partial")))
    leftovers = [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]
    assert leftovers == []


def test_local_head_hashes_files_written_by_something_else(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("raw", "k", b"by the store")
    (tmp_path / "raw" / "k").write_bytes(b"changed behind its back")
    assert store.head("raw", "k").sha256 == hashlib.sha256(b"changed behind its back").hexdigest()


def test_unreachable_s3_endpoint_is_a_clear_error():
    from repazoo_assets.lib.storage.base import ObjectStoreError

    store = S3ObjectStore(s3_client("http://127.0.0.1:9", "us-east-1", connect_timeout=0.5, max_attempts=1))
    with pytest.raises(ObjectStoreUnreachable, match="127.0.0.1:9 is unreachable"):
        store.check()
    with pytest.raises(ObjectStoreError):
        store.put("raw", "k", b"x")
