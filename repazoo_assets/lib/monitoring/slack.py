"""Posting alerts to a Slack incoming webhook behind a circuit breaker.

Slack being down must never fail or stall the code that alerts: each post has a short timeout
(2 s by default), a failure is reported as a result, never raised, and after `fail_max`
consecutive failures the breaker opens and posts are skipped at once, without a connection
attempt, until `reset_timeout` seconds have passed; then one trial post decides (success closes
it, failure opens it again).

The breaker's state lives in Redis when the platform has one (pybreaker's CircuitRedisStorage),
so every run and worker sees the same open circuit; otherwise in this process's memory. If Redis
does not answer, pybreaker falls back to a closed circuit: alerts are still attempted.

The webhook URL is a secret: it never appears in a log line or a result, and neither does the
text of an exception (which may quote the URL); only its class and the HTTP status.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

# httpx, pybreaker and redis (~0.4 s together) are imported where they are used: this module is
# imported whenever the code location loads, but posts only when an alert goes out.
if TYPE_CHECKING:
    import pybreaker

log = logging.getLogger(__name__)

FAIL_MAX = 5
RESET_TIMEOUT = 60.0
POST_TIMEOUT = 2.0
REDIS_SCHEMES = ("redis://", "rediss://")

SENT, SKIPPED, FAILED, DISABLED = "sent", "skipped", "failed", "disabled"


def redis_url_for_breaker(storage_uri: str | None) -> str | None:
    """The rate-limit storage's Redis URL, if it is a plain Redis URL (the breaker shares the
    platform's Redis); None (state in memory) for `memory://` and anything else."""
    if storage_uri and storage_uri.startswith(REDIS_SCHEMES):
        return storage_uri
    return None


_breakers: dict[tuple, pybreaker.CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def make_breaker(
    *,
    redis_url: str | None = None,
    namespace: str = "repazoo:slack",
    fail_max: int = FAIL_MAX,
    reset_timeout: float = RESET_TIMEOUT,
) -> pybreaker.CircuitBreaker:
    """A new breaker; with `redis_url` its state is shared by every breaker of that namespace."""
    import pybreaker
    import redis

    storage: pybreaker.CircuitBreakerStorage | None = None
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
        try:
            storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=namespace)
        except redis.RedisError as exc:
            log.warning(
                "circuit breaker: Redis unavailable (%s), keeping its state in memory", type(exc).__name__
            )
    return pybreaker.CircuitBreaker(
        fail_max=fail_max, reset_timeout=reset_timeout, state_storage=storage, name=namespace
    )


def shared_breaker(
    *,
    redis_url: str | None = None,
    namespace: str = "repazoo:slack",
    fail_max: int = FAIL_MAX,
    reset_timeout: float = RESET_TIMEOUT,
) -> pybreaker.CircuitBreaker:
    """The process-wide breaker for these settings: in memory, its state must outlive one call
    (a sensor or a long run alerts many times)."""
    key = (redis_url, namespace, fail_max, reset_timeout)
    with _breakers_lock:
        if key not in _breakers:
            _breakers[key] = make_breaker(
                redis_url=redis_url, namespace=namespace, fail_max=fail_max, reset_timeout=reset_timeout
            )
        return _breakers[key]


class SlackPostError(Exception):
    """Slack did not accept a post. The message names the status or error class only."""


@dataclass(frozen=True)
class PostResult:
    status: str  # sent | skipped (breaker open) | failed | disabled (no webhook)
    detail: str = ""


class SlackNotifier:
    def __init__(
        self,
        webhook_url: str | None,
        breaker: pybreaker.CircuitBreaker | None = None,
        *,
        timeout: float = POST_TIMEOUT,
    ) -> None:
        import pybreaker

        self._url = webhook_url or None
        self.breaker = breaker or pybreaker.CircuitBreaker(fail_max=FAIL_MAX, reset_timeout=RESET_TIMEOUT)
        self.timeout = timeout

    @property
    def enabled(self) -> bool:
        return self._url is not None

    def __repr__(self) -> str:  # never show the webhook
        return f"SlackNotifier(enabled={self.enabled}, breaker={self.breaker.current_state})"

    def _post(self, text: str) -> None:
        import httpx

        try:
            response = httpx.post(self._url, json={"text": text}, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise SlackPostError(type(exc).__name__) from None
        if response.status_code >= 300:
            raise SlackPostError(f"HTTP {response.status_code}")

    def post(self, text: str) -> PostResult:
        """Post `text`; never raises. The caller is responsible for `text` holding no personal data."""
        if not self.enabled:
            return PostResult(DISABLED)
        import pybreaker

        attempted = False

        def attempt() -> None:
            nonlocal attempted
            attempted = True
            self._post(text)

        try:
            self.breaker.call(attempt)
        except pybreaker.CircuitBreakerError:
            if not attempted:
                return PostResult(SKIPPED, "circuit open")
            # This attempt was the one that tripped the breaker.
            return PostResult(FAILED, "failed; circuit opened")
        except SlackPostError as exc:
            return PostResult(FAILED, str(exc))
        except Exception as exc:  # a breaker storage problem must not fail the caller either
            return PostResult(FAILED, type(exc).__name__)
        return PostResult(SENT)
