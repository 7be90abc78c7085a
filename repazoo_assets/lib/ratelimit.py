"""Request budgets shared by every worker, on the `limits` library's moving window.

A moving window (not a fixed one) because the budgets mirror upstream quotas: a fixed window lets a
caller spend a whole budget at the end of one window and again at the start of the next, twice the
quota in a moment, which is exactly what Twitter answers with a 429. The moving window counts the
permits of the last `window` seconds whenever one is asked for.

The storage decides who shares a budget: `memory://` is one process (local runs), `redis://...`
is every run and worker of the platform (production). On Redis a permit is taken by one Lua script
(check the oldest entry, push, trim), so concurrent processes can never get more than the limit.

Keys are identifiers (an app user id, "platform"); they go into storage keys but never into an
exception message, which names only the limit and the kind of key (the namespace).
"""

from __future__ import annotations

import time

import limits
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

# Twitter API v2 user-context quota of GET /2/users/:id/tweets: 900 requests per 15 minutes per user.
TWITTER_USER_LIMIT = limits.parse("900/15 minutes")
# Anthropic requests per minute for the whole platform, below the organisation's tier limit.
ANTHROPIC_LIMIT = limits.parse("50/minute")

# The shortest wait ever reported: callers sleep or reschedule on `retry_after`, and zero (or a
# negative value from clock skew between workers) would make them spin.
MIN_RETRY_AFTER = 0.05


class RateLimitExceeded(Exception):
    """No permit left in the window. `retry_after` is the number of seconds until the oldest permit
    of the window expires (at least MIN_RETRY_AFTER, at most the window), so a caller can retry or
    reschedule instead of polling."""

    def __init__(self, limit: str, key_kind: str, retry_after: float) -> None:
        self.limit = limit
        self.key_kind = key_kind
        self.retry_after = retry_after
        super().__init__(limit, key_kind, retry_after)

    def __str__(self) -> str:
        return (
            f"rate limit {self.limit} reached for this {self.key_kind} key; "
            f"next permit in {self.retry_after:.2f} s"
        )


class Limiter:
    """One budget (`item`) applied per key within a namespace, e.g. 900 per 15 minutes per user in
    "twitter-user". The namespace keeps budgets that share a key (a user id) apart."""

    def __init__(self, strategy: MovingWindowRateLimiter, item: limits.RateLimitItem, namespace: str) -> None:
        if not namespace:
            raise ValueError("namespace must be non-empty")
        self._strategy = strategy
        self.item = item
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"Limiter({self.item}, namespace={self.namespace!r})"

    def acquire(self, key: str) -> None:
        """Take one permit for `key` or raise RateLimitExceeded. Never waits: whether to sleep,
        reschedule or give up is the caller's decision (a Dagster step should not hold a slot)."""
        _check_key(key)
        if self._strategy.hit(self.item, self.namespace, key):
            return
        raise RateLimitExceeded(str(self.item), self.namespace, self._retry_after(key))

    def remaining(self, key: str) -> int:
        """Permits left for `key` in the current window (a snapshot: others may take them)."""
        _check_key(key)
        return max(0, self._strategy.get_window_stats(self.item, self.namespace, key).remaining)

    def _retry_after(self, key: str) -> float:
        stats = self._strategy.get_window_stats(self.item, self.namespace, key)
        window = float(self.item.get_expiry())
        if stats.remaining > 0:
            # A permit expired between the refused hit and this look: one can be had at once.
            return MIN_RETRY_AFTER
        # The window starts at its oldest live permit, which frees at reset_time. Clamped because
        # entries are stamped with each worker's own clock.
        return min(window, max(MIN_RETRY_AFTER, stats.reset_time - time.time()))


def limiter_from_uri(storage_uri: str, item: limits.RateLimitItem, namespace: str) -> Limiter:
    """A Limiter on the storage at `storage_uri` ("memory://", "redis://host:6379/0", ...).

    Each call makes a new storage: with "memory://" two limiters built this way do not share
    permits, so build one per process and pass it around."""
    return Limiter(MovingWindowRateLimiter(storage_from_string(storage_uri)), item, namespace)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("rate-limit key must be a non-empty string")
