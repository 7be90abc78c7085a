"""The tweet pipeline end to end on the real PostgreSQL and Redis, against local servers that
speak the documented Twitter API v2 and Anthropic Messages protocols."""

import base64
import math
import re
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

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
from repazoo_assets.defs.twitter import assets as twitter_assets
from repazoo_assets.defs.twitter import sensors as twitter_sensors
from repazoo_assets.defs.twitter.assets import (
    reputation_summary,
    sanitized_tweets,
    sanitized_tweets_pii_free,
    sentiment_by_period,
    sentiment_chart_markdown,
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


def first_tweet_id(nth: int) -> int:
    """The first tweet id of the nth user connected in a test: tweet ids are unique across users."""
    return 1_800_000_000_000_000_000 + nth * 1_000_000


def connect(env, *, tier="basic", n_tweets=230, expires_in=7200, pii_every=7, spacing=timedelta(minutes=1)):
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    nth = len(env.instance.get_dynamic_partitions("users"))
    twitter_user_id = str(10_000 + nth)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    env.twitter.add_tweets(
        twitter_user_id,
        [
            fake_tweet(
                first_tweet_id(nth) + i,
                f"tweet {i} about #launch, reach me at {PLANTED[i % len(PLANTED)]}" if i % pii_every == 0
                else f"tweet {i}: loving the new release #launch",
                created_at=base + spacing * i,
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
    assert metadata(again, "tweets")["skipped"] == {"already_stored": 0, "older_than_last_fetch": 0}
    assert metadata(again, "sanitized_tweets")["skipped_current_version"] == 40
    assert metadata(again, "tweet_analyses")["not_analysed"] == {}
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
    (reason, dropped), = metadata(result, "tweet_analyses")["not_analysed"].items()
    assert "missing" in reason and dropped == 1
    assert metadata(result, "reputation_summary")["tweets_not_analysed"] == 1
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


def test_users_sensor_pages_through_a_bulk_import_and_catches_late_commits(env, monkeypatch):
    from repazoo_assets.defs.twitter import sensors

    monkeypatch.setattr(sensors, "PER_TICK", 50)
    same_second = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    bulk = [f"bulk-{i:04d}" for i in range(120)]  # 120 users created in the same second
    with env.engine.begin() as conn:
        conn.execute(sa.insert(t.users), [
            {"id": u, "twitter_user_id": f"8{i:05d}", "created_at": same_second} for i, u in enumerate(bulk)
        ])
    resources = {"app_db": env.resources["app_db"]}
    registered, cursor = [], None
    for _ in range(4):
        with dg.build_sensor_context(instance=env.instance, cursor=cursor, resources=resources) as context:
            result = users_sensor(context)
        keys = list(result.dynamic_partitions_requests[0].partition_keys) if result.dynamic_partitions_requests else []
        assert len(keys) <= 50
        if keys:
            env.instance.add_dynamic_partitions("users", keys)
            # one run per batch of at most 10 new users: contiguous ranges covering each new user once
            ranges = [(r.tags[sensors.RANGE_START], r.tags[sensors.RANGE_END]) for r in result.run_requests]
            assert [k for start, end in ranges for k in keys[keys.index(start) : keys.index(end) + 1]] == keys
            assert all(keys.index(end) - keys.index(start) < 10 for start, end in ranges)
            assert len({r.run_key for r in result.run_requests}) == len(result.run_requests)
        registered += keys
        cursor = result.cursor
    assert sorted(registered) == bulk  # every user once, in three ticks of at most 50

    # A row whose transaction committed late, with a created_at behind the cursor, is still found.
    with env.engine.begin() as conn:
        conn.execute(sa.insert(t.users).values(
            id="late-commit", twitter_user_id="899999", created_at=same_second - timedelta(minutes=2)
        ))
    with dg.build_sensor_context(instance=env.instance, cursor=cursor, resources=resources) as context:
        late = users_sensor(context)
    assert [r.partition_key for r in late.run_requests] == ["late-commit"]


# --- operator metadata: chart, column schemas, descriptions -----------------------------------------
def _svg_of(markdown: str) -> ET.Element:
    encoded = re.search(r"\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown).group(1)
    return ET.fromstring(base64.b64decode(encoded))


def _classes(svg: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in svg.iter() if e.get("class") == cls]


def test_summary_charts_sentiment_per_day_from_the_stored_analyses_without_personal_data(env):
    user_id, twitter_user_id, _ = connect(env, n_tweets=60, spacing=timedelta(hours=6))  # 15 days
    result = materialize(env, user_id)
    assert result.success, failure_message(result)
    summary = metadata(result, "reputation_summary")
    assert summary["period"] == "day"

    # The per-day table agrees with the analyses as the database groups them.
    with env.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.tweets.c.tweeted_at, t.analyses.c.sentiment_label, t.analyses.c.sentiment_score)
            .select_from(t.analyses.join(t.tweets, t.tweets.c.id == t.analyses.c.tweet_id))
            .where(t.analyses.c.user_id == user_id)
        ).all()
    expected = defaultdict(list)
    for tweeted_at, label, score in rows:
        expected[tweeted_at.astimezone(UTC).date().isoformat()].append((label, score))
    table = [r.data for r in summary["sentiment_by_period"].records]
    assert [r["period"] for r in table] == sorted(expected) and len(table) == 15
    for record in table:
        day = expected[record["period"]]
        assert record["tweets"] == len(day)
        assert record["negative"] == sum(1 for label, _ in day if label == "negative")
        assert record["mean_score"] == pytest.approx(sum(score for _, score in day) / len(day), abs=1e-4)

    # The chart: one point per day, one bar segment per non-empty sentiment of each day.
    chart = summary["sentiment_over_time"]
    svg = _svg_of(chart)
    assert svg.tag.endswith("svg")
    assert len(_classes(svg, "mean")) == 15
    segments = sum(len(_classes(svg, label)) for label in ("positive", "neutral", "negative"))
    assert segments == sum(1 for r in table for label in ("positive", "neutral", "negative") if r[label])
    assert "2026-11-01" in chart and "2026-11-15" in chart
    lowest = min(table, key=lambda r: r["mean_score"])
    assert f"60 analysed tweets, 2026-11-01 → 2026-11-15, per day. Lowest mean {lowest['mean_score']:+.2f}" in chart

    # Aggregates only: no text, no handle, no tweet id, no planted personal data.
    decoded = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", chart).group(1)).decode()
    for shown in (chart, decoded, summary["summary"]):
        for datum in [*PLANTED, "loving the new release", "#launch", str(1_800_000_000_000_000_000), twitter_user_id]:
            assert datum not in shown


def test_periods_widen_with_the_span_and_keep_empty_periods():
    day = datetime(2026, 1, 7, 12, tzinfo=UTC)  # a Wednesday
    unit, periods = sentiment_by_period([(day, "positive", 0.5), (day + timedelta(days=3), "negative", -0.5)])
    assert unit == "day" and [p.tweets for p in periods] == [1, 0, 0, 1]
    assert [p.mean_score for p in periods] == [0.5, None, None, -0.5]

    unit, periods = sentiment_by_period(
        [(day, "positive", 1.0), (day + timedelta(days=1), "neutral", 0.0), (day + timedelta(days=100), "negative", -1.0)]
    )
    assert unit == "week" and periods[0].start == date(2026, 1, 5) and periods[0].mean_score == 0.5
    assert periods[-1].start == date(2026, 4, 13) and len(periods) == 15

    naive = datetime(2024, 3, 31, 23, 0)  # stored without a zone on SQLite: taken as UTC
    unit, periods = sentiment_by_period([(naive, "positive", 0.2), (naive + timedelta(days=800), "neutral", 0.0)])
    assert unit == "month" and (periods[0].start, periods[-1].start) == (date(2024, 3, 1), date(2026, 6, 1))
    assert len(periods) == 28 and sum(p.tweets for p in periods) == 2

    unit, periods = sentiment_by_period([(day, "positive", 0.2), (day + timedelta(days=3650), "neutral", 0.0)])
    assert unit == "month" and len(periods) == twitter_assets.CHART_MAX_PERIODS  # the newest ones
    assert periods[-1].tweets == 1 and sum(p.tweets for p in periods) == 1

    assert sentiment_chart_markdown("day", []) == "No analysed tweets yet."


@pytest.mark.parametrize(
    ("asset", "table"),
    [(tweets, t.tweets), (sanitized_tweets, t.sanitized_tweets), (tweet_analyses, t.analyses)],
)
def test_column_schemas_name_every_column_of_the_table_behind_the_asset(asset, table):
    meta = asset.specs_by_key[asset.key].metadata
    schema = meta["dagster/column_schema"]
    assert [c.name for c in schema.columns] == [c.name for c in table.columns]
    assert all(c.description for c in schema.columns)
    assert meta["dagster/table_name"] == table.name


def test_every_twitter_definition_says_what_it_is_and_who_owns_it():
    assets = [tweets, sanitized_tweets, tweet_analyses, reputation_summary]
    for asset in assets:
        spec = asset.specs_by_key[asset.key]
        assert spec.description and spec.owners == ["team:data-platform"], asset.key
        assert "python" in spec.kinds and spec.group_name == "twitter", asset.key
    check = sanitized_tweets_pii_free.check_specs_by_output_name
    for spec in check.values():
        assert spec.description and spec.blocking
    assert users_sensor.description and users_sensor.owners == ["team:data-platform"]
    jobs = [v for v in vars(twitter_assets).values() if isinstance(v, type(twitter_assets.tweet_pipeline_job))]
    assert {j.name for j in jobs} == {"tweet_pipeline"}
    for job in jobs:
        assert job.description and "\n" not in job.description and job.tags == {"domain": "twitter"}
    sensors = [v for v in vars(twitter_sensors).values() if isinstance(v, dg.SensorDefinition)]
    assert sensors == [users_sensor]


def test_ingest_one_user_job_runs_one_partition_end_to_end(env):
    defs = dg.Definitions(
        assets=[tweets, sanitized_tweets, tweet_analyses, reputation_summary],
        asset_checks=[sanitized_tweets_pii_free],
        jobs=[twitter_assets.tweet_pipeline_job],
        resources=env.resources,
    )
    ingest = defs.resolve_job_def("tweet_pipeline")
    assert ingest.partitions_def == users_partitions
    user_id, _, _ = connect(env, n_tweets=12)
    other, _, _ = connect(env, n_tweets=3)
    result = ingest.execute_in_process(instance=env.instance, partition_key=user_id)
    assert result.success and result.dagster_run.tags["domain"] == "twitter"
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "tweets", "sanitized_tweets", "tweet_analyses", "reputation_summary"
    }
    checks = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(c.check_name, c.passed) for c in checks] == [("sanitized_tweets_pii_free", True)]
    assert count(env, t.analyses, user_id=user_id) == 12 and count(env, t.tweets, user_id=other) == 0


# --- backfills: users in batches (BackfillPolicy.multi_run), one run for several partitions --------
def materialize_batch(env, user_ids, selection=PIPELINE, run_config=None):
    """What a backfill's run of a batch is: one run over a range of `users` partitions (the run
    tags Dagster's asset backfill sets)."""
    keys = env.instance.get_dynamic_partitions(users_partitions.name)
    assert keys.index(user_ids[-1]) - keys.index(user_ids[0]) == len(user_ids) - 1  # a contiguous range
    return dg.materialize(
        selection, resources=env.resources, instance=env.instance, raise_on_error=False, run_config=run_config,
        tags={"dagster/asset_partition_range_start": user_ids[0], "dagster/asset_partition_range_end": user_ids[-1]},
    )


def observations(env, result, asset):
    """Each user's own metadata, logged as an observation of the user's partition (read from the
    instance: a failed step's result does not carry the events it logged)."""
    found = {}
    for record in env.instance.get_records_for_run(result.run_id, limit=10_000).records:
        event = record.event_log_entry.dagster_event
        if event and event.event_type_value == "ASSET_OBSERVATION" and event.asset_key == dg.AssetKey(asset):
            observation = event.event_specific_data.asset_observation
            found[observation.partition] = {k: v.value for k, v in observation.metadata.items()}
    return found


def test_the_user_assets_are_backfilled_in_batches_of_several_users_per_run():
    for asset in (tweets, sanitized_tweets, tweet_analyses, reputation_summary):
        assert asset.backfill_policy == dg.BackfillPolicy.multi_run(twitter_assets.USER_BATCH)
    assert twitter_assets.USER_BATCH > 1


def test_a_batch_runs_every_user_and_shows_each_users_figures(env):
    sizes = [7, 12, 3]
    users = [connect(env, n_tweets=n)[0] for n in sizes]
    result = materialize_batch(env, users)
    assert result.success, failure_message(result)
    for asset in ("tweets", "sanitized_tweets", "tweet_analyses", "reputation_summary"):
        partitions = sorted(e.partition for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset))
        assert partitions == sorted(users), asset
    for user_id, n in zip(users, sizes, strict=True):
        assert count(env, t.tweets, user_id=user_id) == n
        assert count(env, t.analyses, user_id=user_id) == n
    fetched = metadata(result, "tweets")
    assert fetched["users_in_run"] == 3 and fetched["new_tweets"] == sum(sizes)
    assert "dagster/row_count" not in fetched  # a batch's total is not any one partition's row count
    assert fetched["rows_in_batch"] == sum(sizes)
    per_user = {row.data["user_id"]: row.data for row in fetched["per_user"].records}
    assert {u: per_user[u]["new_tweets"] for u in users} == dict(zip(users, sizes, strict=True))
    assert {u: m["new_tweets"] for u, m in observations(env, result, "tweets").items()} == dict(zip(users, sizes, strict=True))
    # the summary, which nothing downstream waits on, is each user's own materialization, chart included
    summaries = {
        e.partition: {k: v.value for k, v in e.step_materialization_data.materialization.metadata.items()}
        for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("reputation_summary")
    }
    assert {u: summaries[u]["dagster/row_count"] for u in users} == dict(zip(users, sizes, strict=True))
    assert all("sentiment_over_time" in summaries[u] and "users_in_run" not in summaries[u] for u in users)
    assert observations(env, result, "reputation_summary") == {}
    analysed = metadata(result, "tweet_analyses")
    assert "mean_score" not in analysed and "quota" not in analysed  # not summable: per user only
    checks = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    # each user's verdict on its partition, and the batch's (no partition) that gates the analyses
    assert {c.partition: (c.passed, c.metadata["tweets_scanned"].value) for c in checks} == {
        **{u: (True, n) for u, n in zip(users, sizes, strict=True)}, None: (True, sum(sizes))
    }
    check_key = sanitized_tweets_pii_free.check_key
    statuses = env.instance.event_log_storage.get_asset_check_partition_info([check_key], after_storage_id=None)
    # every user's status is its own verdict (not left "planned"); the batch's gate has no partition
    assert {info.partition_key: info.latest_execution_status.value for info in statuses} == {
        **dict.fromkeys(users, "SUCCEEDED"), None: "SUCCEEDED"
    }


def test_in_a_batch_a_user_without_consent_is_skipped_and_the_others_run_to_the_end(env):
    first, refused, last = (connect(env, n_tweets=n)[0] for n in (4, 5, 6))
    with env.engine.begin() as conn:
        store.revoke_token(conn, refused)
    env.twitter.clear_requests()
    result = materialize_batch(env, [first, refused, last])
    assert result.success, failure_message(result)
    assert [count(env, t.analyses, user_id=u) for u in (first, refused, last)] == [4, 0, 6]
    assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == []
    fetched = metadata(result, "tweets")
    assert fetched["users_in_run"] == 3 and fetched["users_skipped"] == 1 and fetched["new_tweets"] == 10
    assert fetched["skipped"] == {refused: f"consent not granted for user {refused}: OAuth token revoked; nothing was fetched"}
    assert metadata(result, "tweet_analyses")["skipped"] == {refused: f"consent not granted for user {refused}: OAuth token revoked; nothing was analysed"}
    assert set(observations(env, result, "tweets")) == {first, last}
    twitter_users = {r.path.split("/")[3] for r in env.twitter.requests if r.path.endswith("/tweets")}
    with env.engine.connect() as conn:
        refused_twitter_id = conn.execute(sa.select(t.users.c.twitter_user_id).where(t.users.c.id == refused)).scalar_one()
        outcomes = conn.execute(
            sa.select(t.audit_log.c.action, t.audit_log.c.details)
            .where(t.audit_log.c.subject_id == refused).where(t.audit_log.c.action.in_(["fetch", "analyse"]))
        ).all()
    assert refused_twitter_id not in twitter_users and len(twitter_users) == 2  # nothing fetched for them
    assert sorted((action, details["outcome"]) for action, details in outcomes) == [("analyse", "refused"), ("fetch", "refused")]
    assert all(refused not in r.raw.decode() for r in env.claude.requests)


def test_in_a_batch_a_user_over_quota_is_skipped_once_and_the_others_are_analysed(env):
    small, big = connect(env, n_tweets=3)[0], connect(env, n_tweets=8)[0]
    result = materialize_batch(
        env, [small, big], run_config={"ops": {"tweet_analyses": {"config": {"basic_monthly_quota": 5}}}}
    )
    assert result.success, failure_message(result)
    assert [count(env, t.analyses, user_id=u) for u in (small, big)] == [3, 5]
    assert count(env, t.api_usage, user_id=big, operation="quota_exceeded") == 1  # once: the batch is not retried
    assert metadata(result, "tweet_analyses")["skipped"] == {
        big: f"monthly quota reached for user {big}: tier basic allows 5 analysed tweets per month, 5 used; 3 tweets left unanalysed"
    }


def test_a_rate_limited_user_retries_the_batch_incrementally(env):
    users = [connect(env, n_tweets=n)[0] for n in (3, 4)]
    reset = int(datetime.now(UTC).timestamp()) + 1
    env.twitter.force_next(429, headers={"x-rate-limit-limit": "900", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})
    result = materialize_batch(env, users, [tweets])
    assert result.success, failure_message(result)
    assert len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 1
    assert [count(env, t.tweets, user_id=u) for u in users] == [3, 4]
    timeline_calls = [r for r in env.twitter.requests if r.path.endswith("/tweets")]
    # first try: the first user's 429 and the second user's fetch; the retry: both, the second one
    # asking only for tweets after those it has
    assert len(timeline_calls) == 4 and timeline_calls[-1].query.get("since_id") is not None


def test_personal_data_left_in_one_users_sanitized_tweets_holds_back_the_whole_batchs_analyses(env):
    clean, dirty = (connect(env, n_tweets=4)[0] for _ in range(2))
    assert materialize_batch(env, [clean, dirty], [tweets]).success
    from repazoo_assets.defs.twitter.assets import REDACTOR_VERSION

    with env.engine.begin() as conn:
        store.upsert_sanitized(conn, dirty, [(first_tweet_id(1) + 1, "still has jane.doe@gmail.com", {})], REDACTOR_VERSION)
    result = materialize_batch(env, [clean, dirty])
    assert not result.success
    checks = {c.partition: c for c in (e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")}
    assert {partition: c.passed for partition, c in checks.items()} == {clean: True, dirty: False, None: False}
    assert checks[None].metadata["users_with_pii"].value == [dirty]
    assert all("jane.doe" not in str(c.metadata) and "jane.doe" not in (c.description or "") for c in checks.values())
    assert env.claude.requests == [] and count(env, t.analyses) == 0


def test_users_sensor_runs_a_bulk_import_in_batches_that_fetch_every_user(env):
    """The sensor's batch run, executed as the daemon would launch it (its tags, after its
    partitions are added): every user of the batch fetched, analysed and materialized."""
    users = [connect(env, n_tweets=n)[0] for n in (3, 5, 2)]
    for user_id in users:  # connected by the web app: in the database, not yet partitions
        env.instance.delete_dynamic_partition(users_partitions.name, user_id)
    with dg.build_sensor_context(instance=env.instance, resources={"app_db": env.resources["app_db"]}) as context:
        result = users_sensor(context)
    (request,) = result.run_requests
    assert request.partition_key is None and request.run_key == f"users-connected:{users[0]}..{users[-1]}"
    env.instance.add_dynamic_partitions(users_partitions.name, list(result.dynamic_partitions_requests[0].partition_keys))
    job = dg.Definitions(
        assets=[tweets, sanitized_tweets, tweet_analyses, reputation_summary],
        asset_checks=[sanitized_tweets_pii_free],
        jobs=[twitter_assets.tweet_pipeline_job],
        resources=env.resources,
    ).resolve_job_def("tweet_pipeline")
    run = job.execute_in_process(instance=env.instance, tags=request.tags)
    assert run.success
    assert sorted(e.partition for e in run.get_asset_materialization_events() if e.asset_key == dg.AssetKey("reputation_summary")) == sorted(users)
    assert [count(env, t.analyses, user_id=u) for u in users] == [3, 5, 2]


def test_in_a_batch_the_users_whose_summary_succeeds_are_materialized_even_if_one_fails(env, monkeypatch):
    users = [connect(env, n_tweets=n)[0] for n in (2, 3)]
    assert materialize_batch(env, users, [tweets, sanitized_tweets, sanitized_tweets_pii_free, tweet_analyses]).success
    original = store.summary

    def summary(conn, user_id):  # an unexpected error for one user, whose text must not be repeated
        if user_id == users[1]:
            raise LookupError(f"no row for {PLANTED[0]}")
        return original(conn, user_id)

    monkeypatch.setattr(store, "summary", summary)
    result = materialize_batch(env, users, [reputation_summary])
    assert not result.success
    assert f"1 of 2 users failed, the others are stored: {users[1]}: LookupError" in failure_message(result)
    assert PLANTED[0] not in failure_message(result)
    assert set(env.instance.get_materialized_partitions(dg.AssetKey("reputation_summary"))) == {users[0]}
    logged = [r.event_log_entry.user_message for r in env.instance.get_records_for_run(result.run_id, limit=10_000).records]
    (warning,) = [m for m in logged if m.startswith(f"user {users[1]}: LookupError")]
    assert "test_twitter_pipeline.py" in warning and "summary" in warning  # where it was raised, to debug with
    assert all(PLANTED[0] not in m for m in logged)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        # only rate limits: retried after the longest wait
        ({"a": dg.RetryRequested(max_retries=3, seconds_to_wait=900)}, ("retry", 900)),
        # a rate limit and a passing error: still after the rate limit's wait, not the policy's delay
        ({"a": dg.RetryRequested(max_retries=3, seconds_to_wait=60), "b": RuntimeError("x")}, ("retry", 60)),
        # passing errors only: the step's RetryPolicy
        ({"b": RuntimeError("x"), "c": dg.Failure("refresh: server error", allow_retries=True)}, ("fail", True)),
        # someone failed for good: not retried, whatever else happened
        ({"a": dg.RetryRequested(max_retries=3, seconds_to_wait=60), "d": dg.Failure("refresh refused", allow_retries=False)}, ("fail", False)),
    ],
)
def test_a_batch_is_retried_only_when_every_failure_may_pass(failures, expected):
    exc = twitter_assets._batch_failure(failures, users=10)
    if expected[0] == "retry":
        assert isinstance(exc, dg.RetryRequested) and exc.seconds_to_wait == expected[1]
    else:
        assert isinstance(exc, dg.Failure) and exc.allow_retries is expected[1]
        assert exc.description.startswith(f"{len(failures)} of 10 users failed")
        assert "x" not in exc.description.split(": ", 1)[1].replace("RuntimeError", "")  # a type name, not its text
