"""The local analyser: VADER's sentiment, a small keyword list for risk flags, hashtags as topics."""

from __future__ import annotations

import socket

import pytest

from repazoo_assets.lib.analysis.base import RISK_FLAGS, AnalysisResult, Analyser, BatchOutcome, TweetInput
from repazoo_assets.lib.analysis.vader import VaderAnalyser, hashtags


@pytest.fixture(scope="module")
def vader() -> VaderAnalyser:
    return VaderAnalyser()


def test_the_outcome_has_the_shape_of_claudes_with_no_requests_and_no_tokens(vader):
    inputs = [TweetInput(1, "Great day at the beach #summer"), TweetInput(2, "")]
    outcome = vader.analyse(inputs)

    assert isinstance(outcome, BatchOutcome)
    assert isinstance(vader, Analyser)
    assert outcome.model == vader.model == "vader-lexicon"
    assert [r.tweet_id for r in outcome.results] == [1, 2]
    assert all(isinstance(r, AnalysisResult) for r in outcome.results)
    assert outcome.failures == []
    assert (outcome.requests, outcome.input_tokens, outcome.output_tokens) == (0, 0, 0)
    assert (outcome.cache_read_input_tokens, outcome.cache_creation_input_tokens) == (0, 0)
    result = outcome.results[0]
    assert isinstance(result.score, float) and -1.0 <= result.score <= 1.0
    assert isinstance(result.risk_flags, tuple) and isinstance(result.topics, tuple)
    assert outcome.results[1] == AnalysisResult(2, "neutral", 0.0, (), ())


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("I absolutely love this, what a wonderful team!!! :)", "positive"),
        ("This is terrible. Worst update ever, I hate it.", "negative"),
        ("The meeting is on Tuesday at the main office.", "neutral"),
        ("Not good at all.", "negative"),
    ],
)
def test_obvious_sentiments(vader, text, sentiment):
    (result,) = vader.analyse([TweetInput(7, text)]).results
    assert result.sentiment == sentiment
    if sentiment == "positive":
        assert result.score >= 0.5
    elif sentiment == "negative":
        assert result.score <= -0.3
    else:
        assert result.score == 0.0


def test_hashtags_are_the_topics_lowercased_once_each_in_order(vader):
    text = "Shipping #Launch2025 with #AI, more #ai and #launch2025! C# &#39; #2024 ##x"
    (result,) = vader.analyse([TweetInput(3, text)]).results
    assert result.topics == ("launch2025", "ai")
    assert hashtags("#Café au lait #über") == ("café", "über")


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("What the fuck is this update", ("profanity",)),
        ("I will kill you if you touch my bike", ("violence",)),
        ("shut up, you idiot", ("harassment",)),
        ("This is bullshit, you morons", ("profanity", "harassment")),
        ("The team is killing it this season, we killed it!", ()),
        ("Scunthorpe and the class assembly were fine", ()),
    ],
)
def test_risk_flags_come_from_a_small_keyword_list(vader, text, flags):
    (result,) = vader.analyse([TweetInput(4, text)]).results
    assert result.risk_flags == flags
    assert set(result.risk_flags) <= set(RISK_FLAGS)


def test_it_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the local analyser opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    outcome = VaderAnalyser().analyse([TweetInput(5, "Loving it #local")])
    assert outcome.results[0].sentiment == "positive"
