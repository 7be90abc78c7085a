"""Platform health: one asset that proves every dependency of the pipelines works right now."""


import dagster as dg

from repazoo_assets.defs.resources import AppDatabase, ObjectStoreResource, RateLimitResource
from repazoo_assets.lib.health import (
    probe_database,
    probe_object_store,
    probe_rate_limit_storage,
    rate_limit_storage,
    table_row_counts,
)
from repazoo_assets.lib.settings import current_env


@dg.asset(
    group_name="monitoring",
    kinds={"python"},
    owners=["team:data-platform"],
    description=(
        "Health of the platform's dependencies: the app database (reachable, schema migrated), "
        "the object store (write, read back, delete) and the rate-limit storage. Fails naming "
        "each dependency that does not answer; row counts per app table in the metadata. The "
        "`monitoring` job's checks (thresholds and the same probes, every 5 minutes) are attached "
        "to this asset."
    ),
)
def platform_health(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    object_store: ObjectStoreResource,
    rate_limits: RateLimitResource,
) -> dg.MaterializeResult:
    store = object_store.store()
    probes = [
        probe_database(app_db.engine),
        probe_object_store(store, object_store.buckets.raw),
        # With socket timeouts: a Redis that does not answer fails the probe instead of hanging it.
        probe_rate_limit_storage(rate_limit_storage(rate_limits.storage_uri, rate_limits.key_prefix)),
    ]
    for probe in probes:
        context.log.info(f"{probe.name}: {'ok' if probe.ok else 'FAILED'} in {probe.latency_ms} ms ({probe.detail})")
    failed = [p for p in probes if not p.ok]
    if failed:
        raise dg.Failure(
            description="; ".join(f"{p.name}: {p.detail}" for p in failed),
            metadata={f"{p.name}_ok": p.ok for p in probes},
        )
    counts = table_row_counts(app_db.engine)
    table = "\n".join(["| table | rows |", "|---|---:|", *(f"| {name} | {n} |" for name, n in counts.items())])
    return dg.MaterializeResult(
        metadata={
            "environment": current_env(),
            **{f"{p.name}_latency_ms": p.latency_ms for p in probes},
            "schema": probes[0].detail,
            "app_table_rows": dg.MetadataValue.md(table),
            "dagster/row_count": sum(counts.values()),
        }
    )
