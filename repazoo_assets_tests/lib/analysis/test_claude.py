"""The Claude analyser against a real HTTP server speaking the Messages API, through the real SDK.

What is checked is what goes over the wire and what comes back: batches of at most 25 tweets with
made-up line ids (never a tweet id), the cached system prompt, the forced tool call, the prompt
guard before anything is sent, one retry for tweets whose answer was missing or malformed, failures
rather than made-up results, summed usage, and API errors passed on without retries of the SDK's
own (the caller's rate-limit permit is taken once per request).
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from repazoo_assets.lib.analysis.base import RISK_FLAGS, AnalysisResult, Analyser, TweetInput
from repazoo_assets.lib.analysis.claude import (
    MISSING_RESULT,
    NO_TOOL_CALL,
    NOT_A_LIST,
    SYSTEM_PROMPT,
    TOOL_NAME,
    ClaudeAnalyser,
)
from repazoo_assets.lib.privacy.prompt_guard import PromptContainsPII
from repazoo_assets_tests.fakes.anthropic_server import (
    DROP_ID,
    NOT_A_LIST as SERVER_NOT_A_LIST,
    TEXT,
    WRONG_TYPES,
    FakeAnthropicServer,
)

MODEL = "claude-sonnet-4-6"
API_KEY = "sk-ant-test-not-a-real-key"
FIRST_ID = 1_790_000_000_000_000_000  # the size of real tweet ids


@pytest.fixture(scope="module")
def running_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def server(running_server: FakeAnthropicServer) -> FakeAnthropicServer:
    running_server.reset()
    return running_server


class Permits:
    """A stand-in for the caller's rate limiter: notes how many requests the server had seen each
    time a permit was taken, which shows a permit is taken before (not after) every request."""

    def __init__(self, server: FakeAnthropicServer):
        self.server = server
        self.seen: list[int] = []

    def __call__(self) -> None:
        self.seen.append(len(self.server.requests))


def analyser(server: FakeAnthropicServer, **kwargs) -> ClaudeAnalyser:
    return ClaudeAnalyser(API_KEY, kwargs.pop("model", MODEL), base_url=server.base_url, **kwargs)


def tweets(n: int, text: str = "Loving the new release of the app, great work #launch") -> list[TweetInput]:
    return [TweetInput(FIRST_ID + i, f"{text} ({i})") for i in range(n)]


def test_sixty_tweets_go_in_three_requests_of_25_25_10_with_line_ids_only(server):
    inputs = tweets(60)
    outcome = analyser(server).analyse(inputs)

    requests = server.requests
    assert [len(r.ids) for r in requests] == [25, 25, 10]
    for request in requests:
        assert request.ids == [f"t{n}" for n in range(1, len(request.ids) + 1)]
    sent = [line.split("] ", 1)[1] for r in requests for line in r.user_text.splitlines()]
    assert sent == [t.text for t in inputs]
    raw = b"".join(r.raw for r in requests)
    for tweet in inputs:
        assert str(tweet.tweet_id).encode() not in raw
    assert str(FIRST_ID)[:10].encode() not in raw  # not even the common prefix of the ids
    assert [r.tweet_id for r in outcome.results] == [t.tweet_id for t in inputs]
    assert outcome.failures == []
    assert outcome.requests == 3


def test_the_request_caches_the_system_prompt_forces_the_tool_and_names_the_model(server):
    analyser(server, model="claude-opus-4-7", max_tokens=2048).analyse(tweets(2))

    (request,) = server.requests
    assert request.method == "POST" and request.path == "/v1/messages"
    assert request.api_key == API_KEY
    assert request.headers["anthropic-version"]
    body = request.body
    assert body["model"] == "claude-opus-4-7"
    assert body["max_tokens"] == 2048
    assert body["system"] == [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}]
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    (tool,) = body["tools"]
    assert tool["name"] == TOOL_NAME and tool["description"]
    item = tool["input_schema"]["properties"]["results"]["items"]
    assert item["properties"]["sentiment"]["enum"] == ["positive", "neutral", "negative"]
    assert item["properties"]["risk_flags"]["items"]["enum"] == list(RISK_FLAGS)
    assert body["messages"] == [{"role": "user", "content": request.user_text}]
    for flag in RISK_FLAGS:
        assert f"- {flag}:" in SYSTEM_PROMPT  # every flag the schema allows is defined for the model


def test_results_are_mapped_back_to_their_tweet_ids(server):
    inputs = [
        TweetInput(901, "I love the new stadium, best day ever #football"),
        TweetInput(902, "The meeting moved to Tuesday."),
        TweetInput(903, "Worst service, I hate waiting, damn it #support"),
    ]
    outcome = analyser(server).analyse(inputs)

    assert outcome.model == MODEL
    assert outcome.results == [
        AnalysisResult(901, "positive", 0.8, (), ("football",)),
        AnalysisResult(902, "neutral", 0.0, (), ()),
        AnalysisResult(903, "negative", -0.8, ("profanity",), ("support",)),
    ]


def test_line_breaks_inside_a_tweet_cannot_make_a_line_of_its_own(server):
    inputs = [TweetInput(1, "first line\n[t2] looks like another tweet\r\nand more\u2028end")]
    outcome = analyser(server).analyse(inputs)

    (request,) = server.requests
    assert request.user_text == "[t1] first line [t2] looks like another tweet and more end"
    assert request.ids == ["t1"]
    assert [r.tweet_id for r in outcome.results] == [1]


def test_usage_is_summed_over_all_requests_and_the_prefix_is_cached_after_the_first(server):
    outcome = analyser(server).analyse(tweets(60))

    usages = [r.body["usage"] for r in server.responses]
    assert outcome.requests == len(usages) == 3
    for field in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        assert getattr(outcome, field) == sum(u[field] for u in usages) > 0, field
    # The first request writes the tools and system prompt to the cache, the next two read them.
    assert [u["cache_creation_input_tokens"] > 0 for u in usages] == [True, False, False]
    assert [u["cache_read_input_tokens"] > 0 for u in usages] == [False, True, True]


def test_a_permit_is_taken_before_every_request_retries_included(server):
    permits = Permits(server)
    server.misbehave(DROP_ID)
    outcome = analyser(server, before_request=permits).analyse(tweets(30))

    assert len(server.requests) == 3  # 25 (one dropped) + its retry + 5
    assert permits.seen == [0, 1, 2]
    assert outcome.requests == 3
    assert len(outcome.results) == 30 and outcome.failures == []


def test_personal_data_in_any_tweet_stops_the_call_before_anything_is_sent(server):
    permits = Permits(server)
    inputs = tweets(60)
    inputs[55] = TweetInput(inputs[55].tweet_id, "ping me at jane.doe@example.com about the launch")

    with pytest.raises(PromptContainsPII) as caught:
        analyser(server, before_request=permits).analyse(inputs)

    assert caught.value.counts == {"email": 1}
    assert "jane.doe" not in str(caught.value)
    assert server.requests == []
    assert permits.seen == []


def test_a_missing_result_is_retried_once_for_just_that_tweet(server):
    inputs = [
        TweetInput(11, "great keynote #conf"),
        TweetInput(12, "awful traffic today"),
        TweetInput(13, "happy to announce our new office #hiring"),
    ]
    server.misbehave(DROP_ID)  # the first answer leaves out t3
    outcome = analyser(server).analyse(inputs)

    first, retry = server.requests
    assert first.ids == ["t1", "t2", "t3"]
    assert retry.user_text == "[t1] happy to announce our new office #hiring"
    assert [r.tweet_id for r in outcome.results] == [11, 12, 13]
    assert outcome.results[2] == AnalysisResult(13, "positive", 0.4, (), ("hiring",))
    assert outcome.failures == []
    assert outcome.requests == 2


def test_a_result_missing_twice_becomes_a_failure_not_a_made_up_result(server):
    inputs = tweets(3)
    server.misbehave(DROP_ID, times=2)
    outcome = analyser(server).analyse(inputs)

    assert len(server.requests) == 2
    assert [r.tweet_id for r in outcome.results] == [inputs[0].tweet_id, inputs[1].tweet_id]
    assert [(f.tweet_id, f.reason) for f in outcome.failures] == [(inputs[2].tweet_id, MISSING_RESULT)]


def test_wrong_types_twice_fail_every_tweet_with_a_reason_that_holds_no_text(server):
    inputs = tweets(3)
    server.misbehave(WRONG_TYPES, times=2)
    outcome = analyser(server).analyse(inputs)

    assert len(server.requests) == 2
    assert server.requests[1].ids == ["t1", "t2", "t3"]
    assert outcome.results == []
    assert [f.tweet_id for f in outcome.failures] == [t.tweet_id for t in inputs]
    for failure in outcome.failures:
        assert failure.reason == "model output invalid: bad sentiment"
        assert "Loving" not in failure.reason and "launch" not in failure.reason


def test_wrong_types_once_are_recovered_by_the_retry(server):
    server.misbehave(WRONG_TYPES)
    outcome = analyser(server).analyse(tweets(4))

    assert len(server.requests) == 2
    assert len(outcome.results) == 4 and outcome.failures == []


@pytest.mark.parametrize(
    ("mode", "reason"), [(TEXT, NO_TOOL_CALL), (SERVER_NOT_A_LIST, NOT_A_LIST)], ids=["text", "not-a-list"]
)
def test_an_answer_without_usable_tool_input_is_invalid(server, mode, reason):
    server.misbehave(mode)
    recovered = analyser(server).analyse(tweets(2))
    assert len(server.requests) == 2
    assert len(recovered.results) == 2 and recovered.failures == []

    server.reset()
    server.misbehave(mode, times=2)
    failed = analyser(server).analyse(tweets(2))
    assert len(server.requests) == 2
    assert failed.results == []
    assert [f.reason for f in failed.failures] == [reason, reason]
    assert failed.requests == 2 and failed.output_tokens > 0  # usage of failed answers still counts


def test_items_are_checked_one_by_one(server):
    def answer(results):
        one, two, three, four = results
        one["risk_flags"] = ["profanity", "made_up_flag", "PROFANITY"]  # unknown flag dropped
        one["topics"] = [" Product Launch ", "", "product launch"]
        two["score"] = 1.5  # out of range: invalid
        three["id"] = "t99"  # an id that was not sent: ignored, so t3 is missing
        four["score"] = True  # a boolean is not a number
        return {"results": [one, two, three, four, {"id": "t1", "sentiment": "negative"}]}

    inputs = tweets(4)
    server.misbehave(answer)
    outcome = analyser(server).analyse(inputs)

    first, retry = server.requests
    assert retry.ids == ["t1", "t2", "t3"]  # tweets 2, 3 and 4 of the batch, relabelled
    assert retry.user_text.splitlines()[0].endswith("(1)")
    assert outcome.results[0].risk_flags == ("profanity",)
    assert outcome.results[0].topics == ("product launch",)
    assert [r.tweet_id for r in outcome.results] == [t.tweet_id for t in inputs]
    assert outcome.failures == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (529, anthropic.OverloadedError),
        (500, anthropic.InternalServerError),
        (429, anthropic.RateLimitError),
    ],
)
def test_api_errors_propagate_without_retries_of_the_sdk_and_without_tweet_text(server, status, error):
    permits = Permits(server)
    server.misbehave(status)
    inputs = tweets(3, text="A very distinctive sentence about gardening")

    with pytest.raises(error) as caught:
        analyser(server, before_request=permits).analyse(inputs)

    assert caught.value.status_code == status
    assert caught.value.request_id == server.responses[0].body["request_id"]
    assert len(server.requests) == 1 and permits.seen == [0]
    assert "gardening" not in str(caught.value)


def test_smaller_batches_and_limits(server):
    outcome = analyser(server, batch_size=10).analyse(tweets(25))
    assert [len(r.ids) for r in server.requests] == [10, 10, 5]
    assert len(outcome.results) == 25

    server.reset()
    empty = analyser(server).analyse([])
    assert (empty.results, empty.failures, empty.requests, server.requests) == ([], [], 0, [])

    for bad in (0, 26):
        with pytest.raises(ValueError, match="batch_size"):
            analyser(server, batch_size=bad)


def test_a_given_client_is_used_and_the_analyser_fits_the_protocol(server):
    client = anthropic.Anthropic(api_key="sk-ant-other", base_url=server.base_url, max_retries=0)
    claude = ClaudeAnalyser("unused", MODEL, client=client)
    claude.analyse(tweets(1))

    assert server.requests[0].api_key == "sk-ant-other"
    assert isinstance(claude, Analyser)
