"""The local analyser: the VADER sentiment lexicon plus a small keyword list for risk flags.

It runs where there is no Anthropic key (the demo, a laptop, CI): no network, no cost, no quota,
and the same result shape as Claude, so everything downstream runs unchanged. VADER was built for
social-media text (it knows emoticons, capitals, "!!!", "but" and negations), which makes it a fair
baseline for tweets; it is a lexicon, not a model of meaning, so its risk flags are a deliberately
small, literal word list rather than a judgement. Results are stored under the model name
`vader-lexicon`, so they never mix with (and are replaced by a run of) a Claude model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from repazoo_assets.lib.analysis.base import AnalysisResult, BatchOutcome, Sentiment, TweetInput

__all__ = ["POSITIVE_THRESHOLD", "NEGATIVE_THRESHOLD", "RISK_PATTERNS", "VaderAnalyser", "hashtags"]

# The thresholds VADER's authors recommend for the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05

# Literal keywords per flag, whole words only, case-insensitive. Kept small on purpose: each entry
# is unambiguous enough in a tweet to be worth a flag, and slang that reads as praise is excluded
# ("killing it", "killed it"). Everything subtler (hate speech, misinformation, legal risk) needs a
# model and is left to Claude rather than guessed from words.
RISK_PATTERNS: dict[str, re.Pattern[str]] = {
    "profanity": re.compile(
        r"\b(?:fuck\w*|motherf\w*|shit\w*|bullshit|bitch\w*|bastards?|asshole\w*|dickhead\w*|"
        r"crap|damn(?:ed|it)?|wtf|stfu)\b",
        re.IGNORECASE,
    ),
    "violence": re.compile(
        r"\b(?:kill(?:s|ed|ing)?(?!\s+it\b)|murder\w*|stab(?:s|bed|bing)?|shoot(?:s|ing)?|"
        r"bomb(?:s|ed|ing)?|strangle\w*|beat (?:you|him|her|them) up)\b",
        re.IGNORECASE,
    ),
    "harassment": re.compile(
        r"\b(?:idiots?|morons?|imbeciles?|losers?|dumbass\w*|shut up|stfu|nobody likes you|"
        r"kill yourself|kys)\b",
        re.IGNORECASE,
    ),
}

# A hashtag as Twitter counts one: '#' not inside a word, HTML entity or another tag ("C#",
# "&#39;", "##"), followed by word characters of which at least one is a letter ("#1" is not one).
_HASHTAG = re.compile(r"(?<![\w&#])#(\w*[^\W\d_]\w*)")


def hashtags(text: str) -> tuple[str, ...]:
    """The hashtags in `text`, lowercased, without '#', each once, in order of appearance."""
    return tuple(dict.fromkeys(tag.lower() for tag in _HASHTAG.findall(text)))


def _sentiment(compound: float) -> Sentiment:
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


class VaderAnalyser:
    """Sentiment from VADER's compound score, risk flags from `RISK_PATTERNS`, topics from hashtags.

    Never fails a tweet and makes no requests, so its outcome has no failures and zero usage.
    """

    model = "vader-lexicon"

    def __init__(self) -> None:
        # Loading the lexicon reads a file of ~7,500 entries: once per analyser, not per tweet.
        self._vader = SentimentIntensityAnalyzer()

    def analyse_one(self, tweet: TweetInput) -> AnalysisResult:
        compound = float(self._vader.polarity_scores(tweet.text)["compound"])
        compound = max(-1.0, min(1.0, compound))
        flags = tuple(flag for flag, pattern in RISK_PATTERNS.items() if pattern.search(tweet.text))
        return AnalysisResult(
            tweet_id=tweet.tweet_id,
            sentiment=_sentiment(compound),
            score=compound,
            risk_flags=flags,
            topics=hashtags(tweet.text),
        )

    def analyse(self, tweets: Sequence[TweetInput]) -> BatchOutcome:
        return BatchOutcome(model=self.model, results=[self.analyse_one(tweet) for tweet in tweets])
