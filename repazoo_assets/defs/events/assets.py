"""Event pipeline, first stage: `raw_events` exports finished events from the app database to the
raw bucket every minute, exactly once (see `lib/events/export.py` for how)."""

import warnings

import dagster as dg
import sqlalchemy as sa

from repazoo_assets.defs.resources import AppDatabase, ObjectStoreResource, PseudonymizationKeyResource
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.export import DEFAULT_CHUNK_ROWS, export_raw_events


class RawEventsConfig(dg.Config):
    chunk_rows: int = DEFAULT_CHUNK_ROWS  # rows per raw object: the bound on the export's memory


@dg.asset(
    group_name="events",
    kinds={"python", "s3", "parquet"},
    owners=["team:data-platform"],
    pool="raw_export",
    description=(
        "Every finished event of `events_log` not yet exported, as Parquet (zstd) objects in the raw "
        "bucket keyed by id range (`events/dt=…/hour=…/events-<first>-<last>.parquet`) with a "
        "manifest; a `raw_batches` row once the object is verified. Malformed events go to `bad/` "
        "with the reason. Exactly once across crashes and out-of-order commits."
    ),
)
def raw_events(
    context: dg.AssetExecutionContext, config: RawEventsConfig, app_db: AppDatabase, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    store = object_store.store()
    bucket = object_store.buckets.raw
    store.ensure_bucket(bucket)
    report = export_raw_events(app_db.engine, store, bucket, chunk_rows=config.chunk_rows)
    if report.skipped_reason:
        context.log.info(f"nothing exported: {report.skipped_reason}")
    else:
        context.log.info(
            f"window {report.window_id}{' (resumed)' if report.window_resumed else ''}: {report.batches} batches, "
            f"{report.rows} events, {report.bad_rows} dead-lettered"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.rows,
            "dead_lettered": report.bad_rows,
            "batches": report.batches,
            "bytes_written": report.bytes_written,
            "window_id": report.window_id,
            "window_resumed": report.window_resumed,
            "skipped": report.skipped_reason or "",
            "first_keys": dg.MetadataValue.json(report.keys[:5]),
        }
    )


@dg.asset_check(asset=raw_events, description="Each recent raw batch holds exactly the source rows of its id range.")
def raw_batches_match_source(app_db: AppDatabase) -> dg.AssetCheckResult:
    b, w, e = t.raw_batches, t.raw_export_windows, t.events_log
    postgres = app_db.engine.dialect.name == "postgresql"
    mismatched = []
    with app_db.engine.connect() as conn:
        batches = conn.execute(
            sa.select(b, w.c.xid_from, w.c.xid_to)
            .join(w, w.c.id == b.c.window_id)
            .where(b.c.cleaned_at.is_(None))
            .order_by(b.c.id.desc())
            .limit(200)
        ).all()
        for batch in batches:
            query = sa.select(sa.func.count()).where(e.c.id.between(batch.first_event_id, batch.last_event_id))
            query = query.where(e.c.txid >= batch.xid_from, e.c.txid < batch.xid_to) if postgres else query
            source = conn.execute(query).scalar_one()
            if source != batch.row_count + batch.bad_count:
                mismatched.append(batch.object_key)
    return dg.AssetCheckResult(
        passed=not mismatched,
        metadata={"batches_checked": len(batches), "mismatched": dg.MetadataValue.json(mismatched[:20])},
    )


raw_events_job = dg.define_asset_job("raw_events_export", selection=[raw_events])

raw_events_every_minute = dg.ScheduleDefinition(
    job=raw_events_job,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Export finished events to the raw bucket every minute.",
)


class EventsCleanupConfig(dg.Config):
    min_age_hours: int = 1  # 1–24: how old a batch's newest event must be before deletion
    max_batches: int = 50


@dg.asset(
    group_name="events",
    deps=[raw_events],
    kinds={"python"},
    owners=["team:data-platform"],
    description=(
        "Deletes from `events_log` the rows of raw batches whose object still has the recorded size "
        "and SHA-256 and whose newest event is older than the minimum age, one batch per "
        "transaction. A missing or altered object blocks its batch and raises an alert."
    ),
)
def events_cleanup(
    context: dg.AssetExecutionContext, config: EventsCleanupConfig, app_db: AppDatabase, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    from datetime import timedelta

    from repazoo_assets.lib.events.cleanup import cleanup_exported_events

    if not 1 <= config.min_age_hours <= 24:
        raise dg.Failure(description=f"min_age_hours must be between 1 and 24, got {config.min_age_hours}")
    report = cleanup_exported_events(
        app_db.engine, object_store.store(), object_store.buckets.raw,
        min_age=timedelta(hours=config.min_age_hours), max_batches=config.max_batches,
    )
    for key, problem in report.blocked:
        context.log.error(f"raw object {key} is {problem}: its events are kept and an alert was raised")
    if report.blocked:
        raise dg.Failure(
            description=f"{len(report.blocked)} raw batches blocked (object missing or altered); "
            f"{report.rows_deleted} rows of {report.batches_cleaned} verified batches were deleted",
            metadata={"blocked": dg.MetadataValue.json([k for k, _ in report.blocked])},
            allow_retries=False,
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.rows_deleted,
            "batches_cleaned": report.batches_cleaned,
        }
    )


events_cleanup_job = dg.define_asset_job("cleanup_exported_events", selection=[events_cleanup])

events_cleanup_every_15_minutes = dg.ScheduleDefinition(
    job=events_cleanup_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Delete exported, verified events older than the minimum age.",
)


# BackfillPolicy is a Dagster beta parameter; the issue asks for single-run backfills, so it is
# used deliberately and its warning silenced here only.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

hourly = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00", timezone="UTC")


@dg.asset(
    group_name="events",
    deps=[raw_events],
    partitions_def=hourly,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"python", "s3", "parquet"},
    owners=["team:data-platform"],
    description=(
        "Each UTC hour of exported events split per client under the client's privacy level "
        "(standard as is; GDPR: keyed pseudonyms for IP and user id, personal fields removed, PII "
        "redacted, browser family only, no-consent events dropped; HIPAA: GDPR plus no query strings "
        "or free text, encrypted objects, an audit entry per write), one Parquet file per "
        "client-hour in the processed bucket. A backfill of a range runs as one run; reruns overwrite."
    ),
)
def processed_events(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    object_store: ObjectStoreResource,
    pseudonymization: PseudonymizationKeyResource,
) -> dg.MaterializeResult:
    from datetime import timedelta

    from repazoo_assets.lib.events.process import process_hour

    store = object_store.store()
    buckets = object_store.buckets
    store.ensure_bucket(buckets.processed)
    try:
        key = pseudonymization.key_bytes()
    except ValueError as exc:  # names the setting, never the key
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    window = context.partition_time_window
    hour, totals, dropped, files = window.start, 0, {}, 0
    while hour < window.end:
        report = process_hour(app_db.engine, store, buckets.raw, buckets.processed, hour, key)
        written = sum(report.written.values())
        totals += written
        files += len(report.keys)
        for reason, n in report.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
        context.log.info(
            f"{hour:%Y-%m-%d %H}:00: {report.raw_rows} raw events, {written} written to {len(report.keys)} "
            f"client files, {sum(report.dropped.values())} dropped"
        )
        hour += timedelta(hours=1)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": totals,
            "client_files": files,
            "dropped": dg.MetadataValue.json(dropped),
            "hours": round((window.end - window.start).total_seconds() / 3600),
        }
    )
