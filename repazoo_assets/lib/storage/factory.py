"""The object store of the current environment, for code outside Dagster (the `repazoo` command)."""

from __future__ import annotations

from repazoo_assets.lib.settings import Settings
from repazoo_assets.lib.storage.base import ObjectStore
from repazoo_assets.lib.storage.local import LocalObjectStore
from repazoo_assets.lib.storage.s3 import S3ObjectStore, s3_client


def object_store_for(settings: Settings) -> ObjectStore:
    if settings.is_production:
        return S3ObjectStore(s3_client(endpoint_url=settings.s3_endpoint_url))
    store = LocalObjectStore(settings.objects_dir)
    for bucket in (settings.buckets.raw, settings.buckets.processed, settings.buckets.exports):
        store.ensure_bucket(bucket)
    return store
