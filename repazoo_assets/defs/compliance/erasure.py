"""Erasure on revocation (GDPR Art. 17): `user_erasure_sensor` ──► `user_erasure` [check].

Every consent withdrawal is a `revoke` row in consent_audit_log (`repazoo consent revoke`, the web
app through `lib/compliance/consent.py`, or a token revoked through `twitter_store.revoke_token`).
The sensor follows that log by id (its cursor) and, per user, requests one `user_erasure` run and
removes the user's `users` partition, so no tweet-pipeline run can be started for them again.

The asset erases the user in one transaction (`lib/compliance/erasure.py`) and, in the same step,
scans the database and the object store for the user's identifiers, captured in memory before
the delete. The check `no_personal_data_remains` fails if anything is found. Metadata, logs and
the audit entry carry counts only; the internal user id is in the run config, as in every
pipeline run and in the audit log, which legally keep it.
"""


from collections import Counter

import dagster as dg

from repazoo_assets.defs.resources import AppDatabase, ObjectStoreResource
from repazoo_assets.defs.twitter.assets import users_partitions
from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.compliance import erasure

ACTOR = "pipeline:erasure"
ASSET = "user_erasure"
CHECK = "no_personal_data_remains"
PER_TICK = 200


class ErasureConfig(dg.Config):
    """Which user to erase. Unset: every user who withdrew consent and still has data (what
    "materialize all" does)."""

    user_id: str | None = None
    max_users: int = 100
    # List whole buckets for keys naming the user, not only the user's prefixes.
    scan_all_object_keys: bool = True


@dg.asset(
    name=ASSET,
    group_name="compliance",
    # Idempotent (a re-run finds nothing more to delete), so object-store hiccups are retried.
    retry_policy=dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    kinds={"python", "s3"},
    owners=["team:data-platform"],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=ASSET,
            # Blocking: remnants fail the run, so the run-failure sensor raises an alert (Art. 33).
            blocking=True,
            description=(
                "After the erasure, no app table (but audit_log and consent_audit_log) holds the "
                "user's internal id, Twitter id, handle or e-mail, and no object lies under the "
                "user's prefixes or has a key naming them."
            ),
        )
    ],
    description=(
        "Erases users who withdrew consent: tweets, sanitized tweets, analyses, API usage, tokens, "
        "subscriptions, export records and objects and the users row, in one transaction with an "
        "`erase` audit entry (counts only); then scans for anything left."
    ),
)
def user_erasure(
    context: dg.AssetExecutionContext,
    config: ErasureConfig,
    app_db: AppDatabase,
    object_store: ObjectStoreResource,
):
    engine, store, buckets = app_db.engine, object_store.store(), object_store.buckets
    if config.user_id:
        user_ids = [config.user_id]
    else:
        with engine.connect() as conn:
            user_ids = erasure.pending_erasures(conn, limit=config.max_users)
    erased: Counter[str] = Counter()
    rows_left: Counter[str] = Counter()
    objects_left: Counter[str] = Counter()
    dirty_users = 0
    for user_id in user_ids:
        try:
            result = erasure.erase_user(engine, store, buckets, user_id, actor=ACTOR)
        except erasure.ErasureRefused as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        remaining = erasure.find_remaining(
            engine, store, buckets, result.identifiers, scan_all_keys=config.scan_all_object_keys
        )
        erased.update(result.counts)
        rows_left.update(remaining.tables)
        objects_left.update(remaining.objects)
        dirty_users += not remaining.clean
        context.log.info(
            f"user {user_id}: {result.total} rows and objects erased; "
            + ("nothing remains" if remaining.clean else f"{remaining.total} remnants found")
        )
    rows = sum(v for k, v in erased.items() if k != "objects")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "users_erased": len(user_ids),
            "objects_deleted": erased["objects"],
            "rows_by_table": dg.MetadataValue.json({k: v for k, v in sorted(erased.items()) if k != "objects"}),
        }
    )
    yield dg.AssetCheckResult(
        check_name=CHECK,
        asset_key=ASSET,
        passed=dirty_users == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "users_scanned": len(user_ids),
            "users_with_remnants": dirty_users,
            "rows_remaining": dg.MetadataValue.json(dict(sorted(rows_left.items()))),
            "objects_remaining": dg.MetadataValue.json(dict(sorted(objects_left.items()))),
        },
        description=None if dirty_users == 0 else (
            f"{dirty_users} erased user(s) still have {sum(rows_left.values())} rows and "
            f"{sum(objects_left.values())} objects holding their identifiers"
        ),
    )


user_erasure_job = dg.define_asset_job(
    "user_erasure_job",
    selection=dg.AssetSelection.assets(user_erasure),
    description="Erase one user's personal data (run config: the user id) and verify nothing remains.",
)


LOOKBACK_IDS = 200


def erasure_run_config(user_id: str) -> dict:
    return {"ops": {ASSET: {"config": {"user_id": user_id}}}}


@dg.sensor(
    job=user_erasure_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Follows consent revocations in consent_audit_log: per user, requests a `user_erasure` run "
        "and deletes the user's `users` partition."
    ),
)
def user_erasure_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase) -> dg.SensorResult:
    after = int(context.cursor) if context.cursor else 0
    with app_db.engine.connect() as conn:
        # Ids are not commit-ordered: re-read a margin behind the cursor, so a revocation whose
        # transaction committed after a higher id was seen is still found. Run keys make the
        # re-read events request nothing twice.
        events = consent_log.revocations_after(conn, max(0, after - LOOKBACK_IDS), limit=PER_TICK)
        # One run per user, keyed by their latest revoke; skip users who consented again since.
        latest = {user_id: event_id for event_id, user_id in events}
        # Behind the cursor, only users whose row is still there (not yet erased) count.
        to_erase = {
            u: e for u, e in latest.items()
            if erasure.erasable(conn, u) and (e > after or consent_log.user_exists(conn, u))
        }
    if not to_erase and all(event_id <= after for event_id, _ in events):
        return dg.SensorResult(skip_reason="no consent revocations since the cursor")
    known = set(context.instance.get_dynamic_partitions(users_partitions.name))
    partitions = [u for u in to_erase if u in known]
    context.log.info(
        f"{len(events)} revocations, {len(to_erase)} erasures requested, {len(partitions)} partitions removed"
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"erasure:{user_id}:{event_id}", run_config=erasure_run_config(user_id))
            for user_id, event_id in to_erase.items()
        ],
        dynamic_partitions_requests=[users_partitions.build_delete_request(partitions)] if partitions else [],
        cursor=str(max([after, *(event_id for event_id, _ in events)])),
    )


user_erasure_daily_sweep = dg.ScheduleDefinition(
    name="user_erasure_daily_sweep",
    job=user_erasure_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Daily at 02:30 UTC, the safety net behind the sensor: erases every user whose consent is "
        "withdrawn but whose data is still there (an erasure run that failed, a token revoked by hand)."
    ),
)
