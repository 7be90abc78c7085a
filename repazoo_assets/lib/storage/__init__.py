"""Object store: one interface over a local directory and S3 (or any S3-compatible endpoint)."""

from repazoo_assets.lib.storage.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnreachable,
    PresignedUrlExpired,
    PresignedUrlInvalid,
)
from repazoo_assets.lib.storage.local import LocalObjectStore
from repazoo_assets.lib.storage.s3 import S3ObjectStore, s3_client

__all__ = [
    "InvalidKey",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreUnreachable",
    "PresignedUrlExpired",
    "PresignedUrlInvalid",
    "S3ObjectStore",
    "s3_client",
]
