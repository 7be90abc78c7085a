"""Runs for the work the web app requests through the trigger client (`repazoo_assets.client`).

`user_requests_sensor` launches a run for each pending request (the client could not reach the
webserver, or none is configured), and closes launched requests once their runs end, so the
`user_requests` table always tells the web app where its request stands.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from repazoo_assets.defs.resources import AppDatabase
from repazoo_assets.defs.twitter.assets import tweet_pipeline_job, users_partitions
from repazoo_assets.lib.db import requests_store as user_requests
from repazoo_assets.lib.db.twitter_store import now_utc

PER_TICK = 200
# A client records `launching`, then submits; if it dies in between, the sensor takes over.
LAUNCHING_GRACE = timedelta(minutes=2)
# Marked launched but no run with its tag appeared (the tick failed after marking): launch again.
LOST_AFTER = timedelta(minutes=10)
FINISHED = {
    dg.DagsterRunStatus.SUCCESS: "done",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "failed",
}

analyse_user_job = dg.define_asset_job(
    "analyse_user",
    selection=dg.AssetSelection.assets("tweet_analyses", "reputation_summary"),
    description="Analyse one user's stored, sanitized tweets again and refresh the summary (no fetch).",
)


@dg.sensor(
    jobs=[tweet_pipeline_job, analyse_user_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Launches the tweet pipeline (sync) or the analyses (analyse) for requests the web app "
        "recorded through the trigger client, and marks requests done or failed when their runs end."
    ),
)
def user_requests_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase) -> dg.SensorResult:
    with app_db.engine.begin() as conn:
        closed = _close_finished(context, conn)
        candidates = user_requests.pending(conn, PER_TICK, stale_before=now_utc() - LAUNCHING_GRACE)
        # Claimed one by one: a client may be launching the same request at this moment.
        waiting = [
            request for request in candidates
            if user_requests.transition(conn, request.id, (request.status,), "launched")
        ]
    if not waiting:
        return dg.SensorResult(skip_reason=f"no pending requests ({closed} closed)")
    context.log.info(f"{len(waiting)} requests launched, {closed} closed")
    # A user the web app created a moment ago may not be a partition yet: register it with the run.
    users = sorted({request.user_id for request in waiting})
    known = set(context.instance.get_dynamic_partitions(users_partitions.name))
    missing = [user_id for user_id in users if user_id not in known]
    return dg.SensorResult(
        dynamic_partitions_requests=[users_partitions.build_add_request(missing)] if missing else [],
        run_requests=[
            dg.RunRequest(
                job_name=request.job_name,
                partition_key=request.user_id,
                # Dagster never launches the same run key twice, even if this tick is retried.
                run_key=f"user-request:{request.id}",
                tags={user_requests.REQUEST_TAG: str(request.id)},
            )
            for request in waiting
        ]
    )


def _close_finished(context: dg.SensorEvaluationContext, conn) -> int:
    closed = 0
    for request in user_requests.launched(conn, PER_TICK):
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={user_requests.REQUEST_TAG: str(request.id)}), limit=1
        )
        if not runs:
            if request.launched_at is not None and request.launched_at < now_utc() - LOST_AFTER:
                user_requests.set_status(conn, request.id, "pending")
            continue
        run = runs[0]
        status = FINISHED.get(run.status)
        if status is not None:
            user_requests.set_status(conn, request.id, status, run_id=run.run_id)
            closed += 1
        elif request.run_id is None:
            user_requests.set_status(conn, request.id, "launched", run_id=run.run_id)
    return closed
