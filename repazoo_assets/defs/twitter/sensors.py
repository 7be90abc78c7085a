"""`users_sensor`: users the web app inserts straight into the database become partitions, each
with a run of the tweet pipeline.

Cheap per tick: one indexed query for users created since the cursor (with a small overlap, since
rows are not committed in `created_at` order), set against the partitions that already exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from repazoo_assets.defs.resources import AppDatabase
from repazoo_assets.defs.twitter import assets as twitter_assets
from repazoo_assets.lib.db import twitter_store as store

# Rows may commit a little after their created_at: look back this far behind the cursor.
OVERLAP = timedelta(minutes=5)
PER_TICK = 500


@dg.sensor(
    job=twitter_assets.tweet_pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every 30 s: registers users the web app added as `users` partitions and requests one "
        "tweet_pipeline run for each (run key user-connected:<id>, so never twice)."
    ),
    owners=twitter_assets.OWNERS,
    tags=twitter_assets.DOMAIN_TAGS,
)
def users_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase) -> dg.SensorResult:
    since = datetime.fromisoformat(context.cursor) - OVERLAP if context.cursor else None
    with app_db.engine.connect() as conn:
        rows = store.user_ids_created_since(conn, since, limit=PER_TICK)
    if not rows:
        return dg.SensorResult(skip_reason="no new users")
    known = set(context.instance.get_dynamic_partitions(twitter_assets.users_partitions.name))
    new = [user_id for user_id, _ in rows if user_id not in known]
    cursor = max(created for _, created in rows).isoformat()
    if len(rows) == PER_TICK and since is not None and cursor == context.cursor:
        cursor = (datetime.fromisoformat(cursor) + timedelta(microseconds=1)).isoformat()
    context.log.info(f"{len(rows)} users since the cursor, {len(new)} new partitions")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=user_id, run_key=f"user-connected:{user_id}") for user_id in new],
        dynamic_partitions_requests=[twitter_assets.users_partitions.build_add_request(new)] if new else [],
        cursor=cursor,
    )
