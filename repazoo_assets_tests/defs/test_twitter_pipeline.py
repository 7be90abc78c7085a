"""The tweet pipeline end to end on the real PostgreSQL and Redis, against local servers that
speak the documented Twitter API v2 and Anthropic Messages protocols."""

import math
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from repazoo_assets.defs.resources import (
    AnthropicResource,
    AppDatabase,
    RateLimitResource,
    TokenVaultResource,
    TwitterApiResource,
)
from repazoo_assets.defs.twitter.assets import (
    reputation_summary,
    sanitized_tweets,
    sanitized_tweets_pii_free,
    tweet_analyses,
    tweets,
    users_partitions,
)
from repazoo_assets.defs.twitter.sensors import users_sensor
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.security.vault import TokenVault
from repazoo_assets_tests.fakes.anthropic_server import DROP_ID, FakeAnthropicServer
from repazoo_assets_tests.fakes.twitter_server import FakeTwitterServer, fake_tweet

REDIS = "redis://127.0.0.1:6379/0"
PLANTED = ["jane.doe@gmail.com", "+44 20 7946 0958", "4111 1111 1111 1111", "123-45-6789", "AKIAIOSFODNN7EXAMPLE"]
PIPELINE = [tweets, sanitized_tweets, sanitized_tweets_pii_free, tweet_analyses, reputation_summary]


@pytest.fixture
def twitter_api():
    with FakeTwitterServer() as server:
        yield server


@pytest.fixture
def claude():
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def env(pg_url, twitter_api, claude):
    engine = create_engine(pg_url)
    upgrade(engine)
    key = Fernet.generate_key().decode()

    class Env:
        pass

    e = Env()
    e.engine, e.vault, e.twitter, e.claude = engine, TokenVault.from_keys(key), twitter_api, claude
    e.instance = dg.DagsterInstance.ephemeral()
    e.resources = {
        "app_db": AppDatabase(url=pg_url),
        "token_vault": TokenVaultResource(encryption_key=key),
        "rate_limits": RateLimitResource(storage_uri=REDIS, key_prefix=f"test-{uuid.uuid4().hex}"),
        "twitter": TwitterApiResource(
            api_base_url=twitter_api.base_url, client_id=twitter_api.client_id, client_secret=twitter_api.client_secret
        ),
        "anthropic": AnthropicResource(api_key="test-key", base_url=claude.base_url),
    }
    yield e
    engine.dispose()


def connect(env, *, tier="basic", n_tweets=230, expires_in=7200, pii_every=7):
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    twitter_user_id = str(10_000 + len(env.instance.get_dynamic_partitions("users")))
    base = datetime(2026, 11, 1, tzinfo=UTC)
    env.twitter.add_tweets(
        twitter_user_id,
        [
            fake_tweet(
                1_800_000_000_000_000_000 + i,
                f"tweet {i} about #launch, reach me at {PLANTED[i % len(PLANTED)]}" if i % pii_every == 0
                else f"tweet {i}: loving the new release #launch",
                created_at=base + timedelta(minutes=i),
            )
            for i in range(n_tweets)
        ],
    )
    access, refresh = env.twitter.issue_tokens()
    with env.engine.begin() as conn:
        store.connect_user(
            conn, env.vault, user_id=user_id, twitter_user_id=twitter_user_id, access_token=access,
            refresh_token=refresh, expires_in=expires_in, tier=tier,
        )
    env.instance.add_dynamic_partitions(users_partitions.name, [user_id])
    return user_id, twitter_user_id, access


def materialize(env, user_id, selection=PIPELINE, run_config=None):
    return dg.materialize(
        selection, partition_key=user_id, resources=env.resources, instance=env.instance,
        raise_on_error=False, run_config=run_config,
    )


def metadata(result, asset):
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(asset):
            return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
    return None


def failure_message(result):
    return " ".join(
        e.step_failure_data.user_failure_data.description or e.step_failure_data.error.message
        if e.step_failure_data.user_failure_data else e.step_failure_data.error.message
        for e in result.all_events if e.is_step_failure
    )


def count(env, table, **where):
    query = sa.select(sa.func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with env.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_tweets_to_summary_pages_batches_and_no_pii_reaches_the_model(env, record_property):
    user_id, twitter_user_id, _ = connect(env, n_tweets=230)
    result = materialize(env, user_id)
    assert result.success, failure_message(result)

    fetched = metadata(result, "tweets")
    assert (fetched["new_tweets"], fetched["pages"], fetched["api_requests"]) == (230, 3, 3)
    timeline_calls = [r for r in env.twitter.requests if r.path.endswith("/tweets")]
    assert [r.query.get("pagination_token") is None for r in timeline_calls] == [True, False, False]
    assert all(r.headers["authorization"].startswith("Bearer ") for r in timeline_calls)

    sanitized = metadata(result, "sanitized_tweets")
    assert sanitized["dagster/row_count"] == 230 and sanitized["tweets_with_pii"] == math.ceil(230 / 7)

    analysed = metadata(result, "tweet_analyses")
    assert analysed["analysed_now"] == 230 and analysed["failed_now"] == 0
    assert analysed["model"] == "claude-sonnet-5-5"
    assert analysed["requests"] == len(env.claude.requests) == math.ceil(230 / 25)
    assert analysed["requests_per_tweet"] == round(10 / 230, 4)
    assert analysed["input_tokens_per_tweet"] > 0
    for figure in ("requests_per_tweet", "input_tokens_per_tweet", "input_tokens", "cache_read_input_tokens"):
        record_property(figure, analysed[figure])  # in the JUnit report: the figures per tweet
    bodies = "\n".join(r.raw.decode() for r in env.claude.requests)
    for datum in PLANTED:
        assert datum not in bodies
    assert "[EMAIL]" in bodies and "[PHONE]" in bodies
    assert all(len(r.ids) <= 25 for r in env.claude.requests)
    assert str(1_800_000_000_000_000_000) not in bodies  # tweet ids never go to the model

    summary = metadata(result, "reputation_summary")
    assert summary["dagster/row_count"] == 230
    assert sum(summary["by_sentiment"].values()) == 230
    assert "| sentiment | tweets | share |" in summary["summary"]
    with env.engine.connect() as conn:
        usage = dict(
            conn.execute(
                sa.select(t.api_usage.c.operation, sa.func.count()).where(t.api_usage.c.user_id == user_id)
                .group_by(t.api_usage.c.operation)
            ).all()
        )
        actions = set(conn.execute(sa.select(t.audit_log.c.action).where(t.audit_log.c.subject_id == user_id)).scalars())
    assert usage["user_tweets"] == 3 and usage["messages"] >= 1
    assert {"fetch", "redact", "analyse"} <= actions


def test_rerun_is_idempotent_and_incremental(env):
    user_id, twitter_user_id, _ = connect(env, n_tweets=40)
    assert materialize(env, user_id).success
    calls_before = len(env.claude.requests)
    env.twitter.add_tweets(twitter_user_id, [fake_tweet(1_900_000_000_000_000_000, "one more, great day")])
    env.twitter.clear_requests()
    again = materialize(env, user_id)
    assert again.success, failure_message(again)
    assert metadata(again, "tweets")["new_tweets"] == 1
    timeline_call = [r for r in env.twitter.requests if r.path.endswith("/tweets")][0]
    assert timeline_call.query["since_id"] == str(1_800_000_000_000_000_000 + 39)
    assert count(env, t.tweets, user_id=user_id) == 41
    assert count(env, t.sanitized_tweets, user_id=user_id) == 41
    assert count(env, t.analyses, user_id=user_id) == 41
    assert len(env.claude.requests) == calls_before + 1  # only the new tweet went to the model


@pytest.mark.parametrize("change", ["revoke", "cancel"])
def test_no_consent_no_fetch(env, change):
    user_id, _, _ = connect(env, n_tweets=10)
    with env.engine.begin() as conn:
        if change == "revoke":
            store.revoke_token(conn, user_id)
        else:
            conn.execute(sa.update(t.subscriptions).where(t.subscriptions.c.user_id == user_id).values(status="cancelled"))
    env.twitter.clear_requests()
    result = materialize(env, user_id)
    assert not result.success
    assert "consent not granted for user" in failure_message(result)
    assert env.twitter.requests == [] and env.claude.requests == []
    assert count(env, t.tweets, user_id=user_id) == 0
    with env.engine.connect() as conn:
        details = conn.execute(
            sa.select(t.audit_log.c.details).where(t.audit_log.c.subject_id == user_id, t.audit_log.c.action == "fetch")
        ).scalar_one()
    assert details["outcome"] == "refused"


def test_expired_token_is_refreshed_and_stored_encrypted(env):
    user_id, _, old_access = connect(env, n_tweets=5, expires_in=1)
    with env.engine.begin() as conn:
        conn.execute(
            sa.update(t.oauth_tokens).where(t.oauth_tokens.c.user_id == user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    result = materialize(env, user_id, [tweets])
    assert result.success, failure_message(result)
    assert metadata(result, "tweets")["token_refreshes"] == 1
    refresh_calls = [r for r in env.twitter.requests if r.path == "/2/oauth2/token"]
    assert len(refresh_calls) == 1
    with env.engine.connect() as conn:
        token = store.load_token(conn, env.vault, user_id)
    assert token.access_token != old_access and env.twitter.is_valid_access_token(token.access_token)


def test_a_failed_refresh_fails_the_step_and_is_recorded_for_monitoring(env):
    user_id, _, _ = connect(env, n_tweets=5)
    with env.engine.begin() as conn:  # expired, and a refresh token the server does not know
        store.store_tokens(conn, env.vault, user_id, "stale-access", "unknown-refresh", 1)
        conn.execute(
            sa.update(t.oauth_tokens).where(t.oauth_tokens.c.user_id == user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    result = materialize(env, user_id, [tweets])
    assert not result.success
    assert f"token refresh failed for user {user_id}" in failure_message(result)
    assert "unknown-refresh" not in failure_message(result)
    assert count(env, t.api_usage, user_id=user_id, operation="token_refresh_failed") >= 1
    assert [r.path for r in env.twitter.requests if r.path.endswith("/tweets")] == []


def test_a_401_refreshes_once_then_fetches(env):
    user_id, _, access = connect(env, n_tweets=5)
    env.twitter.expire(access)  # the server now answers 401 to the stored token
    result = materialize(env, user_id, [tweets])
    assert result.success, failure_message(result)
    statuses = [r.path for r in env.twitter.requests]
    assert statuses.count("/2/oauth2/token") == 1
    assert metadata(result, "tweets")["new_tweets"] == 5


def test_a_429_waits_for_the_reset_then_succeeds(env):
    user_id, _, _ = connect(env, n_tweets=5)
    reset = int(datetime.now(UTC).timestamp()) + 1
    env.twitter.force_next(429, headers={"x-rate-limit-limit": "900", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})
    result = materialize(env, user_id, [tweets])
    assert result.success, failure_message(result)
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    assert count(env, t.api_usage, user_id=user_id, operation="rate_limited") == 1
    assert count(env, t.tweets, user_id=user_id) == 5


def test_the_blocking_check_stops_the_analyses(env):
    user_id, _, _ = connect(env, n_tweets=5)
    assert materialize(env, user_id, [tweets]).success
    from repazoo_assets.defs.twitter.assets import REDACTOR_VERSION

    first = 1_800_000_000_000_000_000 + 1
    with env.engine.begin() as conn:  # a sanitized copy that still holds an e-mail address
        store.upsert_sanitized(conn, user_id, [(first, "still has jane.doe@gmail.com", {})], REDACTOR_VERSION)
    result = materialize(env, user_id)
    assert not result.success
    checks = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(c.check_name, c.passed) for c in checks] == [("sanitized_tweets_pii_free", False)]
    assert env.claude.requests == []
    assert count(env, t.analyses, user_id=user_id) == 0


def test_pro_tier_routes_to_opus(env):
    user_id, _, _ = connect(env, tier="pro", n_tweets=3)
    result = materialize(env, user_id)
    assert result.success, failure_message(result)
    assert {r.body["model"] for r in env.claude.requests} == {"claude-opus-5-5"}
    assert metadata(result, "tweet_analyses")["model"] == "claude-opus-5-5"


def test_quota_exhaustion_analyses_up_to_the_quota_then_fails(env):
    user_id, _, _ = connect(env, n_tweets=50)
    config = {"ops": {"tweet_analyses": {"config": {"basic_monthly_quota": 30}}}}
    result = materialize(env, user_id, run_config=config)
    assert not result.success
    assert "monthly quota reached" in failure_message(result) and "20 tweets left unanalysed" in failure_message(result)
    assert count(env, t.analyses, user_id=user_id) == 30
    assert count(env, t.api_usage, user_id=user_id, operation="quota_exceeded") == 1
    again = materialize(env, user_id, [tweet_analyses], run_config=config)
    assert not again.success and count(env, t.analyses, user_id=user_id) == 30


def test_malformed_model_output_is_a_recorded_failure_never_a_fake_result(env):
    user_id, _, _ = connect(env, n_tweets=3)
    env.claude.misbehave(DROP_ID, times=2)  # the first answer and its retry both miss a tweet
    result = materialize(env, user_id)
    assert result.success, failure_message(result)
    assert metadata(result, "tweet_analyses")["failed_now"] == 1
    assert count(env, t.analyses, user_id=user_id) == 2
    with env.engine.connect() as conn:
        reason = conn.execute(sa.select(t.analysis_failures.c.reason)).scalar_one()
    assert "missing" in reason


def test_users_sensor_registers_new_users_once(env):
    user_a = f"web-{uuid.uuid4().hex[:6]}"
    with env.engine.begin() as conn:
        conn.execute(sa.insert(t.users).values(id=user_a, twitter_user_id="777001"))
    resources = {"app_db": env.resources["app_db"]}
    with dg.build_sensor_context(instance=env.instance, resources=resources) as context:
        first = users_sensor(context)
    assert [r.partition_key for r in first.run_requests] == [user_a]
    assert first.dynamic_partitions_requests[0].partition_keys == [user_a]
    env.instance.add_dynamic_partitions("users", [user_a])
    with dg.build_sensor_context(instance=env.instance, cursor=first.cursor, resources=resources) as context:
        second = users_sensor(context)
    assert not second.run_requests  # already a partition: no second run
