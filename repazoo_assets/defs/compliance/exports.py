"""Personal-data exports on request (GDPR Art. 15/20, CCPA right to know).

`data_export_requests_sensor` turns pending `data_exports` rows into runs of `export_user_data`,
a batch of requests per run; `user_data_exports` handles each request of its batch on its own
(see `lib/compliance/export.py`) and reports counts, bytes and durations, never personal data.
"""

import hashlib
import json
from datetime import timedelta

import dagster as dg

from repazoo_assets.defs.resources import AppDatabase, ObjectStoreResource
from repazoo_assets.lib.compliance import export as exports

ASSET_NAME = "user_data_exports"


class UserDataExportsConfig(dg.Config):
    request_ids: list[int] = []  # the requests to handle; empty: the oldest pending ones
    link_expiry_seconds: int = int(exports.DEFAULT_LINK_EXPIRY.total_seconds())  # 1 s to 7 days
    pending_limit: int = exports.DEFAULT_PENDING_LIMIT  # requests taken when request_ids is empty


@dg.asset(
    name=ASSET_NAME,
    group_name="compliance",
    kinds={"s3", "postgres", "json"},
    owners=["team:data-platform"],
    description=(
        "Personal-data exports requested by users (`data_exports` rows): one JSON document per "
        "request in the exports bucket at `user-exports/<user_id>/<request_id>.json`, with a "
        "presigned download link (24 h by default) stored on the request. Each request succeeds "
        "or fails on its own; a failed request records its reason."
    ),
)
def user_data_exports(
    context: dg.AssetExecutionContext,
    config: UserDataExportsConfig,
    app_db: AppDatabase,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    expiry = timedelta(seconds=config.link_expiry_seconds)
    if not timedelta(seconds=1) <= expiry <= exports.MAX_LINK_EXPIRY:
        raise dg.Failure(
            description=f"link_expiry_seconds must be between 1 and {int(exports.MAX_LINK_EXPIRY.total_seconds())}, "
            f"got {config.link_expiry_seconds}",
            allow_retries=False,
        )
    report = exports.handle_requests(
        app_db.engine,
        object_store.store(),
        object_store.buckets.exports,
        config.request_ids or None,
        link_expiry=expiry,
        pending_limit=config.pending_limit,
    )
    for outcome in report.outcomes:
        # Reasons name the kind of problem, never personal data (see lib/compliance/export.py).
        detail = f" ({outcome.error})" if outcome.error else ""
        context.log.info(f"export request {outcome.request_id}: {outcome.status}{detail}")
    durations = [o.seconds for o in report.outcomes if o.status != "skipped"]
    metadata = {
        "dagster/row_count": len(report.ids("ready")),
        "ready": len(report.ids("ready")),
        "failed": len(report.ids("failed")),
        "skipped": len(report.ids("skipped")),
        "bytes_written": report.bytes_written,
        "seconds_total": round(sum(durations), 3),
        "seconds_max": round(max(durations, default=0.0), 3),
        "request_ids_ready": dg.MetadataValue.json(report.ids("ready")),
        "request_ids_failed": dg.MetadataValue.json(report.ids("failed")),
        "link_expiry_seconds": config.link_expiry_seconds,
    }
    unexpected = report.unexpected_failures
    if unexpected:
        # The rows already say `failed` with the reason; failing the run makes it visible to the
        # run-failure alerts. Not retried: a failed request is final, the user requests again.
        raise dg.Failure(
            description=f"{len(unexpected)} of {len(report.outcomes)} export requests failed: "
            + "; ".join(f"request {o.request_id}: {o.error}" for o in unexpected[:5]),
            metadata=metadata,
            allow_retries=False,
        )
    return dg.MaterializeResult(metadata=metadata)


export_user_data_job = dg.define_asset_job(
    "export_user_data",
    selection=[user_data_exports],
    description="Produce the personal-data exports named in the run config (or the oldest pending ones).",
)


# --- sensor ---------------------------------------------------------------------------------------
# Pending requests read per tick, and requests per run.
PER_TICK = 500
BATCH_SIZE = 25
# A request whose run finished without picking it up is launched again, at most this many times.
MAX_ATTEMPTS = 3


def batch_run_key(request_ids: list[int], attempt: int) -> str:
    """Derived from the ids (and the attempt), so the same batch is never launched twice."""
    digest = hashlib.sha256(",".join(map(str, request_ids)).encode()).hexdigest()[:16]
    return f"data-export:{request_ids[0]}-{request_ids[-1]}:{digest}:a{attempt}"


def _load_cursor(cursor: str | None) -> dict[int, tuple[str, int]]:
    """request id -> (run key, attempt) of the requests launched and not yet picked up."""
    if not cursor:
        return {}
    return {int(k): (v[0], int(v[1])) for k, v in json.loads(cursor).get("launched", {}).items()}


def _dump_cursor(launched: dict[int, tuple[str, int]]) -> str:
    return json.dumps({"launched": {str(k): list(v) for k, v in sorted(launched.items())}}, separators=(",", ":"))


def _run_finished(instance: dg.DagsterInstance, run_key: str) -> bool:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1)
    return bool(runs) and runs[0].is_finished


def _run_request(request_ids: list[int], attempt: int) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=batch_run_key(request_ids, attempt),
        run_config={"ops": {ASSET_NAME: {"config": {"request_ids": request_ids}}}},
        tags={"repazoo/export_requests": ",".join(map(str, request_ids))},
    )


@dg.sensor(
    job=export_user_data_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches a `user_data_exports` run for each batch of new pending export requests.",
)
def data_export_requests_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase) -> dg.SensorResult:
    launched = _load_cursor(context.cursor)
    with app_db.engine.connect() as conn:
        pending = exports.pending_request_ids(conn, limit=PER_TICK)
    # A launched request leaves `pending` when its run claims it: forget it then. When the window
    # is full, a launched request may just lie beyond it: keep it.
    if len(pending) < PER_TICK:
        launched = {rid: v for rid, v in launched.items() if rid in set(pending)}
    fresh = [rid for rid in pending if rid not in launched]
    # Launched, still pending, and its run is over (failed before reaching it, or cancelled).
    again: dict[int, list[int]] = {}
    for rid, (run_key, attempt) in sorted(launched.items()):
        if attempt > MAX_ATTEMPTS or not _run_finished(context.instance, run_key):
            continue
        if attempt < MAX_ATTEMPTS:
            again.setdefault(attempt + 1, []).append(rid)
        else:  # given up: said once, then left to the operator (docs/data-export.md)
            launched[rid] = (run_key, attempt + 1)
            context.log.warning(f"export request {rid}: still pending after {attempt} runs; launch it by hand")
    requests = []
    for attempt, ids in [(1, fresh), *sorted(again.items())]:
        for start in range(0, len(ids), BATCH_SIZE):
            batch = ids[start : start + BATCH_SIZE]
            request = _run_request(batch, attempt)
            requests.append(request)
            launched.update({rid: (request.run_key, attempt) for rid in batch})
    cursor = _dump_cursor(launched)
    if not requests:
        return dg.SensorResult(skip_reason=f"no new export requests ({len(pending)} pending, all launched)", cursor=cursor)
    context.log.info(f"{len(fresh)} new export requests, {sum(map(len, again.values()))} launched again")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
