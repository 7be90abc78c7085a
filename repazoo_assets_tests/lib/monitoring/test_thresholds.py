"""The thresholds on the real PostgreSQL with a fixed clock: just under and just over each limit,
and the row just outside the window."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.monitoring import thresholds as th
from repazoo_assets.lib.monitoring.thresholds import XactReading

NOW = datetime(2026, 11, 24, 12, 7, 30, tzinfo=UTC)


def add_usage(engine, operation, count, at, provider="twitter"):
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.api_usage),
            [{"user_id": None, "provider": provider, "operation": operation, "created_at": at}] * count,
        )


@pytest.mark.parametrize("threshold", th.USAGE_THRESHOLDS, ids=lambda x: x.check_name)
def test_usage_threshold_passes_at_the_limit_and_fails_one_over(engine, threshold):
    inside = NOW - threshold.window + timedelta(seconds=1)
    add_usage(engine, threshold.operation, threshold.limit - 1, NOW - timedelta(minutes=1))
    add_usage(engine, threshold.operation, 1, inside)  # the oldest row still in the window
    # Outside the window, other operations, and rows after the evaluation time never count.
    add_usage(engine, threshold.operation, 5, NOW - threshold.window)
    add_usage(engine, threshold.operation, 5, NOW - threshold.window - timedelta(seconds=1))
    add_usage(engine, "get_tweets", 50, NOW - timedelta(minutes=1))
    add_usage(engine, threshold.operation, 5, NOW + timedelta(seconds=1))
    with engine.connect() as conn:
        at_limit = th.evaluate_usage(conn, threshold, NOW)
    assert at_limit.passed and at_limit.value == threshold.limit and at_limit.threshold == threshold.limit

    add_usage(engine, threshold.operation, 1, NOW)
    with engine.connect() as conn:
        over = th.evaluate_usage(conn, threshold, NOW)
    assert not over.passed and over.value == threshold.limit + 1
    assert over.severity == threshold.severity and over.measured
    assert f"over the limit of {threshold.limit}" in over.description


def test_the_three_limits_and_windows_are_the_documented_ones():
    assert [(x.operation, x.limit, x.window, x.severity) for x in th.USAGE_THRESHOLDS] == [
        ("rate_limited", 10, timedelta(hours=1), "WARN"),
        ("token_refresh_failed", 3, timedelta(hours=24), "ERROR"),
        ("quota_exceeded", 5, timedelta(hours=12), "WARN"),
    ]


def test_window_key_is_the_start_of_the_fixed_period():
    assert th.window_key(NOW, timedelta(hours=1)) == "2026-11-24T12:00Z"
    assert th.window_key(NOW, timedelta(hours=12)) == "2026-11-24T12:00Z"
    assert th.window_key(NOW - timedelta(minutes=8), timedelta(hours=12)) == "2026-11-24T00:00Z"
    assert th.window_key(NOW, timedelta(hours=24)) == "2026-11-24T00:00Z"
    assert th.window_key(NOW, timedelta(minutes=5)) == "2026-11-24T12:05Z"


def reading(total, minutes_ago=0.0, stats_reset="2026-11-01 00:00:00+00"):
    return XactReading(total, NOW - timedelta(minutes=minutes_ago), stats_reset)


def test_db_queries_just_under_and_just_over_1000_per_5_minutes():
    under = th.db_queries_outcome(reading(50_000, 5), reading(51_000), NOW)
    over = th.db_queries_outcome(reading(50_000, 5), reading(51_001), NOW)
    assert under.passed and under.value == 1000 and under.measured
    assert not over.passed and over.value == 1001 and over.severity == "WARN"


def test_db_queries_rate_is_scaled_to_5_minutes_when_runs_are_further_apart():
    # A missed tick: 1,500 transactions over 10 minutes is 750 per 5 minutes.
    outcome = th.db_queries_outcome(reading(0, 10), reading(1_500), NOW)
    assert outcome.passed and outcome.value == 750


@pytest.mark.parametrize(
    "previous",
    [None, reading(2_000, 5, stats_reset="2026-10-01 00:00:00+00"), reading(99_999, 5), reading(0, -1)],
    ids=["first-run", "stats-reset", "counter-went-down", "clock-backwards"],
)
def test_db_queries_without_a_usable_previous_reading_is_a_baseline(previous):
    outcome = th.db_queries_outcome(previous, reading(10_000), NOW)
    assert outcome.passed and not outcome.measured and outcome.value is None


def test_db_queries_on_postgres_keeps_its_reading_and_measures_the_delta(engine):
    first = th.evaluate_db_queries(engine, NOW)
    assert first.passed and not first.measured
    with engine.connect() as conn:
        stored = conn.execute(sa.select(t.monitoring_state.c.value)).scalar_one()
    assert stored["total"] == first.extra["transactions_total"] > 0
    # Pretend the last run saw 2,000 fewer transactions five minutes ago: over the limit.
    with engine.begin() as conn:
        th.write_state(conn, th.DB_QUERIES_STATE, {**stored, "total": stored["total"] - 2_000,
                                                    "read_at": (NOW - timedelta(minutes=5)).isoformat()}, NOW)
    over = th.evaluate_db_queries(engine, NOW)
    assert over.measured and not over.passed and over.value >= 2_000
    # Its own reading is kept for the next run.
    with engine.connect() as conn:
        kept = conn.execute(sa.select(t.monitoring_state.c.value)).scalar_one()
    assert kept["total"] == over.extra["transactions_total"] >= stored["total"]


def test_db_queries_counts_the_transactions_between_two_runs(engine):
    th.evaluate_db_queries(engine, NOW - timedelta(minutes=5))
    with engine.connect() as conn:
        for _ in range(60):
            conn.execute(sa.text("select 1"))
            conn.commit()
        # Make this backend publish its statistics now rather than within a second.
        conn.execute(sa.text("select pg_stat_force_next_flush()"))
        conn.commit()
    outcome = th.evaluate_db_queries(engine, NOW)
    assert outcome.measured and outcome.value >= 60
    assert outcome.passed == (outcome.value <= 1000)


def test_db_queries_on_sqlite_is_not_measured_and_passes(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    upgrade(engine)
    outcome = th.evaluate_db_queries(engine, NOW)
    assert outcome.passed and not outcome.measured and "not measured" in outcome.description
    engine.dispose()
