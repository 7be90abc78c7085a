"""The object store interface: one contract, a local-directory and an S3 implementation."""

from __future__ import annotations

import abc
import hashlib
import os
import re
import tempfile
from contextlib import suppress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

Data = bytes | BinaryIO | os.PathLike | str
CHUNK = 1024 * 1024
# Bytes an ObjectWriter holds before it appends them to its temporary file (or on flush()).
SPILL_BYTES = 256 * 1024
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectStoreError(Exception):
    """Base of every object store error."""


class ObjectNotFound(ObjectStoreError, KeyError):
    def __init__(self, bucket: str, key: str):
        self.bucket, self.key = bucket, key
        super().__init__(f"no object {key!r} in bucket {bucket!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ObjectStoreUnreachable(ObjectStoreError):
    """The store cannot be reached; the message names the endpoint, never credentials."""


class InvalidKey(ObjectStoreError, ValueError):
    """A bucket name or object key the store refuses."""


class PresignedUrlInvalid(ObjectStoreError):
    """A presigned URL whose signature does not match."""


class PresignedUrlExpired(ObjectStoreError):
    """A presigned URL past its expiry."""


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    sha256: str
    last_modified: datetime | None = None


def validate(bucket: str, key: str | None = None) -> None:
    if not isinstance(bucket, str) or not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidKey(f"invalid bucket name {bucket!r}: 3-63 lowercase letters, digits, dots, hyphens")
    if key is None:
        return
    if not isinstance(key, str) or not key:
        raise InvalidKey("object key must be a non-empty string")
    if key.startswith("/") or "\\" in key or "\x00" in key or ".." in key.split("/"):
        raise InvalidKey(f"invalid object key {key!r}: no leading '/', backslash, NUL or '..' segment")


def seconds(expires_in: timedelta | int) -> int:
    value = int(expires_in.total_seconds()) if isinstance(expires_in, timedelta) else int(expires_in)
    if value <= 0:
        raise ValueError("expires_in must be positive")
    return value


def hash_stream(stream: BinaryIO, sink=None) -> tuple[str, int]:
    """SHA-256 and size of a stream read in chunks (never whole into memory); copies to sink."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


class ObjectWriter(abc.ABC):
    """An object written piece by piece, as to a binary file (`write`, `tell`, `flush`, `close`),
    then published with `commit()`: it appears under its key at once, whole, with its SHA-256
    (computed as the bytes are written), and `commit()` returns its ObjectInfo. `abort()`, or
    leaving a `with` block by an exception, leaves no object and no temporary file; so does a
    failed commit. Memory holds at most `SPILL_BYTES` of it (or what was written since the last
    `flush()`): the rest is in a temporary file. `close()` only ends the writing (a Parquet
    writer closes its sink); nothing is visible before `commit()`."""

    mode = "wb"

    def __init__(self, bucket: str, key: str, content_type: str, metadata: dict[str, str] | None, encrypt: bool):
        validate(bucket, key)
        self.bucket, self.key, self.content_type, self.encrypt = bucket, key, content_type, encrypt
        self.metadata = dict(metadata or {})
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self._size = 0
        self.closed = False
        self._finished = False  # committed or aborted

    # the file interface ------------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        if self.closed:
            raise ValueError(f"write to a closed object writer ({self.key})")
        view = memoryview(data).cast("B")
        self._digest.update(view)
        self._size += view.nbytes
        if not self._buffer and view.nbytes >= SPILL_BYTES:  # big enough on its own: no copy
            self._append(view)
            return view.nbytes
        self._buffer += view
        if len(self._buffer) >= SPILL_BYTES:
            self._spill()
        return view.nbytes

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        if self._buffer and not self._finished:
            self._spill()

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True

    def _spill(self) -> None:
        with memoryview(self._buffer) as view:
            self._append(view)
        del self._buffer[:]

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def size(self) -> int:
        return self._size

    # publishing ------------------------------------------------------------------------------
    def commit(self) -> ObjectInfo:
        if self._finished:
            raise ValueError(f"object writer for {self.key} already committed or aborted")
        try:
            self.close()
            info = self._publish()
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return info

    def abort(self) -> None:
        """Nothing published, the temporary file deleted (a no-op once committed)."""
        if self._finished:
            return
        self._finished = self.closed = True
        self._buffer = bytearray()
        self._discard()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._finished:
                self.commit()
        else:
            self.abort()

    @abc.abstractmethod
    def _append(self, data: memoryview) -> None:
        """`data` appended to the temporary file."""

    @abc.abstractmethod
    def _publish(self) -> ObjectInfo:
        """The temporary file made the object, atomically; called once, after close()."""

    @abc.abstractmethod
    def _discard(self) -> None:
        """The temporary file deleted, if any."""


class SpooledObjectWriter(ObjectWriter):
    """The writer of stores that publish through `put` (S3): the bytes go to a private temporary
    file of the local file system, and `commit()` uploads that file (multipart when big), then
    deletes it."""

    def __init__(self, store: ObjectStore, bucket, key, content_type, metadata, encrypt):
        super().__init__(bucket, key, content_type, metadata, encrypt)
        self._store = store
        self._path: str | None = None

    def _append(self, data: memoryview) -> None:
        if self._path is None:
            fd, self._path = tempfile.mkstemp(prefix="repazoo-object-")  # 0600
            os.close(fd)
        with open(self._path, "ab") as out:
            out.write(data)

    def _publish(self) -> ObjectInfo:
        if self._path is None:
            self._append(memoryview(b""))
        try:
            with open(self._path, "rb") as body:
                info = self._store.put(self.bucket, self.key, body, content_type=self.content_type,
                                       metadata=self.metadata, encrypt=self.encrypt)
        finally:
            self._discard()
        if info.sha256 != self.sha256 or info.size != self.size:
            raise ObjectStoreError(f"{self.key}: the uploaded object differs from what was written")
        return info

    def _discard(self) -> None:
        if self._path is not None:
            with suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None


class ObjectStore(abc.ABC):
    """Objects addressed by (bucket, key). Writes are atomic: a reader never sees half an object.
    Every object carries its SHA-256, so a copy can be verified without downloading it."""

    @abc.abstractmethod
    def put(self, bucket: str, key: str, data: Data, *, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None, encrypt: bool = False) -> ObjectInfo:
        """Write atomically. `encrypt` asks the store for server-side encryption (S3: AES256);
        the local directory store has none and ignores it."""

    @abc.abstractmethod
    def open(self, bucket: str, key: str) -> BinaryIO: ...

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]: ...

    @abc.abstractmethod
    def delete(self, bucket: str, key: str) -> bool: ...

    @abc.abstractmethod
    def ensure_bucket(self, bucket: str) -> None: ...

    @abc.abstractmethod
    def presigned_get_url(self, bucket: str, key: str, expires_in: timedelta | int) -> str: ...

    @abc.abstractmethod
    def check(self) -> None: ...

    # Whether `commit_many` publishes a batch together (one disk flush for all: the local store)
    # rather than one object after the other (callers then commit in parallel themselves).
    commits_in_batches = False

    def writer(self, bucket: str, key: str, *, content_type: str = "application/octet-stream",
               metadata: dict[str, str] | None = None, encrypt: bool = False) -> ObjectWriter:
        """An ObjectWriter for (bucket, key): written piece by piece, published by `commit()`
        with what `put` guarantees (atomic, SHA-256, `encrypt` as in put)."""
        return SpooledObjectWriter(self, bucket, key, content_type, metadata, encrypt)

    def commit_many(self, writers: list[ObjectWriter]) -> list[ObjectInfo]:
        """Each writer committed, in order. If one fails, the writers not yet committed are
        aborted (no object, no temporary file) and the error raised."""
        try:
            return [w.commit() for w in writers]
        except BaseException:
            for w in writers:
                w.abort()
            raise

    def get(self, bucket: str, key: str) -> bytes:
        with self.open(bucket, key) as stream:
            return stream.read()

    def download(self, bucket: str, key: str, path: os.PathLike | str) -> ObjectInfo:
        with self.open(bucket, key) as stream, open(path, "wb") as out:
            hash_stream(stream, out)
        return self.head(bucket, key)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.head(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Full ObjectInfo per object (a head each on S3); use list_keys when keys suffice."""
        for key in self.list_keys(bucket, prefix):
            yield self.head(bucket, key)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        return sum(self.delete(bucket, key) for key in list(self.list_keys(bucket, prefix)))
