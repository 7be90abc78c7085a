"""Sentry reporting against a local endpoint standing in for the DSN's ingest URL."""

import pytest

from repazoo_assets.lib.monitoring import sentry
from repazoo_assets.lib.monitoring.sentry import SentryReporter, reporter_from_env, scrub
from repazoo_assets_tests.lib.monitoring.servers import RecordingServer

EMAIL, PHONE = "jane.doe@gmail.com", "+44 20 7946 0958"


@pytest.fixture
def ingest():
    with RecordingServer() as server:
        yield server


def test_an_alert_reaches_sentry_with_personal_data_scrubbed(ingest):
    reporter = SentryReporter(f"http://public@127.0.0.1:{ingest.port}/1")
    event_id = reporter.capture_alert(
        "client_delivery", "ERROR", f"delivery for {EMAIL} failed, call {PHONE}", value=1.0, window_key="w"
    )
    reporter.flush()
    assert event_id
    assert ingest.requests and ingest.requests[0]["path"] == "/api/1/envelope/"
    events = ingest.sentry_events()
    assert [e["event_id"] for e in events] == [event_id]
    event = events[0]
    assert event["level"] == "error" and event["tags"]["check_name"] == "client_delivery"
    assert "[EMAIL]" in event["message"] and "[PHONE]" in event["message"]
    raw = b"".join(r["body"] for r in ingest.requests)
    assert EMAIL.encode() not in raw and b"7946" not in raw


def test_a_run_failure_reaches_sentry_with_its_tags(ingest):
    reporter = SentryReporter(f"http://public@127.0.0.1:{ingest.port}/1")
    reporter.capture_run_failure(
        job_name="tweet_pipeline", run_id="abcd1234-0000", partition="user-1", error_class="HTTPStatusError",
        message=f"run abcd1234 of job tweet_pipeline failed; reach {EMAIL}",
    )
    reporter.flush()
    [event] = ingest.sentry_events()
    assert event["tags"] == {
        "job": "tweet_pipeline", "error_class": "HTTPStatusError", "partition": "user-1", "source": "run_failure",
    }
    assert EMAIL not in str(event)


def test_scrub_walks_every_string_and_drops_request_and_user():
    event = {
        "message": f"mail {EMAIL}",
        "extra": {"nested": [f"call {PHONE}", 3]},
        "user": {"email": EMAIL},
        "request": {"url": "https://x"},
    }
    assert scrub(event) == {"message": "mail [EMAIL]", "extra": {"nested": ["call [PHONE]", 3]}}


def test_without_sentry_dsn_there_is_no_reporter():
    assert reporter_from_env({}) is None
    assert reporter_from_env({"SENTRY_DSN": "  "}) is None


def test_a_malformed_dsn_disables_reporting_instead_of_failing():
    assert reporter_from_env({"SENTRY_DSN": "not a dsn"}) is None


def test_the_reporter_is_one_per_dsn(ingest):
    dsn = f"http://public@127.0.0.1:{ingest.port}/1"
    try:
        assert reporter_from_env({"SENTRY_DSN": dsn}) is reporter_from_env({"SENTRY_DSN": dsn})
    finally:
        sentry._reporters.pop(dsn, None)
