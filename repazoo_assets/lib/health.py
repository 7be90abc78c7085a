"""Health probes for the platform's dependencies: app database, object store, rate-limit storage.

Each probe does the smallest real round trip that proves the dependency works for the pipelines
(a query and the migration state; a write, read-back and delete; a storage ping) and never raises:
it returns a ProbeResult so that one failing dependency does not hide the others.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from limits.storage import Storage, storage_from_string
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import current_revision, head_revision
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.storage import ObjectStore


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    latency_ms: float
    detail: str


def _timed(name: str, probe: Callable[[], str]) -> ProbeResult:
    started = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except Exception as exc:  # a probe reports failure instead of raising
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'failed'}"
        ok = False
    return ProbeResult(name, ok, round((time.perf_counter() - started) * 1000, 2), detail)


def probe_database(engine: Engine) -> ProbeResult:
    def probe() -> str:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        revision, head = current_revision(engine), head_revision()
        if revision != head:
            raise RuntimeError(f"schema at {revision or 'empty'}, expected {head}: run `repazoo db upgrade`")
        return f"schema at {revision}"

    return _timed("database", probe)


def probe_object_store(store: ObjectStore, bucket: str) -> ProbeResult:
    def probe() -> str:
        key = f"_health/probe-{uuid.uuid4().hex}"
        body = uuid.uuid4().bytes
        info = store.put(bucket, key, body)
        try:
            if store.get(bucket, key) != body or info.sha256 != hashlib.sha256(body).hexdigest():
                raise RuntimeError("object read back differs from what was written")
        finally:
            store.delete(bucket, key)
        return f"write/read/delete ok in {bucket}"

    return _timed("object_store", probe)


def rate_limit_storage(uri: str, key_prefix: str | None = None, timeout: float = 2.0) -> Storage:
    """The rate-limit storage as `RateLimitResource.storage()` builds it, but with socket timeouts
    on Redis: a probe of a server that does not answer ends within `timeout` seconds."""
    if uri.startswith("memory://"):
        return storage_from_string(uri)
    options: dict = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if key_prefix:
        options["key_prefix"] = key_prefix
    return storage_from_string(uri, **options)


def probe_rate_limit_storage(storage) -> ProbeResult:
    def probe() -> str:
        if not storage.check():
            raise RuntimeError("rate-limit storage did not answer")
        return f"{type(storage).__name__} answered"

    return _timed("rate_limit_storage", probe)


def table_row_counts(engine: Engine) -> dict[str, int]:
    """Rows per app table: cheap at demo sizes; production monitoring samples instead."""
    with engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in sorted(t.metadata.tables.items())
        }
