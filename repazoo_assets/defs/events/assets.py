"""Event pipeline, first stage: `raw_events` exports finished events from the app database to the
raw bucket every minute, exactly once (see `lib/events/export.py` for how)."""

import warnings
from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from repazoo_assets.defs.resources import AppDatabase, ObjectStoreResource, PseudonymizationKeyResource
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.export import DEFAULT_CHUNK_ROWS, ExportError, export_raw_events

# Every step here talks to the object store (S3) and is idempotent (the export resumes its
# window, processing overwrites its client-hours, delivery skips what is recorded), so a
# network failure is retried with backoff. Failures that a retry cannot fix say so
# (`dg.Failure(allow_retries=False)`).
EVENTS_NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# Freshness, shown in the UI: the raw export runs every minute, processing every hour; deliveries
# follow the slowest sync frequency (weekly, Mondays 00:30 UTC). Dagster evaluates a policy per
# asset (its latest materialization of any partition), not per client partition.
RAW_EVENTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=5), warn_window=timedelta(minutes=3))
PROCESSED_EVENTS_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=2), warn_window=timedelta(hours=1, minutes=30)
)
CLIENT_EXPORTS_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=7, hours=2), warn_window=timedelta(days=7, minutes=30)
)


class RawEventsConfig(dg.Config):
    chunk_rows: int = DEFAULT_CHUNK_ROWS  # rows per raw object: the bound on the export's memory


@dg.asset(
    group_name="events",
    kinds={"python", "s3", "parquet"},
    owners=["team:data-platform"],
    pool="raw_export",
    retry_policy=EVENTS_NETWORK_RETRY,
    freshness_policy=RAW_EVENTS_FRESHNESS,
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


# Checks here block: a failure fails the run, which the run-failure sensor turns into an alert.
@dg.asset_check(
    asset=raw_events, blocking=True, description="Each recent raw batch holds exactly the source rows of its id range."
)
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


raw_events_job = dg.define_asset_job(
    "raw_events_export", selection=[raw_events],
    description="Export every committed, not yet exported event to the raw bucket (runs every minute).",
)

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


events_cleanup_job = dg.define_asset_job(
    "cleanup_exported_events", selection=[events_cleanup],
    description="Delete exported events from events_log behind a verified raw object (every 15 minutes).",
)

events_cleanup_every_15_minutes = dg.ScheduleDefinition(
    job=events_cleanup_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Delete exported, verified events older than the minimum age.",
)


warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)
# BackfillPolicy is a Dagster beta parameter; the issue asks for single-run backfills, so it is
# used deliberately and its warning silenced here only.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

hourly = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00", timezone="UTC")


@dg.asset(
    group_name="events",
    deps=[raw_events],
    partitions_def=hourly,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=EVENTS_NETWORK_RETRY,
    freshness_policy=PROCESSED_EVENTS_FRESHNESS,
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
    from repazoo_assets.lib.events.process import process_hours

    store = object_store.store()
    buckets = object_store.buckets
    store.ensure_bucket(buckets.processed)
    try:
        key = pseudonymization.key_bytes()
    except ValueError as exc:  # names the setting, never the key
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    window = context.partition_time_window
    try:
        reports = process_hours(app_db.engine, store, buckets.raw, buckets.processed, window.start, window.end, key)
    except ExportError as exc:  # an altered raw object: retrying reads the same bytes
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    dropped: dict[str, int] = {}
    for report in reports:
        for reason, n in report.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
        context.log.info(
            f"{report.hour:%Y-%m-%d %H}:00: {report.raw_rows} raw events ({report.raw_reads} raw objects read), "
            f"{sum(report.written.values())} written to {len(report.keys)} client files, "
            f"{sum(report.dropped.values())} dropped"
            + (f"; changed since delivery, to deliver again: {report.redelivered}" if report.redelivered else "")
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(sum(r.written.values()) for r in reports),
            "client_files": sum(len(r.keys) for r in reports),
            "dropped": dg.MetadataValue.json(dropped),
            "hours": len(reports),
            "raw_objects_read": sum(r.raw_reads for r in reports),
            "to_deliver_again": sum(len(r.redelivered) for r in reports),
        }
    )


processed_events_job = dg.define_asset_job(
    "process_events_hourly", selection=[processed_events],
    description="Backfill hours: split each hour per client under its privacy level (a range runs as one run).",
)

# At :10, the hour that just ended (the raw export runs every minute; events committed later
# are picked up by re-running the hour, which the count check below flags).
processed_events_hourly_schedule = dg.build_schedule_from_partitioned_job(
    processed_events_job, minute_of_hour=10, default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Process the previous UTC hour's events, per client and privacy level.",
)


from repazoo_assets.defs.events.partitions import clients_partitions  # noqa: E402
from repazoo_assets.defs.resources import LocalObjectStoreResource, TokenVaultResource  # noqa: E402


def _destination_store(client, credentials, object_store: ObjectStoreResource):
    """The client's own bucket: through the client's keys (and endpoint) when it has them; with
    the platform's local store in the local environment; else S3 with the default credentials."""
    from repazoo_assets.lib.storage import S3ObjectStore

    if credentials is None and client.destination_endpoint_url is None and isinstance(
        object_store, LocalObjectStoreResource
    ):
        return object_store.store()
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id if credentials else None,
        aws_secret_access_key=credentials.secret_access_key if credentials else None,
        region_name=client.destination_region or "us-east-1",
    )
    return S3ObjectStore(session.client("s3", endpoint_url=client.destination_endpoint_url or None))


@dg.asset(
    group_name="events",
    # Each client's delivery reads every processed hour not yet delivered.
    deps=[dg.AssetDep(processed_events, partition_mapping=dg.AllPartitionMapping())],
    partitions_def=clients_partitions,
    retry_policy=EVENTS_NETWORK_RETRY,
    freshness_policy=CLIENT_EXPORTS_FRESHNESS,
    kinds={"python", "s3"},
    owners=["team:data-platform"],
    description=(
        "The partition client's processed client-hours not yet delivered, copied to the bucket the "
        "client owns in its format (Parquet or JSON lines) with a delivery manifest and one "
        "`client_deliveries` record per verified file. A failure fails this client only, raises an "
        "alert and leaves the rest pending."
    ),
)
def client_exports(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    object_store: ObjectStoreResource,
    token_vault: TokenVaultResource,
) -> dg.MaterializeResult:
    from datetime import UTC, datetime

    from repazoo_assets.lib.db import clients_store
    from repazoo_assets.lib.db.upsert import upsert
    from repazoo_assets.lib.events.deliver import DeliveryError, deliver_client

    client_id = context.partition_key
    engine = app_db.engine
    with engine.connect() as conn:
        client = conn.execute(sa.select(t.clients).where(t.clients.c.id == client_id)).first()
        if client is None or client.deleted_at is not None or not client.active:
            raise dg.Failure(description=f"no active client {client_id}", allow_retries=False)
        credentials = clients_store.load_credentials(conn, token_vault.vault(), client_id)
    try:
        report = deliver_client(
            engine, object_store.store(), object_store.buckets.processed,
            _destination_store(client, credentials, object_store), client,
        )
    except DeliveryError as exc:
        now = datetime.now(UTC)
        with engine.begin() as conn:
            upsert(
                conn, t.alerts,
                [{"check_name": "client_delivery", "severity": "error", "message": str(exc),
                  "dedup_key": f"client_delivery:{client_id}:{now:%Y%m%d%H}"}],
                key=["dedup_key"], update=[],
            )
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(f"client {client_id}: {len(report.files)} files, {report.rows} events delivered")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.rows,
            "files": len(report.files),
            "manifest": report.manifest_key or "",
            "format": client.format,
            "privacy_level": client.privacy_level,
        }
    )


client_exports_job = dg.define_asset_job(
    "deliver_to_clients", selection=[client_exports],
    description="Deliver each due client's undelivered processed hours to the client's own bucket.",
)


@dg.schedule(
    job=client_exports_job,
    cron_schedule="30 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour at :30, a delivery run for each client due by its frequency.",
)
def client_exports_schedule(context: dg.ScheduleEvaluationContext, app_db: AppDatabase):
    from datetime import UTC, datetime

    from repazoo_assets.lib.events.deliver import is_due

    now = context.scheduled_execution_time or datetime.now(UTC)
    known = set(context.instance.get_dynamic_partitions(clients_partitions.name))
    with app_db.engine.connect() as conn:
        last = dict(
            conn.execute(
                sa.select(t.client_deliveries.c.client_id, sa.func.max(t.client_deliveries.c.delivered_at))
                .group_by(t.client_deliveries.c.client_id)
            ).all()
        )
        clients = conn.execute(
            sa.select(t.clients.c.id, t.clients.c.sync_frequency).where(
                t.clients.c.deleted_at.is_(None), t.clients.c.active.is_(True)
            )
        ).all()
    for client in clients:
        delivered = last.get(client.id)
        if delivered is not None and delivered.tzinfo is None:
            delivered = delivered.replace(tzinfo=UTC)
        if client.id in known and is_due(client.sync_frequency, now, delivered):
            yield dg.RunRequest(partition_key=client.id, run_key=f"{client.id}:{now:%Y%m%d%H%M}")


@dg.asset_check(
    asset=processed_events,
    partitions_def=hourly,
    blocking=True,
    description="No raw IP address or e-mail address in any GDPR or HIPAA client file of the hour (scan).",
)
def processed_events_no_raw_identifiers(
    context: dg.AssetCheckExecutionContext, app_db: AppDatabase, object_store: ObjectStoreResource
) -> dg.AssetCheckResult:
    import io

    import pyarrow.parquet as pq

    from repazoo_assets.lib.events.privacy_levels import raw_identifier_columns
    from repazoo_assets.lib.events.process import processed_key
    from repazoo_assets.lib.storage import ObjectNotFound

    store = object_store.store()
    window = context.partition_time_window
    with app_db.engine.connect() as conn:
        protected = conn.execute(
            sa.select(t.clients.c.id).where(t.clients.c.privacy_level.in_(("gdpr", "hipaa")))
        ).scalars().all()
    scanned, dirty = 0, []
    hour = window.start
    while hour < window.end:
        for client_id in protected:
            key = processed_key(client_id, hour)
            try:
                table = pq.read_table(io.BytesIO(store.get(object_store.buckets.processed, key)))
            except ObjectNotFound:  # no events for this client in this hour; any other error fails the check
                continue
            columns, count = raw_identifier_columns(table)
            scanned += count
            dirty += [f"{key}:{column}" for column in columns]
        hour += timedelta(hours=1)
    return dg.AssetCheckResult(
        passed=not dirty,
        metadata={"values_scanned": scanned, "dirty": dg.MetadataValue.json(dirty[:20])},
    )


@dg.asset_check(
    asset=processed_events,
    partitions_def=hourly,
    blocking=True,
    description=(
        "Per hour: the raw events counted from the raw objects equal the rows of the client files "
        "(counted from the files) plus the rows dropped, by reason, recorded in the hour's manifest; "
        "every recorded client file is present and unaltered."
    ),
)
def processed_events_counts_match_raw(
    context: dg.AssetCheckExecutionContext, app_db: AppDatabase, object_store: ObjectStoreResource
) -> dg.AssetCheckResult:
    from repazoo_assets.lib.events.process import verify_hour_counts

    store, buckets = object_store.store(), object_store.buckets
    window = context.partition_time_window
    raw = processed = 0
    dropped: dict[str, int] = {}
    problems: list[str] = []
    hour = window.start
    while hour < window.end:
        counts = verify_hour_counts(app_db.engine, store, buckets.raw, buckets.processed, hour)
        raw += counts.raw_rows
        processed += counts.processed_rows
        for reason, n in counts.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
        problems += [f"{hour:%Y-%m-%d %H}:00 {p}" for p in counts.problems]
        hour += timedelta(hours=1)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "raw_events": raw,
            "processed_rows": processed,
            "dropped": dg.MetadataValue.json(dropped),
            "problems": dg.MetadataValue.json(problems[:20]),
        },
    )
