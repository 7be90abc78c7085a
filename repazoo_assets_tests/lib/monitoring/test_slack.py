"""Slack posts behind the circuit breaker, against a local webhook server and the real Redis."""

import time
import uuid

import pybreaker
import pytest
import redis

from repazoo_assets.lib.monitoring.slack import (
    SlackNotifier,
    make_breaker,
    redis_url_for_breaker,
    shared_breaker,
)
from repazoo_assets_tests.conftest import free_port
from repazoo_assets_tests.lib.monitoring.servers import RecordingServer

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def webhook():
    with RecordingServer() as server:
        yield server


@pytest.fixture
def namespace():
    ns = f"test-{uuid.uuid4().hex}"
    yield ns
    client = redis.Redis.from_url(REDIS)
    keys = client.keys(f"{ns}:*")
    if keys:
        client.delete(*keys)


def test_posts_the_text_as_a_webhook_payload(webhook):
    notifier = SlackNotifier(webhook.url + "/services/T000/B000/XXXX")
    result = notifier.post("[WARN] rate_limit_violations: 11 events")
    assert result.status == "sent"
    assert webhook.texts() == ["[WARN] rate_limit_violations: 11 events"]
    assert webhook.requests[0]["path"] == "/services/T000/B000/XXXX"


def test_without_a_webhook_nothing_is_posted():
    assert SlackNotifier(None).post("x").status == "disabled"


def test_after_five_failures_the_breaker_opens_and_posts_are_skipped_without_a_request(webhook):
    webhook.status = 500
    notifier = SlackNotifier(webhook.url, make_breaker(reset_timeout=60))
    results = [notifier.post(f"alert {i}") for i in range(8)]
    assert [r.status for r in results] == ["failed"] * 5 + ["skipped"] * 3
    assert "HTTP 500" in results[0].detail
    assert webhook.count == 5  # the three skipped posts never reached the server
    assert notifier.breaker.current_state == "open"


def test_the_breaker_closes_after_the_reset_timeout_when_slack_is_back(webhook):
    webhook.status = 500
    notifier = SlackNotifier(webhook.url, make_breaker(reset_timeout=0.3))
    for _ in range(5):
        notifier.post("down")
    assert notifier.post("still down").status == "skipped"
    webhook.status = 200
    time.sleep(0.4)
    assert notifier.post("back").status == "sent"  # the trial post
    assert notifier.breaker.current_state == "closed"
    assert notifier.post("again").status == "sent"
    assert webhook.texts()[-2:] == ["back", "again"]


def test_a_failed_trial_post_opens_the_breaker_again(webhook):
    webhook.status = 500
    notifier = SlackNotifier(webhook.url, make_breaker(reset_timeout=0.3))
    for _ in range(5):
        notifier.post("down")
    time.sleep(0.4)
    assert notifier.post("trial").status == "failed"
    assert notifier.breaker.current_state == "open"
    assert notifier.post("skipped").status == "skipped"
    assert webhook.count == 6


def test_breaker_state_is_shared_through_redis(webhook, namespace):
    webhook.status = 500
    first = SlackNotifier(webhook.url, make_breaker(redis_url=REDIS, namespace=namespace, reset_timeout=60))
    second = SlackNotifier(webhook.url, make_breaker(redis_url=REDIS, namespace=namespace, reset_timeout=60))
    for _ in range(3):
        first.post("from worker one")
    for _ in range(2):
        second.post("from worker two")  # the fifth failure in all: opens the shared breaker
    assert first.breaker.current_state == "open" and second.breaker.current_state == "open"
    assert first.post("x").status == "skipped" and second.post("y").status == "skipped"
    assert webhook.count == 5
    assert redis.Redis.from_url(REDIS).get(f"{namespace}:pybreaker:state") == b"open"


def test_a_breaker_in_another_namespace_is_not_affected(webhook, namespace):
    webhook.status = 500
    tripped = SlackNotifier(webhook.url, make_breaker(redis_url=REDIS, namespace=namespace))
    for _ in range(5):
        tripped.post("x")
    other = make_breaker(redis_url=REDIS, namespace=f"{namespace}-other")
    assert other.current_state == "closed"


def test_redis_unreachable_keeps_the_state_in_memory(webhook):
    breaker = make_breaker(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert isinstance(breaker._state_storage, pybreaker.CircuitMemoryStorage)
    assert SlackNotifier(webhook.url, breaker).post("still alerts").status == "sent"


def test_a_slow_slack_fails_the_post_at_the_timeout(webhook):
    webhook.delay = 1.0
    result = SlackNotifier(webhook.url, make_breaker(), timeout=0.2).post("slow")
    assert result.status == "failed" and result.detail == "ReadTimeout"


def test_an_unreachable_slack_fails_the_post_without_naming_the_webhook():
    url = f"http://127.0.0.1:{free_port()}/services/SECRET/HOOK"
    notifier = SlackNotifier(url, make_breaker())
    result = notifier.post("x")
    assert result.status == "failed" and "SECRET" not in result.detail
    assert "SECRET" not in repr(notifier)


def test_redis_url_is_taken_only_from_a_redis_rate_limit_storage():
    assert redis_url_for_breaker("redis://cache:6379/2") == "redis://cache:6379/2"
    assert redis_url_for_breaker("rediss://cache:6380/0") == "rediss://cache:6380/0"
    assert redis_url_for_breaker("memory://") is None
    assert redis_url_for_breaker(None) is None


def test_shared_breaker_is_one_per_process_and_settings():
    a = shared_breaker(namespace="t-shared", reset_timeout=5)
    assert shared_breaker(namespace="t-shared", reset_timeout=5) is a
    assert shared_breaker(namespace="t-shared-2", reset_timeout=5) is not a
