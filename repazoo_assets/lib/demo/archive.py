"""Twitter account archives (`tweets.js`), the local stand-in for the Twitter API.

The format is the one Twitter's "Download an archive of your data" produces: a JavaScript
assignment `window.YTD.tweets.part0 = [ {"tweet": {...}}, … ]` with ids, counts and entity
indices as strings and `created_at` like "Wed Oct 10 20:19:24 +0000 2018".
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from repazoo_assets.lib.demo.generator import DemoDataset, DemoTweet

_PREFIX = re.compile(r"^\s*window\.YTD\.tweets\.part\d+\s*=\s*")
_ARCHIVE_TIME = "%a %b %d %H:%M:%S %z %Y"


@dataclass(frozen=True)
class ArchiveTweet:
    tweet_id: str
    created_at: datetime
    text: str
    lang: str
    retweet_count: int
    favorite_count: int
    entities: dict


def _indices(text: str, needle: str) -> list[str]:
    """Where `needle` stands as a whole token ("#go" in "#golang vs #go" is the second one)."""
    match = re.search(rf"(?<![\w#@$]){re.escape(needle)}(?![\w])", text)
    if match is None:
        raise ValueError(f"entity {needle!r} is not a whole token of the tweet text")
    return [str(match.start()), str(match.end())]


def _entities(tweet: DemoTweet) -> dict:
    text = tweet.text
    return {
        "hashtags": [{"text": tag, "indices": _indices(text, f"#{tag}")} for tag in tweet.hashtags],
        "symbols": [],
        "user_mentions": [
            {"screen_name": name, "name": name, "id_str": "0", "indices": _indices(text, f"@{name}")}
            for name in tweet.mentions
        ],
        "urls": [
            {
                "url": url,
                "expanded_url": f"https://example.com/{url.rsplit('/', 1)[-1]}",
                "display_url": f"example.com/{url.rsplit('/', 1)[-1]}",
                "indices": _indices(text, url),
            }
            for url in tweet.urls
        ],
    }


def _archive_entry(tweet: DemoTweet) -> dict:
    return {
        "tweet": {
            "edit_info": {"initial": {"editTweetIds": [tweet.tweet_id], "editableUntil": "", "editsRemaining": "5", "isEditEligible": True}},
            "retweeted": False,
            "source": '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
            "entities": _entities(tweet),
            "display_text_range": ["0", str(len(tweet.text))],
            "favorite_count": str(tweet.favorite_count),
            "id_str": tweet.tweet_id,
            "truncated": False,
            "retweet_count": str(tweet.retweet_count),
            "id": tweet.tweet_id,
            "created_at": tweet.created_at.astimezone(UTC).strftime(_ARCHIVE_TIME),
            "favorited": False,
            "full_text": tweet.text,
            "lang": tweet.lang,
        }
    }


def write_tweets_js(tweets: Iterable[DemoTweet], path: Path) -> Path:
    """Write an archive file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "window.YTD.tweets.part0 = " + json.dumps([_archive_entry(t) for t in tweets], indent=2, ensure_ascii=False)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_tweets_js(path: Path) -> list[ArchiveTweet]:
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    match = _PREFIX.match(raw)
    if not match:
        raise ValueError(f"{path}: not a Twitter archive tweets file (expected 'window.YTD.tweets.partN = [...]')")
    try:
        entries = json.loads(raw[match.end() :])
        return [_parse(entry["tweet"]) for entry in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed archive entry ({type(exc).__name__})") from None


def _parse(tweet: dict) -> ArchiveTweet:
    return ArchiveTweet(
        tweet_id=str(tweet["id_str"]),
        created_at=datetime.strptime(tweet["created_at"], _ARCHIVE_TIME).astimezone(UTC),
        text=tweet["full_text"],
        lang=tweet.get("lang", "und"),
        retweet_count=int(tweet.get("retweet_count", 0)),
        favorite_count=int(tweet.get("favorite_count", 0)),
        entities=tweet.get("entities", {}),
    )


def write_user_archives(dataset: DemoDataset, root: Path) -> dict[str, Path]:
    """One `<root>/<twitter_user_id>/tweets.js` per user; returns twitter user id -> path."""
    return {
        user.twitter_user_id: write_tweets_js(user.tweets, Path(root) / user.twitter_user_id / "tweets.js")
        for user in dataset.users
    }
