"""TwitterClient against the fake Twitter API v2 server over real HTTP (no mocks).

Backoff values are tiny so the retry tests take milliseconds; the tokens and the client secret are
distinctive strings so the "never in a message" checks can search every exception raised.
"""

from __future__ import annotations

import base64
import pickle
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from repazoo_assets.lib.twitter import (
    TimelinePage,
    TokenPair,
    TwitterClient,
    TwitterError,
    TwitterProtocolError,
    TwitterRateLimited,
    TwitterServerError,
    TwitterTweet,
    TwitterUnauthorized,
)
from repazoo_assets_tests.fakes.twitter_server import FakeTwitterServer, fake_tweet

CLIENT_ID = "repazoo-test-client"
CLIENT_SECRET = "cs-SECRET-do-not-leak-7f3a"
USER = "1400000000000000042"
SECRET_TEXT = "private words of the user"


@pytest.fixture
def server() -> Iterator[FakeTwitterServer]:
    with FakeTwitterServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as srv:
        yield srv


class Counter:
    """A before_request hook that counts calls, optionally raising instead."""

    def __init__(self, exc: Exception | None = None) -> None:
        self.calls = 0
        self.exc = exc

    def __call__(self) -> None:
        self.calls += 1
        if self.exc is not None:
            raise self.exc


@pytest.fixture
def make_client(server: FakeTwitterServer) -> Iterator[Callable[..., TwitterClient]]:
    made: list[TwitterClient] = []

    def make(**kwargs) -> TwitterClient:
        options = {"backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 4, "timeout": 5.0}
        options.update(kwargs)
        base_url = options.pop("base_url", server.base_url)
        client = TwitterClient(base_url, CLIENT_ID, CLIENT_SECRET, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _timeline_requests(server: FakeTwitterServer):
    return [r for r in server.requests if r.path == f"/2/users/{USER}/tweets"]


def _leaks(exc: BaseException, *secrets: str) -> list[str]:
    """The secrets that appear in the exception's message, repr or full formatted traceback
    (chained causes included)."""
    text = str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
    return [s for s in secrets if s and s in text]


# --- timeline ---------------------------------------------------------------------------------------
def test_page_is_parsed_into_typed_tweets(server, make_client) -> None:
    created = datetime(2024, 3, 5, 14, 30, 15, tzinfo=UTC)
    server.add_tweets(
        USER,
        [
            fake_tweet(
                1_700_000_000_000_000_002,
                "second",
                created_at=created,
                lang="fr",
                public_metrics={"retweet_count": 3, "reply_count": 1, "like_count": 9, "quote_count": 0},
                entities={"hashtags": [{"start": 0, "end": 4, "tag": "tag"}]},
            ),
            fake_tweet(1_700_000_000_000_000_001, "first", lang=None),
        ],
    )
    access, _ = server.issue_tokens()
    client = make_client()
    page = client.user_tweets_page(USER, access)

    assert isinstance(page, TimelinePage)
    assert [t.id for t in page.tweets] == [1_700_000_000_000_000_002, 1_700_000_000_000_000_001]
    newest = page.tweets[0]
    assert isinstance(newest, TwitterTweet)
    assert newest.text == "second"
    assert newest.created_at == created and newest.created_at.tzinfo is not None
    assert newest.created_at.utcoffset() == timedelta(0)
    assert newest.lang == "fr"
    assert newest.public_metrics == {"retweet_count": 3, "reply_count": 1, "like_count": 9, "quote_count": 0}
    assert newest.entities == {"hashtags": [{"start": 0, "end": 4, "tag": "tag"}]}
    assert page.tweets[1].lang is None and page.tweets[1].entities is None
    assert page.newest_id == 1_700_000_000_000_000_002
    assert page.next_token is None
    assert page.rate_limit_remaining == 899
    assert isinstance(page.rate_limit_reset, datetime) and page.rate_limit_reset.tzinfo is not None
    assert page.rate_limit_reset > datetime.now(UTC)
    assert client.requests_made == 1
    # Tweet text is personal data: it stays out of reprs.
    assert "second" not in repr(newest)


def test_request_sends_bearer_token_and_documented_params(server, make_client) -> None:
    server.add_tweets(USER, [fake_tweet(10)])
    access, _ = server.issue_tokens()
    make_client().user_tweets_page(USER, access, max_results=50)
    (request,) = server.requests
    assert request.method == "GET"
    assert request.path == f"/2/users/{USER}/tweets"
    assert request.headers["authorization"] == f"Bearer {access}"
    assert request.query == {"max_results": "50", "tweet.fields": "created_at,lang,public_metrics,entities"}


def test_empty_timeline_has_no_data_key(server, make_client) -> None:
    server.add_user(USER)
    access, _ = server.issue_tokens()
    page = make_client().user_tweets_page(USER, access)
    assert page.tweets == [] and page.next_token is None and page.newest_id is None


def test_since_id_is_sent_and_honoured(server, make_client) -> None:
    server.add_tweets(USER, [fake_tweet(i) for i in range(1, 21)])
    access, _ = server.issue_tokens()
    page = make_client().user_tweets_page(USER, access, since_id=15)
    assert [t.id for t in page.tweets] == [20, 19, 18, 17, 16]
    assert server.requests[-1].query["since_id"] == "15"


def test_pagination_walks_the_whole_timeline(server, make_client) -> None:
    server.add_tweets(USER, [fake_tweet(i) for i in range(1, 13)])
    access, _ = server.issue_tokens()
    client = make_client()
    ids: list[int] = []
    tokens_sent: list[str | None] = []
    token = None
    while True:
        page = client.user_tweets_page(USER, access, pagination_token=token, max_results=5)
        ids.extend(t.id for t in page.tweets)
        tokens_sent.append(server.requests[-1].query.get("pagination_token"))
        if page.next_token is None:
            break
        token = page.next_token
    assert ids == list(range(12, 0, -1))
    assert client.requests_made == 3
    assert tokens_sent[0] is None and all(tokens_sent[1:])
    assert all(r.query["max_results"] == "5" for r in server.requests)


def test_pagination_with_since_id(server, make_client) -> None:
    server.add_tweets(USER, [fake_tweet(i) for i in range(1, 31)])
    access, _ = server.issue_tokens()
    client = make_client()
    first = client.user_tweets_page(USER, access, since_id=22, max_results=5)
    assert [t.id for t in first.tweets] == [30, 29, 28, 27, 26] and first.next_token
    second = client.user_tweets_page(
        USER, access, since_id=22, pagination_token=first.next_token, max_results=5
    )
    assert [t.id for t in second.tweets] == [25, 24, 23] and second.next_token is None
    assert server.requests[-1].query["since_id"] == "22"


@pytest.mark.parametrize("bad", [0, 4, 101, -1, True, 10.0, "10"])
def test_max_results_outside_5_to_100_is_refused_before_any_request(server, make_client, bad) -> None:
    before = Counter()
    with pytest.raises(ValueError, match="max_results"):
        make_client(before_request=before).user_tweets_page(USER, "token", max_results=bad)
    assert server.requests == [] and before.calls == 0


@pytest.mark.parametrize("good", [5, 100])
def test_max_results_bounds_are_accepted(server, make_client, good) -> None:
    server.add_user(USER)
    access, _ = server.issue_tokens()
    make_client().user_tweets_page(USER, access, max_results=good)
    assert server.requests[-1].query["max_results"] == str(good)


def test_non_numeric_user_id_is_refused(server, make_client) -> None:
    with pytest.raises(ValueError):
        make_client().user_tweets_page("../oauth2/token", "token")
    assert server.requests == []


def test_unknown_user_is_a_twitter_error(server, make_client) -> None:
    access, _ = server.issue_tokens()
    with pytest.raises(TwitterError, match="Not Found Error") as caught:
        make_client().user_tweets_page("999", access)
    assert type(caught.value) is TwitterError


# --- token refresh ------------------------------------------------------------------------------------
def test_refresh_sends_form_body_and_basic_auth_and_parses_the_pair(server, make_client) -> None:
    _, refresh = server.issue_tokens()
    client = make_client()
    pair = client.refresh(refresh)

    (request,) = server.requests
    assert request.method == "POST" and request.path == "/2/oauth2/token"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert request.form == {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": CLIENT_ID}
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"

    assert isinstance(pair, TokenPair)
    assert server.is_valid_access_token(pair.access_token)
    assert pair.refresh_token and pair.refresh_token != refresh
    assert pair.expires_in == 7200
    assert pair.scope == "tweet.read users.read offline.access"
    assert client.requests_made == 1
    # The new access token works on the timeline.
    server.add_user(USER)
    client.user_tweets_page(USER, pair.access_token)


def test_token_pair_repr_hides_tokens(server, make_client) -> None:
    _, refresh = server.issue_tokens()
    pair = make_client().refresh(refresh)
    for text in (repr(pair), str(pair)):
        assert pair.access_token not in text and pair.refresh_token not in text
        assert "7200" in text


def test_refresh_token_rotates(server, make_client) -> None:
    _, first = server.issue_tokens()
    client = make_client()
    pair = client.refresh(first)
    assert not server.is_valid_refresh_token(first)
    assert server.is_valid_refresh_token(pair.refresh_token)
    # The spent token is refused (400 invalid_request), not retried.
    with pytest.raises(TwitterError) as caught:
        client.refresh(first)
    assert caught.value.status == 400 and "invalid_request" in str(caught.value)
    assert client.requests_made == 2
    # The rotated one works, once.
    again = client.refresh(pair.refresh_token)
    assert again.refresh_token not in (first, pair.refresh_token)


def test_wrong_client_secret_is_unauthorized(server) -> None:
    _, refresh = server.issue_tokens()
    with TwitterClient(server.base_url, CLIENT_ID, "wrong-secret-xyz", backoff_initial=0.01) as client:
        with pytest.raises(TwitterUnauthorized) as caught:
            client.refresh(refresh)
    assert client.requests_made == 1
    assert not _leaks(caught.value, "wrong-secret-xyz", refresh)


# --- errors -------------------------------------------------------------------------------------------
def test_expired_token_is_unauthorized_without_retry(server, make_client) -> None:
    server.add_user(USER)
    access, _ = server.issue_tokens()
    server.expire(access)
    before = Counter()
    client = make_client(before_request=before)
    with pytest.raises(TwitterUnauthorized) as caught:
        client.user_tweets_page(USER, access)
    assert caught.value.status == 401
    assert client.requests_made == 1 and before.calls == 1 and len(server.requests) == 1


def test_unknown_token_is_unauthorized(server, make_client) -> None:
    server.add_user(USER)
    with pytest.raises(TwitterUnauthorized):
        make_client().user_tweets_page(USER, "not-a-token")


def test_429_raises_rate_limited_with_reset_from_header_and_no_retry(server, make_client) -> None:
    server.add_user(USER)
    reset_epoch = int(time.time()) + 600
    server.set_rate_limit(2, reset_epoch)
    access, _ = server.issue_tokens()
    before = Counter()
    client = make_client(before_request=before)
    client.user_tweets_page(USER, access)
    page = client.user_tweets_page(USER, access)
    assert page.rate_limit_remaining == 0
    assert page.rate_limit_reset == datetime.fromtimestamp(reset_epoch, UTC)
    started = time.monotonic()
    with pytest.raises(TwitterRateLimited) as caught:
        client.user_tweets_page(USER, access)
    assert time.monotonic() - started < 1  # raised at once, no waiting for the window
    exc = caught.value
    assert exc.status == 429
    assert exc.reset_at == datetime.fromtimestamp(reset_epoch, UTC)
    assert 590 < exc.retry_after() <= 600
    assert exc.retry_after(now=exc.reset_at - timedelta(seconds=30)) == 30
    assert exc.retry_after(now=exc.reset_at + timedelta(seconds=30)) == 0
    assert client.requests_made == 3 and before.calls == 3 and len(server.requests) == 3
    # Picklable with its reset time.
    assert pickle.loads(pickle.dumps(exc)).reset_at == exc.reset_at


def test_forced_429_uses_the_reset_header(server, make_client) -> None:
    reset_epoch = int(time.time()) + 120
    server.force_next(429, headers={"x-rate-limit-reset": str(reset_epoch)})
    with pytest.raises(TwitterRateLimited) as caught:
        make_client().refresh("rt-whatever")
    assert caught.value.reset_at == datetime.fromtimestamp(reset_epoch, UTC)
    assert len(server.requests) == 1


def test_500_twice_then_200_succeeds_after_backoff(server, make_client) -> None:
    server.add_tweets(USER, [fake_tweet(7)])
    access, _ = server.issue_tokens()
    server.force_next(500, times=2)
    before = Counter()
    client = make_client(before_request=before, backoff_initial=0.02, backoff_max=0.1)
    started = time.monotonic()
    page = client.user_tweets_page(USER, access)
    elapsed = time.monotonic() - started
    assert [t.id for t in page.tweets] == [7]
    assert client.requests_made == 3 and before.calls == 3
    assert len(_timeline_requests(server)) == 3
    assert elapsed >= 0.02 + 0.04  # two backoff sleeps, exponential
    assert elapsed < 2


def test_persistent_500_raises_server_error_after_max_attempts(server, make_client) -> None:
    server.force_next(503, times=10)
    before = Counter()
    client = make_client(before_request=before, max_attempts=3)
    with pytest.raises(TwitterServerError) as caught:
        client.user_tweets_page(USER, "some-access-token")
    assert caught.value.status == 503
    assert "3 attempt" in str(caught.value)
    assert client.requests_made == 3 and before.calls == 3 and len(server.requests) == 3


def test_network_errors_are_retried_then_server_error(make_client) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = Counter()
    client = make_client(base_url=f"http://127.0.0.1:{port}", before_request=before, max_attempts=3)
    with pytest.raises(TwitterServerError) as caught:
        client.refresh("rt-token-value-1234")
    assert caught.value.status is None and "network error" in str(caught.value)
    assert client.requests_made == 3 and before.calls == 3


def test_timeout_is_retried(server, make_client) -> None:
    server.add_tweets(USER, [fake_tweet(3)])
    access, _ = server.issue_tokens()
    server.force_next(200, delay=0.5)
    client = make_client(timeout=0.15)
    page = client.user_tweets_page(USER, access)
    assert [t.id for t in page.tweets] == [3]
    assert client.requests_made == 2


def test_other_4xx_names_the_status_without_retry(server, make_client) -> None:
    server.force_next(403, body={"title": "Forbidden", "detail": f"echo {SECRET_TEXT}"})
    client = make_client()
    with pytest.raises(TwitterError) as caught:
        client.user_tweets_page(USER, "access-xyz")
    assert type(caught.value) is TwitterError
    assert caught.value.status == 403 and "403" in str(caught.value) and "Forbidden" in str(caught.value)
    assert SECRET_TEXT not in str(caught.value)
    assert client.requests_made == 1


def test_before_request_raising_stops_the_request(server, make_client) -> None:
    class NoPermit(Exception):
        pass

    before = Counter(NoPermit("no permit"))
    client = make_client(before_request=before)
    with pytest.raises(NoPermit):
        client.user_tweets_page(USER, "access")
    with pytest.raises(NoPermit):
        client.refresh("refresh")
    assert server.requests == []
    assert before.calls == 2 and client.requests_made == 0


def test_before_request_raising_during_retries_stops_them(server, make_client) -> None:
    class NoPermit(Exception):
        pass

    calls = {"n": 0}

    def permit() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise NoPermit()

    server.force_next(500, times=5)
    client = make_client(before_request=permit)
    with pytest.raises(NoPermit):
        client.user_tweets_page(USER, "access")
    assert len(server.requests) == 1 and client.requests_made == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [',
        b"<html>bad gateway</html>",
        b"[]",
        b'{"data": [{"id": "1", "text": "x"}], "meta": {"result_count": 1}}',  # created_at missing
        b'{"data": [{"id": "x1", "text": "x", "created_at": "2024-01-01T00:00:00.000Z"}], "meta": {}}',
        b'{"data": {"id": "1"}, "meta": {}}',
        b'{"data": []}',  # no meta
    ],
)
def test_malformed_timeline_is_a_protocol_error(server, make_client, body) -> None:
    server.force_next(200, body=body)
    client = make_client()
    with pytest.raises(TwitterProtocolError):
        client.user_tweets_page(USER, "access")
    assert client.requests_made == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"token_type": "bearer", "expires_in": 7200}',  # no access_token
        b'{"token_type": "bearer", "access_token": "a"}',  # no expires_in
        b'{"token_type": "mac", "access_token": "a", "expires_in": 1}',
    ],
)
def test_malformed_token_response_is_a_protocol_error(server, make_client, body) -> None:
    server.force_next(200, body=body)
    with pytest.raises(TwitterProtocolError):
        make_client().refresh("refresh")


def test_no_token_secret_or_text_in_any_error(server, make_client) -> None:
    server.add_tweets(USER, [fake_tweet(5, SECRET_TEXT)])
    access, refresh = server.issue_tokens()
    client = make_client(max_attempts=2)
    assert CLIENT_SECRET not in repr(client)
    checked: list[type[BaseException]] = []

    def expect(exc_type: type[BaseException], force: tuple, call: Callable[[], object]) -> None:
        server.force_next(*force[:2], **(force[2] if len(force) > 2 else {}))
        with pytest.raises(exc_type) as caught:
            call()
        leaked = _leaks(caught.value, access, refresh, CLIENT_SECRET, SECRET_TEXT)
        assert not leaked, f"{type(caught.value).__name__} leaks {leaked}"
        checked.append(type(caught.value))

    timeline = lambda: client.user_tweets_page(USER, access)  # noqa: E731
    refresh_call = lambda: client.refresh(refresh)  # noqa: E731
    bad_text_body = {"data": [{"id": "5", "text": SECRET_TEXT, "created_at": "never"}], "meta": {}}
    expect(TwitterUnauthorized, (401, 1), timeline)
    expect(TwitterRateLimited, (429, 1), timeline)
    expect(TwitterServerError, (500, 2), timeline)
    expect(TwitterServerError, (502, 2), refresh_call)
    expect(TwitterProtocolError, (200, 1, {"body": bad_text_body}), timeline)
    expect(TwitterProtocolError, (200, 1, {"body": f'{{"access_token": "{access}"'}), refresh_call)
    expect(
        TwitterError,
        (400, 1, {"body": {"error": "invalid_request", "error_description": refresh}}),
        refresh_call,
    )
    expect(
        TwitterUnauthorized,
        (401, 1, {"body": {"error": "unauthorized_client", "x": CLIENT_SECRET}}),
        refresh_call,
    )
    assert len(checked) == 8
