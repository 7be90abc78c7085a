"""Deterministic synthetic demo data and the Twitter archive format it is written in."""

from repazoo_assets.lib.demo.archive import ArchiveTweet, read_tweets_js, write_tweets_js, write_user_archives
from repazoo_assets.lib.demo.generator import (
    PII_KINDS,
    DemoClient,
    DemoDataset,
    DemoEvent,
    DemoTweet,
    DemoUser,
    generate_dataset,
)

__all__ = [
    "PII_KINDS",
    "ArchiveTweet",
    "DemoClient",
    "DemoDataset",
    "DemoEvent",
    "DemoTweet",
    "DemoUser",
    "generate_dataset",
    "read_tweets_js",
    "write_tweets_js",
    "write_user_archives",
]
