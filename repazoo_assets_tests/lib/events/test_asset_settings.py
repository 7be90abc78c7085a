"""The event assets' operational settings: freshness policies (shown in the UI), network retries,
and the hourly processing schedule. Read from the event domain's own definitions (the whole code
location is loaded by the definitions test)."""

from datetime import timedelta

import dagster as dg
import pytest

from repazoo_assets.defs.events import assets as event_assets

EXPECTED_FAIL_WINDOWS = {
    "raw_events": timedelta(minutes=5),
    "processed_events": timedelta(hours=2),
    "client_exports": timedelta(days=7, hours=2),  # the weekly sync frequency, with slack
}


@pytest.mark.parametrize(("asset", "fail_window"), EXPECTED_FAIL_WINDOWS.items())
def test_freshness_policy_and_network_retry_are_set(asset, fail_window):
    definition = getattr(event_assets, asset)
    policy = definition.specs_by_key[dg.AssetKey(asset)].freshness_policy
    assert isinstance(policy, dg.FreshnessPolicy)
    assert policy.fail_window.to_timedelta() == fail_window
    assert policy.warn_window is not None and policy.warn_window.to_timedelta() < fail_window
    retry = definition.op.retry_policy
    assert retry is not None and retry.max_retries == 3
    assert (retry.backoff, retry.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)


def test_processed_events_is_scheduled_hourly_for_the_previous_hour():
    schedule = event_assets.processed_events_hourly_schedule
    assert (schedule.minute_of_hour, schedule.default_status) == (10, dg.DefaultScheduleStatus.RUNNING)
    assert schedule.job.name == "process_events_hourly"
    assert event_assets.processed_events.partitions_def == event_assets.hourly  # so one tick = the hour just ended
