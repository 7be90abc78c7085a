"""Twitter API v2 client for the two calls the pipeline makes: one page of a user's timeline
(`GET /2/users/:id/tweets`, OAuth 2.0 user context) and the OAuth 2.0 token refresh
(`POST /2/oauth2/token`, confidential client).

Why it looks the way it does:

* Every HTTP request, retries included, first calls `before_request`. The caller takes a permit of
  the shared per-user limiter there (repazoo_assets.lib.ratelimit), so our own request count can
  never run past Twitter's quota, whichever worker sends. If it raises, nothing is sent.
* Only failures that may pass are retried: 5xx answers and network errors, with exponential
  backoff plus jitter (tenacity) so that workers failing together do not retry together. A 401
  (the caller refreshes the token) and a 429 (the caller reschedules for `reset_at`) are raised at
  once: retrying them here would only burn permits or busy-loop until the window resets.
* No exception message or repr contains an access token, a refresh token, the client secret, a
  pagination token or tweet text: they end up in Dagster's event log and in alerts. Messages name
  the operation by its path template ("GET /2/users/:id/tweets"), the HTTP status, and at most
  Twitter's error code.
* `requests_made` counts requests actually sent (retries included) so the caller can record API
  usage per call by taking the difference before and after.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
import tenacity

TIMELINE_OPERATION = "GET /2/users/:id/tweets"
TOKEN_OPERATION = "POST /2/oauth2/token"
# The fields the pipeline stores; `id` and `text` always come.
TWEET_FIELDS = "created_at,lang,public_metrics,entities"
MIN_MAX_RESULTS = 5
MAX_MAX_RESULTS = 100
# When a 429 comes without a usable x-rate-limit-reset: Twitter's windows are 15 minutes long.
DEFAULT_RATE_LIMIT_WINDOW = timedelta(minutes=15)

# Twitter error codes and titles are short fixed identifiers ("invalid_request", "Not Found Error");
# anything else (a description that might echo a value) is left out of messages.
_SAFE_ERROR_CODE = re.compile(r"^[A-Za-z0-9 _.\-]{1,64}$")


# --- errors ---------------------------------------------------------------------------------------
class TwitterError(Exception):
    """A call to the Twitter API failed. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # keyword-only arguments: rebuild from args and attributes when pickled
        return (_restore_error, (type(self), self.args, self.__dict__))


class TwitterUnauthorized(TwitterError):
    """401: the access token expired or was revoked (refresh it), or the client credentials were
    refused on the token endpoint. Never retried here."""


class TwitterRateLimited(TwitterError):
    """429: Twitter's window for this token is used up until `reset_at` (x-rate-limit-reset)."""

    def __init__(self, message: str, *, reset_at: datetime, status: int = 429) -> None:
        super().__init__(message, status=status)
        self.reset_at = reset_at

    def retry_after(self, now: datetime | None = None) -> float:
        """Seconds from `now` (default: the current time) until the window resets, never negative."""
        now = now or datetime.now(UTC)
        return max(0.0, (self.reset_at - now).total_seconds())


class TwitterServerError(TwitterError):
    """5xx answers or network errors on every one of the attempts. `status` is the last HTTP
    status, None when the last attempt got no answer at all."""


class TwitterProtocolError(TwitterError):
    """A 2xx answer that is not what the API documents: not JSON, or a field missing or mistyped."""


def _restore_error(cls: type[TwitterError], args: tuple, state: dict) -> TwitterError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class _Transient(Exception):
    """Internal: an attempt that may succeed if repeated (5xx or network error)."""

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TwitterTweet:
    id: int
    text: str
    created_at: datetime  # aware, UTC
    lang: str | None
    public_metrics: dict | None
    entities: dict | None

    def __repr__(self) -> str:
        # Tweet text is personal data: a tweet printed in a log line or a test failure shows no text.
        return f"TwitterTweet(id={self.id}, created_at={self.created_at.isoformat()}, lang={self.lang!r})"


@dataclass(frozen=True)
class TimelinePage:
    tweets: list[TwitterTweet]
    next_token: str | None  # pass as pagination_token for the next (older) page; None on the last
    newest_id: int | None
    rate_limit_remaining: int | None
    rate_limit_reset: datetime | None


@dataclass(frozen=True)
class TokenPair:
    """A refreshed grant. `refresh_token` replaces the one that was used: Twitter rotates refresh
    tokens, and the old one is already invalid, so store the new pair before anything else."""

    access_token: str
    refresh_token: str | None
    expires_in: int
    scope: str | None

    def __repr__(self) -> str:
        refresh = "None" if self.refresh_token is None else "'***'"
        return (
            f"TokenPair(access_token='***', refresh_token={refresh}, "
            f"expires_in={self.expires_in}, scope={self.scope!r})"
        )


# --- client ---------------------------------------------------------------------------------------
class TwitterClient:
    """Synchronous client; one per step (it holds a connection pool). Not thread-safe for
    `requests_made`, which is a plain counter."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        before_request: Callable[[], None] | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        http: httpx.Client | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff_initial < 0 or backoff_max < 0:
            raise ValueError("backoff_initial and backoff_max must not be negative")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._before_request = before_request
        self._timeout = httpx.Timeout(timeout)
        self._max_attempts = max_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        # A client passed in belongs to the caller (tests, shared pools): close only our own.
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self._timeout)
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"TwitterClient(base_url={self.base_url!r}, requests_made={self.requests_made})"

    def __enter__(self) -> TwitterClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # --- calls ------------------------------------------------------------------------------------
    def user_tweets_page(
        self,
        twitter_user_id: str,
        access_token: str,
        *,
        since_id: int | None = None,
        pagination_token: str | None = None,
        max_results: int = 100,
    ) -> TimelinePage:
        """One page of the user's timeline, newest first: tweets newer than `since_id` when given,
        continuing after `pagination_token` when given. Follow `next_token` until it is None."""
        if not isinstance(twitter_user_id, str) or not twitter_user_id.isdigit():
            # Also keeps anything but an id out of the URL path.
            raise ValueError("twitter_user_id must be a string of digits")
        if not access_token:
            raise ValueError("access_token must be non-empty")
        if (
            isinstance(max_results, bool)
            or not isinstance(max_results, int)
            or not MIN_MAX_RESULTS <= max_results <= MAX_MAX_RESULTS
        ):
            raise ValueError(f"max_results must be an integer from {MIN_MAX_RESULTS} to {MAX_MAX_RESULTS}")
        params: dict[str, str] = {"max_results": str(max_results), "tweet.fields": TWEET_FIELDS}
        if since_id is not None:
            if isinstance(since_id, bool) or not isinstance(since_id, int) or since_id <= 0:
                raise ValueError("since_id must be a positive integer")
            params["since_id"] = str(since_id)
        if pagination_token is not None:
            if not pagination_token:
                raise ValueError("pagination_token must be non-empty when given")
            params["pagination_token"] = pagination_token
        response = self._send(
            "GET",
            f"/2/users/{twitter_user_id}/tweets",
            TIMELINE_OPERATION,
            headers={"Authorization": f"Bearer {access_token}"},
            params=params,
        )
        body = _json_object(response, TIMELINE_OPERATION)
        return _parse_timeline(body, response.headers)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token for a new access token and (rotated) refresh token.

        The request is retried on 5xx and network errors like any other. If Twitter did rotate the
        token but its answer was lost, the retry is refused (400, the old token is spent) and the
        user has to reconnect: rare, and not recoverable from here."""
        if not refresh_token:
            raise ValueError("refresh_token must be non-empty")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id}
        # Confidential clients authenticate with HTTP basic auth; a public client has no secret.
        auth = httpx.BasicAuth(self.client_id, self._client_secret) if self._client_secret else None
        response = self._send("POST", "/2/oauth2/token", TOKEN_OPERATION, data=form, auth=auth)
        body = _json_object(response, TOKEN_OPERATION)
        return _parse_token_pair(body)

    # --- transport --------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """Send with retries; return the final 2xx response or raise the matching TwitterError."""
        url = self.base_url + path
        request_headers = {"Accept": "application/json", **(headers or {})}

        def attempt() -> httpx.Response:
            if self._before_request is not None:
                self._before_request()  # may raise (no permit): then nothing is sent
            self.requests_made += 1
            try:
                response = self._http.request(
                    method,
                    url,
                    headers=request_headers,
                    params=params,
                    data=data,
                    auth=auth,
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                raise _Transient(None, f"network error ({type(exc).__name__})") from exc
            if response.status_code >= 500:
                raise _Transient(response.status_code, f"HTTP {response.status_code}")
            return response

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._max_attempts),
            # backoff_initial * 2**(n-1), capped at backoff_max, plus up to backoff_initial of jitter.
            wait=tenacity.wait_exponential(multiplier=self._backoff_initial, max=self._backoff_max)
            + tenacity.wait_random(0, self._backoff_initial),
            retry=tenacity.retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except _Transient as exc:
            raise TwitterServerError(
                f"Twitter API {operation} failed after {self._max_attempts} attempt(s): last {exc.reason}",
                status=exc.status,
            ) from exc.__cause__
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 401:
            raise TwitterUnauthorized(
                f"Twitter API {operation} returned HTTP 401 (token expired or revoked, or client "
                f"credentials refused){_error_code_suffix(response)}",
                status=401,
            )
        if status == 429:
            reset_at = _rate_limit_reset(response.headers) or _retry_after_header(response.headers)
            reset_at = reset_at or datetime.now(UTC) + DEFAULT_RATE_LIMIT_WINDOW
            raise TwitterRateLimited(
                f"Twitter API {operation} returned HTTP 429 (rate limited until {reset_at.isoformat()})",
                reset_at=reset_at,
            )
        raise TwitterError(
            f"Twitter API {operation} returned HTTP {status}{_error_code_suffix(response)}", status=status
        )


# --- parsing --------------------------------------------------------------------------------------
def _json_object(response: httpx.Response, operation: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise TwitterProtocolError(
            f"Twitter API {operation}: response body is not valid JSON", status=response.status_code
        ) from None
    if not isinstance(body, dict):
        raise TwitterProtocolError(
            f"Twitter API {operation}: response body is not a JSON object", status=response.status_code
        )
    return body


def _parse_timeline(body: dict[str, Any], headers: httpx.Headers) -> TimelinePage:
    data = body.get("data")
    meta = body.get("meta")
    if data is None and meta is None and body.get("errors"):
        # 200 with only `errors`: the user does not exist, is suspended, or is protected.
        titles = sorted(
            {
                e["title"]
                for e in body["errors"]
                if isinstance(e, dict)
                and isinstance(e.get("title"), str)
                and _SAFE_ERROR_CODE.match(e["title"])
            }
        )
        raise TwitterError(
            f"Twitter API {TIMELINE_OPERATION} returned errors: {', '.join(titles) or 'unspecified'}",
            status=200,
        )
    if not isinstance(meta, dict):
        raise _protocol(TIMELINE_OPERATION, "'meta' is missing or not an object")
    if data is None:
        data = []  # Twitter leaves out `data` when there are no tweets
    if not isinstance(data, list):
        raise _protocol(TIMELINE_OPERATION, "'data' is not a list")
    tweets = [_parse_tweet(item) for item in data]
    next_token = meta.get("next_token")
    if next_token is not None and (not isinstance(next_token, str) or not next_token):
        raise _protocol(TIMELINE_OPERATION, "'meta.next_token' is not a non-empty string")
    newest_id = meta.get("newest_id")
    if newest_id is not None:
        newest_id = _parse_id(newest_id, "meta.newest_id")
    elif tweets:
        newest_id = max(t.id for t in tweets)
    return TimelinePage(
        tweets=tweets,
        next_token=next_token,
        newest_id=newest_id,
        rate_limit_remaining=_int_header(headers, "x-rate-limit-remaining"),
        rate_limit_reset=_rate_limit_reset(headers),
    )


def _parse_tweet(item: Any) -> TwitterTweet:
    if not isinstance(item, dict):
        raise _protocol(TIMELINE_OPERATION, "a tweet is not an object")
    text = item.get("text")
    if not isinstance(text, str):
        raise _protocol(TIMELINE_OPERATION, "tweet field 'text' is missing or not a string")
    created_raw = item.get("created_at")
    if not isinstance(created_raw, str):
        raise _protocol(TIMELINE_OPERATION, "tweet field 'created_at' is missing or not a string")
    try:
        created_at = datetime.fromisoformat(created_raw)
    except ValueError:
        raise _protocol(TIMELINE_OPERATION, "tweet field 'created_at' is not an ISO 8601 time") from None
    # Twitter always sends "...Z"; a naive time is read as UTC rather than as the worker's zone.
    created_at = created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at.astimezone(UTC)
    lang = item.get("lang")
    if lang is not None and not isinstance(lang, str):
        raise _protocol(TIMELINE_OPERATION, "tweet field 'lang' is not a string")
    public_metrics = item.get("public_metrics")
    if public_metrics is not None and not isinstance(public_metrics, dict):
        raise _protocol(TIMELINE_OPERATION, "tweet field 'public_metrics' is not an object")
    entities = item.get("entities")
    if entities is not None and not isinstance(entities, dict):
        raise _protocol(TIMELINE_OPERATION, "tweet field 'entities' is not an object")
    return TwitterTweet(
        id=_parse_id(item.get("id"), "tweet id"),
        text=text,
        created_at=created_at,
        lang=lang,
        public_metrics=public_metrics,
        entities=entities,
    )


def _parse_id(value: Any, what: str) -> int:
    # Ids are strings in API v2 (they exceed 2**53); accept an integer too, never a bool or a float.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _protocol(TIMELINE_OPERATION, f"{what} is missing or not a numeric id")


def _parse_token_pair(body: dict[str, Any]) -> TokenPair:
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise _protocol(TOKEN_OPERATION, "'token_type' is missing or not 'bearer'")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise _protocol(TOKEN_OPERATION, "'access_token' is missing or not a string")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise _protocol(TOKEN_OPERATION, "'expires_in' is missing or not a positive integer")
    refresh_token = body.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise _protocol(TOKEN_OPERATION, "'refresh_token' is not a string")
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise _protocol(TOKEN_OPERATION, "'scope' is not a string")
    return TokenPair(
        access_token=access_token, refresh_token=refresh_token, expires_in=expires_in, scope=scope
    )


def _protocol(operation: str, problem: str) -> TwitterProtocolError:
    return TwitterProtocolError(f"Twitter API {operation}: unexpected response, {problem}", status=200)


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _rate_limit_reset(headers: httpx.Headers) -> datetime | None:
    epoch = _int_header(headers, "x-rate-limit-reset")
    if epoch is None or epoch <= 0:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _retry_after_header(headers: httpx.Headers) -> datetime | None:
    seconds = _int_header(headers, "retry-after")
    if seconds is None or seconds < 0:
        return None
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _error_code_suffix(response: httpx.Response) -> str:
    """`: <code>` from an OAuth error (`error`) or a problem document (`title`), when it is a short
    identifier; descriptions are left out in case they echo a submitted value."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    for field in ("error", "title"):
        code = body.get(field)
        if isinstance(code, str) and _SAFE_ERROR_CODE.match(code):
            return f": {code}"
    return ""
