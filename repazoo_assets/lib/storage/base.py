"""The object store interface: one contract, a local-directory and an S3 implementation."""

from __future__ import annotations

import abc
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

Data = bytes | BinaryIO | os.PathLike | str
CHUNK = 1024 * 1024
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
