"""`users_sensor`: users the web app inserts straight into the database become partitions, and
the tweet pipeline runs for them: one run for a user who arrives alone, one run per batch of up to
USER_BATCH users for a bulk import (as a backfill does; see docs/tweet-pipeline.md), because a run
costs a process start and a code location load whatever it does.

Bounded work per tick: one keyset page of at most PER_TICK users past the cursor (created_at, id),
and an id-only look-back over the last OVERLAP before it for rows that committed late (rows are not
committed in `created_at` order), both set against the partitions that already exist. The cursor
always moves forward, so a bulk import of thousands of users in one second is registered 500 per
tick instead of stalling on the first page.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from repazoo_assets.defs.resources import AppDatabase
from repazoo_assets.defs.twitter import assets as twitter_assets
from repazoo_assets.lib.db import twitter_store as store

# The run tags of a run over a range of partitions (what an asset backfill's batch run carries).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
# Rows may commit a little after their created_at: look back this far behind the cursor.
OVERLAP = timedelta(minutes=5)
PER_TICK = 500


@dg.sensor(
    job=twitter_assets.tweet_pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every 30 s: registers users the web app added as `users` partitions and requests "
        "tweet_pipeline runs for them: one per user who arrives alone (run key user-connected:<id>), "
        "one per batch of up to 10 users of a bulk import (a range of the new partitions, run key "
        "users-connected:<first>..<last>), so never twice."
    ),
    owners=twitter_assets.OWNERS,
    tags=twitter_assets.DOMAIN_TAGS,
)
def users_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase) -> dg.SensorResult:
    after = _parse_cursor(context.cursor)
    known = set(context.instance.get_dynamic_partitions(twitter_assets.users_partitions.name))
    with app_db.engine.connect() as conn:
        # Users whose rows committed after the cursor passed their created_at: ids only, bounded
        # by the look-back window, set against the partitions that exist.
        late = [] if after is None else [
            u for u in store.user_ids_created_between(conn, after[0] - OVERLAP, after[0]) if u not in known
        ][:PER_TICK]
        page = store.users_after(conn, after, limit=PER_TICK - len(late)) if len(late) < PER_TICK else []
    new = list(dict.fromkeys(late + [user_id for user_id, _ in page if user_id not in known]))
    cursor = f"{page[-1][1].isoformat()}|{page[-1][0]}" if page else context.cursor
    if not new:
        return dg.SensorResult(skip_reason="no new users", cursor=cursor)
    context.log.info(f"{len(page)} users past the cursor, {len(late)} late commits, {len(new)} new partitions")
    batch = twitter_assets.USER_BATCH
    return dg.SensorResult(
        # The new partitions are added in this order, after every existing one, in one request:
        # each batch is a contiguous range of them.
        run_requests=[_run_request(new[i : i + batch]) for i in range(0, len(new), batch)],
        dynamic_partitions_requests=[twitter_assets.users_partitions.build_add_request(new)],
        cursor=cursor,
    )


def _run_request(users: list[str]) -> dg.RunRequest:
    if len(users) == 1:
        return dg.RunRequest(partition_key=users[0], run_key=f"user-connected:{users[0]}")
    return dg.RunRequest(
        run_key=f"users-connected:{users[0]}..{users[-1]}",
        tags={RANGE_START: users[0], RANGE_END: users[-1]},
    )


def _parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """`<created_at ISO>|<user id>`; a cursor of the earlier form (ISO time only) reads as that
    time with the smallest id, so an upgrade neither skips nor repeats users."""
    if not cursor:
        return None
    at, _, user_id = cursor.partition("|")
    return datetime.fromisoformat(at), user_id
