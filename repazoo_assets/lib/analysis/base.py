"""What every tweet analyser takes and gives back, whichever model is behind it.

The asset that analyses tweets does not care whether Claude or the local VADER lexicon did the work:
it stores `AnalysisResult`s, records `AnalysisFailure`s for another attempt on the next run and
meters the usage in `BatchOutcome`. Both analysers therefore return the same shape, and the closed
list of risk flags lives here so that neither can invent a flag the summary does not know.

Results are validated when they are built: a result is either well-formed or not made at all, so a
model's malformed answer can never slip into the database as a plausible-looking fake.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args, runtime_checkable

__all__ = [
    "RISK_FLAGS",
    "SENTIMENTS",
    "AnalysisFailure",
    "AnalysisResult",
    "Analyser",
    "BatchOutcome",
    "Sentiment",
    "TweetInput",
]

Sentiment = Literal["positive", "neutral", "negative"]
SENTIMENTS: tuple[str, ...] = get_args(Sentiment)

# The closed list of reputation-risk flags. The reputation summary counts them per month, and the
# model is told to use only these, so a flag outside the list is dropped rather than stored.
RISK_FLAGS: tuple[str, ...] = (
    "profanity",
    "harassment",
    "hate",
    "violence",
    "misinformation",
    "controversial_opinion",
    "legal",
    "nsfw",
    "self_harm",
    "spam",
)
_RISK_FLAG_SET = frozenset(RISK_FLAGS)


@dataclass(frozen=True)
class TweetInput:
    """One already-sanitized tweet: its id (kept on our side) and its redacted text."""

    tweet_id: int
    text: str


@dataclass(frozen=True)
class AnalysisResult:
    """The analysis of one tweet. `score` runs from -1 (very negative) to 1 (very positive)."""

    tweet_id: int
    sentiment: Sentiment
    score: float
    risk_flags: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Checked here, once, so no analyser can hand the store a result outside the schema.
        if self.sentiment not in SENTIMENTS:
            raise ValueError(f"sentiment must be one of {SENTIMENTS}, got {self.sentiment!r}")
        if isinstance(self.score, bool) or not isinstance(self.score, int | float):
            raise TypeError(f"score must be a number, got {type(self.score).__name__}")
        if not math.isfinite(self.score) or not -1.0 <= self.score <= 1.0:
            raise ValueError(f"score must be within [-1, 1], got {self.score!r}")
        unknown = [flag for flag in self.risk_flags if flag not in _RISK_FLAG_SET]
        if unknown:
            raise ValueError(f"unknown risk flags {unknown}; allowed: {RISK_FLAGS}")
        if not all(isinstance(topic, str) for topic in self.topics):
            raise TypeError("topics must be strings")


@dataclass(frozen=True)
class AnalysisFailure:
    """A tweet the analyser could not analyse. `reason` is from a fixed vocabulary and never holds
    the tweet's text, so it is safe to log and to store."""

    tweet_id: int
    reason: str


@dataclass
class BatchOutcome:
    """Everything one `analyse` call produced: a result or a failure for every tweet given, plus the
    requests made and the tokens they used (all zero for a local analyser) for metering."""

    model: str
    results: list[AnalysisResult] = field(default_factory=list)
    failures: list[AnalysisFailure] = field(default_factory=list)
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


@runtime_checkable
class Analyser(Protocol):
    """Analyses sanitized tweets. `model` names what produced the results: it is stored with every
    result, so a new model re-analyses tweets and two models' results never mix."""

    model: str

    def analyse(self, tweets: Sequence[TweetInput]) -> BatchOutcome: ...
