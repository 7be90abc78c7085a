"""Twitter API v2 access: the timeline and token-refresh client (see `client`)."""

from repazoo_assets.lib.twitter.client import (
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

__all__ = [
    "TimelinePage",
    "TokenPair",
    "TwitterClient",
    "TwitterError",
    "TwitterProtocolError",
    "TwitterRateLimited",
    "TwitterServerError",
    "TwitterTweet",
    "TwitterUnauthorized",
]
