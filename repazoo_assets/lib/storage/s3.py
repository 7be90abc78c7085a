"""Object store on S3 or any S3-compatible endpoint (MinIO, moto, …) through boto3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import BinaryIO

# boto3 and botocore.config are imported where a client is made: together they cost ~0.2 s, which
# every process that loads the code location would pay although only production uses S3.
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from repazoo_assets.lib.storage.base import (
    Data,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnreachable,
    hash_stream,
    seconds,
    validate,
)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DELETE_BATCH = 1000


def s3_client(
    endpoint_url: str | None = None,
    region_name: str | None = None,
    *,
    connect_timeout: float = 5,
    max_attempts: int = 3,
):
    """A boto3 S3 client; credentials come from the standard chain (environment, profile, role)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=connect_timeout, retries={"max_attempts": max_attempts, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name, config=config)


class S3ObjectStore(ObjectStore):
    def __init__(self, client):
        self.client = client
        self._presigner = None

    @property
    def _endpoint(self) -> str:
        return self.client.meta.endpoint_url

    def _call(self, bucket: str, key: str | None, fn, **kwargs):
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND and key is not None:
                raise ObjectNotFound(bucket, key) from None
            raise ObjectStoreError(f"S3 {fn.__name__} on bucket {bucket!r} failed: {code or exc}") from None
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise ObjectStoreUnreachable(f"S3 endpoint {self._endpoint} is unreachable ({type(exc).__name__})") from None

    def put(self, bucket, key, data: Data, *, content_type="application/octet-stream", metadata=None,
            encrypt: bool = False) -> ObjectInfo:
        validate(bucket, key)
        sse = {"ServerSideEncryption": "AES256"} if encrypt else {}
        if isinstance(data, bytes | bytearray | memoryview):
            sha256, size = hashlib.sha256(data).hexdigest(), len(data)
            self._call(bucket, None, self.client.put_object, Bucket=bucket, Key=key, Body=bytes(data),
                       ContentType=content_type, Metadata={**(metadata or {}), "sha256": sha256}, **sse)
            return ObjectInfo(bucket, key, size, sha256)
        if isinstance(data, str | os.PathLike):
            with open(data, "rb") as f:
                return self._put_stream(bucket, key, f, content_type, metadata, sse)
        return self._put_stream(bucket, key, data, content_type, metadata, sse)

    def _put_stream(self, bucket, key, stream: BinaryIO, content_type, metadata, sse=None) -> ObjectInfo:
        # The hash travels as metadata, which S3 needs before the upload: hash first when the
        # stream can be rewound, else spool it (bounded memory, spills to disk).
        if stream.seekable():
            start = stream.tell()
            sha256, size = hash_stream(stream)
            stream.seek(start)
            body = stream
        else:
            import tempfile

            body = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
            sha256, size = hash_stream(stream, body)
            body.seek(0)
        extra = {"ContentType": content_type, "Metadata": {**(metadata or {}), "sha256": sha256}, **(sse or {})}
        # upload_fileobj switches to multipart for big bodies; S3 shows the object only when complete.
        self._call(bucket, None, self.client.upload_fileobj, Fileobj=body, Bucket=bucket, Key=key, ExtraArgs=extra)
        return ObjectInfo(bucket, key, size, sha256)

    def open(self, bucket: str, key: str) -> BinaryIO:
        validate(bucket, key)
        return self._call(bucket, key, self.client.get_object, Bucket=bucket, Key=key)["Body"]

    def head(self, bucket: str, key: str) -> ObjectInfo:
        validate(bucket, key)
        response = self._call(bucket, key, self.client.head_object, Bucket=bucket, Key=key)
        sha256 = response.get("Metadata", {}).get("sha256")
        if not sha256:  # written by another tool: hash it once by reading it
            with self.open(bucket, key) as body:
                sha256, _ = hash_stream(body)
        return ObjectInfo(bucket, key, response["ContentLength"], sha256, response.get("LastModified"))

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        validate(bucket)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"]
        except ClientError as exc:
            raise ObjectStoreError(f"S3 list on bucket {bucket!r} failed: {exc.response['Error'].get('Code')}") from None
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise ObjectStoreUnreachable(f"S3 endpoint {self._endpoint} is unreachable ({type(exc).__name__})") from None

    def delete(self, bucket: str, key: str) -> bool:
        if not self.exists(bucket, key):
            return False
        self._call(bucket, key, self.client.delete_object, Bucket=bucket, Key=key)
        return True

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = list(self.list_keys(bucket, prefix))
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
            self._call(bucket, None, self.client.delete_objects, Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def ensure_bucket(self, bucket: str) -> None:
        validate(bucket)
        try:
            self.client.head_bucket(Bucket=bucket)
            return
        except ClientError:
            pass
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise ObjectStoreUnreachable(f"S3 endpoint {self._endpoint} is unreachable ({type(exc).__name__})") from None
        try:
            self.client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"].get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise ObjectStoreError(f"cannot create bucket {bucket!r}: {exc.response['Error'].get('Code')}") from None

    def presigned_get_url(self, bucket: str, key: str, expires_in: timedelta | int) -> str:
        validate(bucket, key)
        return self._sigv4_client().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds(expires_in)
        )

    def _sigv4_client(self):
        """A client that signs links with SigV4. boto3 may presign with the legacy SigV2, which
        regions opened since 2014 refuse; the signature version is fixed when a client is made,
        so this is a sibling client on the same endpoint and region, with the credentials of the
        default chain (the same the platform's S3 resource uses: environment, profile or role)."""
        if self._presigner is None:
            # (meta.config may already say "s3v4" while presigning still uses SigV2: only a
            # version given explicitly when the client is made is used for links.)
            import boto3
            from botocore.config import Config

            meta = self.client.meta
            self._presigner = boto3.client(
                "s3", endpoint_url=meta.endpoint_url, region_name=meta.region_name,
                config=meta.config.merge(Config(signature_version="s3v4")),
            )
        return self._presigner

    def check(self) -> None:
        try:
            self.client.list_buckets()
        except ClientError as exc:
            raise ObjectStoreUnreachable(
                f"S3 endpoint {self._endpoint} refused the request ({exc.response['Error'].get('Code')})"
            ) from None
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise ObjectStoreUnreachable(f"S3 endpoint {self._endpoint} is unreachable ({type(exc).__name__})") from None
