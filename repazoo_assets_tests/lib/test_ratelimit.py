"""The moving-window limiter on memory:// and on the real Redis (TEST_REDIS_URL, default db 15).

Each test uses a namespace of its own, so runs and tests never share a window; the Redis keys made
are deleted afterwards. The cross-process test is the one that matters for production: workers in
different processes share one budget through Redis and together never get more than the limit.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
import uuid
from collections.abc import Iterator

import limits
import pytest
import redis

from repazoo_assets.lib.ratelimit import (
    ANTHROPIC_LIMIT,
    TWITTER_USER_LIMIT,
    Limiter,
    RateLimitExceeded,
    limiter_from_uri,
)

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace unique to this test; its Redis keys are removed when the test ends."""
    ns = f"test-{uuid.uuid4().hex}"
    yield ns
    conn = redis.Redis.from_url(_redis_url())
    try:
        keys = list(conn.scan_iter(match=f"*{ns}*"))
        if keys:
            conn.delete(*keys)
    except redis.RedisError:  # pragma: no cover - Redis down: the test itself has failed already
        pass
    finally:
        conn.close()


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    uri = _redis_url()
    try:
        redis.Redis.from_url(uri, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"TEST_REDIS_URL: Redis is not reachable ({exc}); run `make test`")
    return uri


def test_the_platform_limits() -> None:
    assert (TWITTER_USER_LIMIT.amount, TWITTER_USER_LIMIT.get_expiry()) == (900, 15 * 60)
    assert (ANTHROPIC_LIMIT.amount, ANTHROPIC_LIMIT.get_expiry()) == (50, 60)


def test_exactly_n_permits_then_refused_with_retry_after(storage_uri: str, namespace: str) -> None:
    item = limits.parse("5/30 seconds")
    limiter = limiter_from_uri(storage_uri, item, namespace)
    assert limiter.remaining("user-1") == 5
    for left in range(4, -1, -1):
        limiter.acquire("user-1")
        assert limiter.remaining("user-1") == left
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire("user-1")
    assert 0 < caught.value.retry_after <= 30
    # The oldest permit was taken moments ago: it frees close to a full window from now.
    assert caught.value.retry_after > 25
    # Refusals take no permit and keep being refused.
    with pytest.raises(RateLimitExceeded):
        limiter.acquire("user-1")
    assert limiter.remaining("user-1") == 0


def test_message_names_limit_and_key_kind_but_not_the_key(storage_uri: str, namespace: str) -> None:
    limiter = limiter_from_uri(storage_uri, limits.parse("1/minute"), "twitter-user-" + namespace)
    limiter.acquire("app-user-8472")
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire("app-user-8472")
    message = str(caught.value)
    assert "1 per 1 minute" in message and "twitter-user" in message
    assert "8472" not in message and "8472" not in repr(caught.value)
    # Picklable (crosses process boundaries in multiprocess executors) with its attributes.
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.retry_after == caught.value.retry_after and str(copy) == message


def test_keys_and_namespaces_are_independent(storage_uri: str, namespace: str) -> None:
    item = limits.parse("2/minute")
    limiter = limiter_from_uri(storage_uri, item, namespace)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(RateLimitExceeded):
        limiter.acquire("a")
    limiter.acquire("b")
    assert limiter.remaining("b") == 1
    # Same storage and key, other namespace: a separate budget.
    other = Limiter(limiter._strategy, item, namespace + "-other")
    other.acquire("a")
    assert other.remaining("a") == 1


def test_permits_come_back_after_retry_after(storage_uri: str, namespace: str) -> None:
    limiter = limiter_from_uri(storage_uri, limits.parse("2/1 second"), namespace)
    limiter.acquire("k")
    limiter.acquire("k")
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire("k")
    assert 0 < caught.value.retry_after <= 1
    time.sleep(caught.value.retry_after + 0.05)
    limiter.acquire("k")


def test_limiters_on_one_redis_share_the_window(namespace: str) -> None:
    first = limiter_from_uri(_redis_url(), limits.parse("3/minute"), namespace)
    second = limiter_from_uri(_redis_url(), limits.parse("3/minute"), namespace)
    first.acquire("user")
    second.acquire("user")
    first.acquire("user")
    with pytest.raises(RateLimitExceeded):
        second.acquire("user")


def test_rejects_empty_key_and_namespace() -> None:
    with pytest.raises(ValueError):
        limiter_from_uri("memory://", ANTHROPIC_LIMIT, "")
    limiter = limiter_from_uri("memory://", ANTHROPIC_LIMIT, "anthropic")
    with pytest.raises(ValueError):
        limiter.acquire("")


def test_threads_on_memory_never_exceed_the_limit(namespace: str) -> None:
    limiter = limiter_from_uri("memory://", limits.parse("100/minute"), namespace)
    granted: list[int] = []
    start = threading.Barrier(4)

    def hammer() -> None:
        start.wait()
        mine = 0
        for _ in range(60):
            try:
                limiter.acquire("platform")
                mine += 1
            except RateLimitExceeded:
                pass
        granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sum(granted) == 100


def _hammer(uri: str, namespace: str, attempts: int, start, results) -> None:
    """Runs in a spawned process: its own Redis connection, its own Limiter."""
    limiter = limiter_from_uri(uri, TWITTER_USER_LIMIT, namespace)
    start.wait(timeout=60)
    granted = refused = 0
    for _ in range(attempts):
        try:
            limiter.acquire("shared-user")
            granted += 1
        except RateLimitExceeded as exc:
            assert 0 < exc.retry_after <= 15 * 60
            refused += 1
    results.put((granted, refused))


def test_two_processes_on_redis_get_exactly_the_limit(namespace: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(_redis_url(), namespace, 600, start, results)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
    assert all(p.exitcode == 0 for p in procs)
    assert sum(g for g, _ in outcomes) == 900
    assert sum(r for _, r in outcomes) == 300
    assert limiter_from_uri(_redis_url(), TWITTER_USER_LIMIT, namespace).remaining("shared-user") == 0
