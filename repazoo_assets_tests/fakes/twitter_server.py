"""A small real HTTP server that behaves like the two Twitter API v2 endpoints the pipeline uses:

* `GET /2/users/:id/tweets` (Bearer user token): timelines newest first, `max_results` (5-100,
  default 10), `since_id`, `pagination_token` / `meta.next_token`, `tweet.fields`, per-token
  rate-limit budget with `x-rate-limit-*` headers and 429 when it is spent, 401 for an unknown or
  expired token, 200 with only `errors` for an unknown user (as Twitter does).
* `POST /2/oauth2/token` (`grant_type=refresh_token`, HTTP basic client auth): rotating refresh
  tokens, i.e. each refresh returns a new refresh token and invalidates the one used.

It runs `http.server.ThreadingHTTPServer` on 127.0.0.1 with an ephemeral port in a background
thread, so the client under test goes through real sockets, headers and bodies. Every request is
recorded (`requests`) and `force_next` makes the next N answers a chosen status/body (500, 429,
malformed JSON, a slow answer) whatever the request.

    with FakeTwitterServer() as server:
        server.add_tweets("42", [fake_tweet(1, "hi")])
        access, refresh = server.issue_tokens()
        client = TwitterClient(server.base_url, server.client_id, server.client_secret)
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from repazoo_assets_tests.fakes.loopback import LoopbackServer
from urllib.parse import parse_qsl, urlsplit

DEFAULT_SCOPE = "tweet.read users.read offline.access"
RATE_LIMIT_WINDOW_SECONDS = 15 * 60
TIMELINE_PREFIX = "/2/users/"
TOKEN_PATH = "/2/oauth2/token"


def fake_tweet(
    tweet_id: int,
    text: str = "a tweet",
    *,
    created_at: datetime | None = None,
    lang: str | None = "en",
    public_metrics: dict | None = None,
    entities: dict | None = None,
) -> dict[str, Any]:
    """A tweet object as the API returns it (all fields; the server drops unrequested ones)."""
    created_at = created_at or datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=tweet_id % 100_000)
    tweet: dict[str, Any] = {
        "id": str(tweet_id),
        "text": text,
        "edit_history_tweet_ids": [str(tweet_id)],
        "created_at": created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "public_metrics": (
            public_metrics
            if public_metrics is not None
            else {"retweet_count": 0, "reply_count": 0, "like_count": 1, "quote_count": 0}
        ),
    }
    if lang is not None:
        tweet["lang"] = lang
    if entities is not None:
        tweet["entities"] = entities
    return tweet


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    form: dict[str, str]  # the parsed body when it is application/x-www-form-urlencoded
    body: bytes


@dataclass
class _AccessToken:
    expires_at: float
    scope: str
    remaining: int
    reset_epoch: int


@dataclass
class _Forced:
    status: int
    body: bytes
    headers: dict[str, str]
    delay: float


@dataclass
class _PageCursor:
    twitter_user_id: str
    since_id: int | None
    offset: int


@dataclass
class _State:
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    access_tokens: dict[str, _AccessToken] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    cursors: dict[str, _PageCursor] = field(default_factory=dict)
    forced: deque[_Forced] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)


class FakeTwitterServer(LoopbackServer):
    """See the module docstring. All methods are thread-safe; the handler threads share `_state`."""

    @property
    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler  # defined below

    name = "fake-twitter"

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        access_token_ttl: int = 7200,
        rate_limit: int = 900,
        rate_limit_reset: int | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_ttl = access_token_ttl
        self.rate_limit = rate_limit
        # Epoch second at which tokens' budgets refill; None: 15 minutes after a token is issued.
        self.rate_limit_reset = rate_limit_reset
        self._state = _State()
        self._lock = threading.Lock()


    # --- set-up -----------------------------------------------------------------------------------
    def add_tweets(self, twitter_user_id: str, tweets: Iterable[dict[str, Any]]) -> None:
        """Add tweets (see fake_tweet) to a user's timeline, creating the user; kept newest first."""
        with self._lock:
            timeline = self._state.timelines.setdefault(twitter_user_id, [])
            timeline.extend(tweets)
            timeline.sort(key=lambda t: int(t["id"]), reverse=True)

    def add_user(self, twitter_user_id: str) -> None:
        """A user with an empty timeline (the API answers without a `data` key)."""
        self.add_tweets(twitter_user_id, [])

    def issue_tokens(
        self, *, expires_in: int | None = None, scope: str = DEFAULT_SCOPE, with_refresh: bool = True
    ) -> tuple[str, str | None]:
        """A new (access token, refresh token) pair, as the authorization-code flow would give."""
        with self._lock:
            return self._issue(expires_in, scope, with_refresh)

    def expire(self, access_token: str) -> None:
        with self._lock:
            self._state.access_tokens[access_token].expires_at = time.time() - 1

    def set_rate_limit(self, budget: int, reset_epoch: int | None = None) -> None:
        """Give every token (existing and future) `budget` requests until `reset_epoch`."""
        with self._lock:
            self.rate_limit = budget
            self.rate_limit_reset = reset_epoch
            for token in self._state.access_tokens.values():
                token.remaining = budget
                token.reset_epoch = self._reset_epoch()

    def force_next(
        self,
        status: int,
        times: int = 1,
        *,
        body: bytes | str | dict | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next `times` requests, whatever they are, get this answer (after `delay` seconds).
        A 429 gets rate-limit headers (reset = rate_limit_reset or now + 15 min) unless given."""
        if body is None:
            body = {"title": f"Forced {status}", "type": "about:blank", "status": status}
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        forced_headers = {"content-type": "application/json; charset=utf-8"}
        if status == 429:
            forced_headers.update(
                {
                    "x-rate-limit-limit": str(self.rate_limit),
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(self._reset_epoch()),
                }
            )
        forced_headers.update({k.lower(): v for k, v in (headers or {}).items()})
        with self._lock:
            for _ in range(times):
                self._state.forced.append(_Forced(status, body, forced_headers, delay))

    # --- inspection -------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._state.requests.clear()

    def is_valid_access_token(self, token: str) -> bool:
        with self._lock:
            entry = self._state.access_tokens.get(token)
            return entry is not None and entry.expires_at > time.time()

    def is_valid_refresh_token(self, token: str) -> bool:
        with self._lock:
            return token in self._state.refresh_tokens

    def remaining(self, access_token: str) -> int:
        with self._lock:
            return self._state.access_tokens[access_token].remaining

    # --- behaviour (called from handler threads) --------------------------------------------------
    def _reset_epoch(self) -> int:
        if self.rate_limit_reset is not None:
            return self.rate_limit_reset
        return int(time.time()) + RATE_LIMIT_WINDOW_SECONDS

    def _issue(self, expires_in: int | None, scope: str, with_refresh: bool) -> tuple[str, str | None]:
        access = "at-" + secrets.token_urlsafe(24)
        ttl = self.access_token_ttl if expires_in is None else expires_in
        self._state.access_tokens[access] = _AccessToken(
            expires_at=time.time() + ttl,
            scope=scope,
            remaining=self.rate_limit,
            reset_epoch=self._reset_epoch(),
        )
        refresh = None
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(24)
            self._state.refresh_tokens.add(refresh)
        return access, refresh

    def _handle(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes, float]:
        with self._lock:
            self._state.requests.append(request)
            if self._state.forced:
                forced = self._state.forced.popleft()
                return forced.status, forced.headers, forced.body, forced.delay
            if request.method == "POST" and request.path == TOKEN_PATH:
                return (*self._token(request), 0.0)
            if (
                request.method == "GET"
                and request.path.startswith(TIMELINE_PREFIX)
                and request.path.endswith("/tweets")
            ):
                user_id = request.path[len(TIMELINE_PREFIX) : -len("/tweets")]
                if user_id.isdigit():
                    return (*self._timeline(user_id, request), 0.0)
            return (*_json(404, {"title": "Not Found Error", "type": "about:blank", "status": 404}), 0.0)

    def _token(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return _json(
                401,
                {"error": "unauthorized_client", "error_description": "Missing valid authorization header"},
            )
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _json(400, {"error": "invalid_request", "error_description": "Unsupported content type."})
        form = request.form
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "invalid_request", "error_description": "Unsupported grant_type."})
        if form.get("client_id", self.client_id) != self.client_id:
            return _json(400, {"error": "invalid_request", "error_description": "client_id mismatch."})
        old = form.get("refresh_token", "")
        if old not in self._state.refresh_tokens:
            return _json(
                400,
                {"error": "invalid_request", "error_description": "Value passed for the token was invalid."},
            )
        self._state.refresh_tokens.discard(old)  # rotation: a refresh token works once
        access, refresh = self._issue(None, DEFAULT_SCOPE, True)
        return _json(
            200,
            {
                "token_type": "bearer",
                "expires_in": self.access_token_ttl,
                "access_token": access,
                "scope": DEFAULT_SCOPE,
                "refresh_token": refresh,
            },
        )

    def _timeline(self, user_id: str, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        auth = request.headers.get("authorization", "")
        token = self._state.access_tokens.get(auth[len("Bearer ") :]) if auth.startswith("Bearer ") else None
        if token is None or token.expires_at <= time.time():
            return _json(
                401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
            )
        now = time.time()
        if now >= token.reset_epoch:
            token.remaining = self.rate_limit
            token.reset_epoch = int(now) + RATE_LIMIT_WINDOW_SECONDS  # the next window
        limit_headers = {
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-reset": str(token.reset_epoch),
        }
        if token.remaining <= 0:
            limit_headers["x-rate-limit-remaining"] = "0"
            return _json(
                429,
                {
                    "title": "Too Many Requests",
                    "detail": "Too Many Requests",
                    "type": "about:blank",
                    "status": 429,
                },
                limit_headers,
            )
        token.remaining -= 1
        limit_headers["x-rate-limit-remaining"] = str(token.remaining)

        query = request.query
        raw_max = query.get("max_results", "10")
        if not raw_max.isdigit() or not 5 <= int(raw_max) <= 100:
            return _json(
                400,
                {
                    "errors": [
                        {
                            "parameters": {"max_results": [raw_max]},
                            "message": f"The `max_results` query parameter value [{raw_max}] is not "
                            "between 5 and 100",
                        }
                    ],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
                limit_headers,
            )
        max_results = int(raw_max)
        since_id = int(query["since_id"]) if query.get("since_id", "").isdigit() else None

        if user_id not in self._state.timelines:
            return _json(
                200,
                {
                    "errors": [
                        {
                            "value": user_id,
                            "detail": f"Could not find user with id: [{user_id}].",
                            "title": "Not Found Error",
                            "resource_type": "user",
                            "parameter": "id",
                            "resource_id": user_id,
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                },
                limit_headers,
            )

        offset = 0
        if "pagination_token" in query:
            cursor = self._state.cursors.get(query["pagination_token"])
            if cursor is None or cursor.twitter_user_id != user_id or cursor.since_id != since_id:
                return _json(
                    400,
                    {
                        "title": "Invalid Request",
                        "detail": "The `pagination_token` query parameter is invalid.",
                    },
                    limit_headers,
                )
            offset = cursor.offset

        timeline = self._state.timelines[user_id]
        matching = [t for t in timeline if since_id is None or int(t["id"]) > since_id]
        page = matching[offset : offset + max_results]
        wanted = set(filter(None, query.get("tweet.fields", "").split(",")))
        data = [
            {k: v for k, v in t.items() if k in ("id", "text", "edit_history_tweet_ids") or k in wanted}
            for t in page
        ]

        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta["newest_id"] = data[0]["id"]
            meta["oldest_id"] = data[-1]["id"]
        if offset + max_results < len(matching):
            next_token = "pt" + secrets.token_hex(8)
            self._state.cursors[next_token] = _PageCursor(user_id, since_id, offset + max_results)
            meta["next_token"] = next_token
        body: dict[str, Any] = {"meta": meta}
        if data:  # like Twitter: no `data` key at all when nothing matched
            body["data"] = data
        return _json(200, body, limit_headers)


def _json(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"content-type": "application/json; charset=utf-8", **(headers or {})},
        json.dumps(body).encode(),
    )


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, like the real API; every answer carries Content-Length.
    protocol_version = "HTTP/1.1"
    fake: FakeTwitterServer  # set on the subclass made in start()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        form: dict[str, str] = {}
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            form=form,
            body=body,
        )
        status, response_headers, payload, delay = self.fake._handle(request)
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            for name, value in response_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass
