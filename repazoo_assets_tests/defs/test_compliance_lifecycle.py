"""The compliance wiring on the real PostgreSQL and moto's S3 server: a consent revocation turns
into an erasure run and a partition delete, the erasure leaves no trace and its check says so
(and fails when something is left), and the retention schedule runs the rules as of its tick."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import dagster as dg
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from dagster_aws.s3 import S3Resource

from repazoo_assets.defs.compliance.erasure import CHECK, user_erasure, user_erasure_sensor
from repazoo_assets.defs.compliance.retention import data_retention, data_retention_schedule
from repazoo_assets.defs.resources import AppDatabase, S3ObjectStoreResource
from repazoo_assets.defs.twitter.assets import users_partitions
from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.compliance import erasure
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.security.vault import TokenVault
from repazoo_assets.lib.settings import Buckets
from repazoo_assets.lib.storage import S3ObjectStore
from repazoo_assets.lib.storage.s3 import s3_client

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
USER = SimpleNamespace(user_id="usr-jane", twitter_user_id="55501234", handle="jane_doe_x", email="jane.doe@example.org")


@pytest.fixture
def env(pg_url, s3_endpoint):
    engine = create_engine(pg_url)
    upgrade(engine)
    suffix = uuid.uuid4().hex[:8]
    buckets = Buckets(raw=f"raw-{suffix}", processed=f"processed-{suffix}", exports=f"exports-{suffix}")
    s3 = S3ObjectStore(s3_client(endpoint_url=s3_endpoint))
    for bucket in (buckets.raw, buckets.processed, buckets.exports):
        s3.ensure_bucket(bucket)
    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint), raw_bucket=buckets.raw, processed_bucket=buckets.processed,
            exports_bucket=buckets.exports,
        ),
    }
    yield SimpleNamespace(
        engine=engine, store=s3, buckets=buckets, resources=resources, instance=dg.DagsterInstance.ephemeral(),
        vault=TokenVault.from_keys(Fernet.generate_key().decode()),
    )
    engine.dispose()


def connect(env, who=USER, tweets=3):
    with env.engine.begin() as conn:
        store.connect_user(
            conn, env.vault, user_id=who.user_id, twitter_user_id=who.twitter_user_id, access_token="AT-secret",
            refresh_token="RT-secret", expires_in=3600, tier="basic", handle=who.handle, now=NOW,
        )
        conn.execute(sa.update(t.users).where(t.users.c.id == who.user_id).values(email=who.email))
        rows = [
            SimpleNamespace(
                id=int(who.twitter_user_id) * 10 + i, text=f"hi {i}", created_at=NOW, lang="en", public_metrics={},
                entities=None,
            )
            for i in range(tweets)
        ]
        store.upsert_tweets(conn, who.user_id, rows, source="api")
        store.upsert_sanitized(conn, who.user_id, [(r.id, f"hi {i}", {}) for i, r in enumerate(rows)], "v1")
        store.record_api_usage(conn, user_id=who.user_id, provider="twitter", operation="user_tweets")
        conn.execute(
            sa.insert(t.data_exports).values(
                user_id=who.user_id, status="ready", object_key=f"user-exports/{who.user_id}/1.json", expires_at=NOW
            )
        )
    env.store.put(env.buckets.exports, f"user-exports/{who.user_id}/1.json", json.dumps({"email": who.email}).encode())
    env.store.put(env.buckets.processed, f"users/{who.user_id}/summary.json", b"{}")
    env.instance.add_dynamic_partitions(users_partitions.name, [who.user_id])


def revoke(env, who=USER):
    with env.engine.begin() as conn:
        consent_log.revoke_consent(conn, user_id=who.user_id, reason="user asked for deletion", source="web", now=NOW)


def tick(env, cursor=None) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=env.instance, cursor=cursor, resources={"app_db": env.resources["app_db"]}
    ) as context:
        return user_erasure_sensor(context)


def check_of(result) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_revocation_erases_the_user_removes_the_partition_and_leaves_no_trace(env):
    connect(env)
    bystander = SimpleNamespace(user_id="usr-bob", twitter_user_id="66601234", handle="bob", email="bob@example.net")
    connect(env, bystander)
    first = tick(env)
    assert not first.run_requests and first.skip_reason  # nobody revoked yet
    revoke(env)

    result = tick(env)
    [request] = result.run_requests
    assert request.run_config == {"ops": {"user_erasure": {"config": {"user_id": USER.user_id}}}}
    assert request.run_key.startswith(f"erasure:{USER.user_id}:")
    [partitions] = result.dynamic_partitions_requests
    assert isinstance(partitions, dg.DeleteDynamicPartitionsRequest)
    assert (partitions.partitions_def_name, list(partitions.partition_keys)) == ("users", [USER.user_id])
    env.instance.delete_dynamic_partition(users_partitions.name, USER.user_id)  # as the daemon does

    run = dg.materialize([user_erasure], resources=env.resources, run_config=request.run_config, instance=env.instance)
    assert run.success
    meta = run.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    assert meta["dagster/row_count"].value == 3 + 3 + 1 + 1 + 1 + 1 + 1  # tweets, sanitized, usage, token, sub, export, user
    assert meta["objects_deleted"].value == 2 and meta["users_erased"].value == 1
    evaluation = check_of(run)
    assert evaluation.check_name == CHECK and evaluation.passed
    text = json.dumps({k: str(v.value) for k, v in {**meta, **evaluation.metadata}.items()})
    for value in (USER.twitter_user_id, USER.handle, USER.email):
        assert value not in text

    ids = erasure.UserIdentifiers(USER.user_id, USER.twitter_user_id, USER.handle, USER.email)
    assert erasure.find_remaining(env.engine, env.store, env.buckets, ids).clean
    assert env.instance.get_dynamic_partitions(users_partitions.name) == [bystander.user_id]
    with env.engine.connect() as conn:
        assert store.count_tweets(conn, bystander.user_id) == 3

    assert result.cursor
    again = tick(env, cursor=result.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests
    # Re-running the erasure (a retried run) finds nothing and passes.
    rerun = dg.materialize([user_erasure], resources=env.resources, run_config=request.run_config, instance=env.instance)
    assert check_of(rerun).passed
    assert rerun.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata[
        "dagster/row_count"
    ].value == 0


def test_the_check_fails_when_an_object_is_left_behind(env):
    connect(env)
    # An object outside the user's prefixes, whose key names them: the erasure does not know it.
    env.store.put(env.buckets.raw, f"legacy/{USER.twitter_user_id}.json", b"{}")
    revoke(env)
    run = dg.materialize(
        [user_erasure], resources=env.resources, instance=env.instance, raise_on_error=False,
        run_config={"ops": {"user_erasure": {"config": {"user_id": USER.user_id}}}},
    )
    # The check blocks: remnants fail the run, so the run-failure sensor alerts on it.
    assert not run.success
    evaluation = check_of(run)
    assert not evaluation.passed
    assert evaluation.metadata["objects_remaining"].value == {env.buckets.raw: 1}
    assert evaluation.metadata["users_with_remnants"].value == 1
    assert USER.twitter_user_id not in (evaluation.description or "")


def test_erasure_refuses_a_user_whose_consent_stands(env):
    connect(env)
    run = dg.materialize(
        [user_erasure], resources=env.resources, instance=env.instance, raise_on_error=False,
        run_config={"ops": {"user_erasure": {"config": {"user_id": USER.user_id}}}},
    )
    assert not run.success
    with env.engine.connect() as conn:
        assert store.count_tweets(conn, USER.user_id) == 3


def test_without_a_user_id_every_pending_erasure_runs(env):
    connect(env)
    other = SimpleNamespace(user_id="usr-kim", twitter_user_id="77701234", handle="kim", email=None)
    connect(env, other)
    revoke(env)
    run = dg.materialize([user_erasure], resources=env.resources, instance=env.instance)
    assert run.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata[
        "users_erased"
    ].value == 1
    with env.engine.connect() as conn:
        assert [r for r in conn.execute(sa.select(t.users.c.id)).scalars()] == [other.user_id]


def test_the_retention_schedule_runs_daily_at_3_utc_as_of_its_tick(env):
    assert data_retention_schedule.cron_schedule == "0 3 * * *"
    assert data_retention_schedule.execution_timezone == "UTC"
    tick_time = datetime(2027, 1, 15, 3, 0, tzinfo=UTC)
    request = data_retention_schedule(dg.build_schedule_context(scheduled_execution_time=tick_time))
    assert request.run_key == "retention:2027-01-15"
    assert request.run_config == {"ops": {"data_retention": {"config": {"now": "2027-01-15T03:00:00+00:00"}}}}

    connect(env)  # its export expired at NOW, long before the tick
    with env.engine.begin() as conn:
        conn.execute(
            sa.update(t.subscriptions).values(status="cancelled", cancelled_at=tick_time - timedelta(days=31))
        )
    dry_config = {"ops": {"data_retention": {"config": {"now": tick_time.isoformat(), "dry_run": True}}}}
    dry = dg.materialize([data_retention], resources=env.resources, instance=env.instance, run_config=dry_config)
    real = dg.materialize([data_retention], resources=env.resources, instance=env.instance, run_config=request.run_config)
    metas = [r.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata for r in (dry, real)]
    for meta in metas:
        assert meta["soft_deleted_users"].value == 1 and meta["soft_deleted_tweets"].value == 3
        assert meta["expired_exports"].value == 1 and meta["dagster/row_count"].value == 5
    assert (metas[0]["dry_run"].value, metas[1]["dry_run"].value) == (True, False)
    assert metas[1]["as_of"].value == "2027-01-15T03:00:00+00:00"
    assert not env.store.exists(env.buckets.exports, f"user-exports/{USER.user_id}/1.json")

    # 61 days after the cancellation the user is hard-deleted and their partition removed.
    later = {"ops": {"data_retention": {"config": {"now": (tick_time + timedelta(days=31)).isoformat()}}}}
    last = dg.materialize([data_retention], resources=env.resources, instance=env.instance, run_config=later)
    assert last.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata[
        "hard_deleted_users"
    ].value == 1
    assert env.instance.get_dynamic_partitions(users_partitions.name) == []
