"""Twitter archive files (`tweets.js`): writing, reading back, entity indices and malformed input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from repazoo_assets.lib.demo.archive import ArchiveTweet, read_tweets_js, write_tweets_js, write_user_archives
from repazoo_assets.lib.demo.generator import DemoDataset, DemoTweet, generate_dataset

ANCHOR = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
PREFIX = "window.YTD.tweets.part0 = "
# "Wed Oct 10 20:19:24 +0000 2018"
ARCHIVE_TIME = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{2} \d{2}:\d{2}:\d{2} \+0000 \d{4}")


@pytest.fixture(scope="module")
def dataset() -> DemoDataset:
    return generate_dataset(17, users=3, clients=3, tweets_per_user=40, events=3, anchor=ANCHOR)


@pytest.fixture(scope="module")
def tweets(dataset) -> list[DemoTweet]:
    return [t for u in dataset.users for t in u.tweets]


def _entries(path: Path) -> list[dict]:
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith(PREFIX)
    return [entry["tweet"] for entry in json.loads(raw[len(PREFIX) :])]


def test_round_trip_keeps_ids_texts_times_and_counts(tmp_path, tweets):
    path = write_tweets_js(tweets, tmp_path / "tweets.js")
    assert path == tmp_path / "tweets.js"
    back = read_tweets_js(path)
    assert all(isinstance(t, ArchiveTweet) for t in back)
    assert [t.tweet_id for t in back] == [t.tweet_id for t in tweets]
    assert [t.text for t in back] == [t.text for t in tweets]
    assert [t.created_at for t in back] == [t.created_at for t in tweets]
    assert all(t.created_at.utcoffset() == timedelta(0) for t in back)
    assert [(t.lang, t.retweet_count, t.favorite_count) for t in back] == [
        (t.lang, t.retweet_count, t.favorite_count) for t in tweets
    ]


def test_round_trip_preserves_non_ascii_and_planted_pii(tmp_path):
    tweet = DemoTweet(
        tweet_id="1900000000000000001",
        created_at=datetime(2026, 2, 1, 9, 5, 7, tzinfo=UTC),
        text='Zoë says "héllo" — write to zoe@example.org \\o/ 🎉',
        lang="en",
        retweet_count=3,
        favorite_count=0,
        planted_pii=(("email", "zoe@example.org"),),
    )
    path = write_tweets_js([tweet], tmp_path / "t.js")
    assert "Zoë" in path.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    [back] = read_tweets_js(path)
    assert back.text == tweet.text
    assert back.created_at == tweet.created_at


def test_file_uses_the_twitter_archive_layout(tmp_path, tweets):
    path = write_tweets_js(tweets[:10], tmp_path / "tweets.js")
    assert path.read_text(encoding="utf-8").startswith(PREFIX)
    entries = _entries(path)
    assert len(entries) == 10
    for entry, tweet in zip(entries, tweets[:10], strict=True):
        # ids, counts and indices are strings, like Twitter's own export
        assert entry["id_str"] == entry["id"] == tweet.tweet_id
        assert entry["retweet_count"] == str(tweet.retweet_count)
        assert entry["favorite_count"] == str(tweet.favorite_count)
        assert entry["full_text"] == tweet.text
        assert entry["display_text_range"] == ["0", str(len(tweet.text))]
        assert ARCHIVE_TIME.fullmatch(entry["created_at"]), entry["created_at"]
        assert datetime.strptime(entry["created_at"], "%a %b %d %H:%M:%S %z %Y") == tweet.created_at


def test_created_at_is_written_in_utc_whatever_the_tweet_timezone(tmp_path):
    local = datetime(2026, 1, 2, 1, 30, 0, tzinfo=timezone(timedelta(hours=5)))  # 2026-01-01 20:30 UTC
    tweet = DemoTweet("1", local, "hello", "en", 0, 0)
    path = write_tweets_js([tweet], tmp_path / "tweets.js")
    assert _entries(path)[0]["created_at"] == "Thu Jan 01 20:30:00 +0000 2026"
    assert read_tweets_js(path)[0].created_at == local


def test_entity_indices_point_at_the_right_substrings(tmp_path, tweets):
    with_entities = [t for t in tweets if t.hashtags or t.mentions or t.urls]
    assert any(t.hashtags for t in with_entities)
    assert any(t.mentions for t in with_entities)
    assert any(t.urls for t in with_entities)
    path = write_tweets_js(with_entities, tmp_path / "tweets.js")
    back = read_tweets_js(path)
    for tweet, archived in zip(with_entities, back, strict=True):
        text = archived.text
        entities = archived.entities
        assert [h["text"] for h in entities["hashtags"]] == list(tweet.hashtags)
        assert [m["screen_name"] for m in entities["user_mentions"]] == list(tweet.mentions)
        assert [u["url"] for u in entities["urls"]] == list(tweet.urls)
        for h in entities["hashtags"]:
            start, end = (int(i) for i in h["indices"])
            assert text[start:end] == f"#{h['text']}"
        for m in entities["user_mentions"]:
            start, end = (int(i) for i in m["indices"])
            assert text[start:end] == f"@{m['screen_name']}"
        for u in entities["urls"]:
            start, end = (int(i) for i in u["indices"])
            assert text[start:end] == u["url"]
            assert u["expanded_url"].startswith("https://") and u["display_url"]
        for entity in entities["hashtags"] + entities["user_mentions"] + entities["urls"]:
            assert all(isinstance(i, str) for i in entity["indices"])
            start, end = (int(i) for i in entity["indices"])
            # An entity is a whole token: it is not glued to the following word.
            assert end == len(text) or not (text[end].isalnum() or text[end] == "_"), (text, entity)


def test_entity_indices_pick_the_whole_token_not_a_prefix_of_another(tmp_path):
    text = "#golang vs #go, ask @bob_smith or @bob"
    tweet = DemoTweet("7", ANCHOR, text, "en", 0, 0, hashtags=("golang", "go"), mentions=("bob_smith", "bob"))
    [archived] = read_tweets_js(write_tweets_js([tweet], tmp_path / "tweets.js"))
    spans = [
        (int(e["indices"][0]), int(e["indices"][1]))
        for e in archived.entities["hashtags"] + archived.entities["user_mentions"]
    ]
    assert spans == [(0, 7), (11, 14), (20, 30), (34, 38)]


def test_reading_a_later_part_file_works(tmp_path, tweets):
    path = write_tweets_js(tweets[:3], tmp_path / "tweets.js")
    part1 = tmp_path / "tweets-part1.js"
    part1.write_text(path.read_text(encoding="utf-8").replace("part0", "part1", 1), encoding="utf-8")
    assert [t.tweet_id for t in read_tweets_js(part1)] == [t.tweet_id for t in tweets[:3]]


def test_minimal_entry_gets_defaults(tmp_path):
    path = tmp_path / "tweets.js"
    entry = {"tweet": {"id_str": "12", "created_at": "Wed Oct 10 20:19:24 +0000 2018", "full_text": "hi"}}
    path.write_text(PREFIX + json.dumps([entry]), encoding="utf-8")
    [tweet] = read_tweets_js(path)
    assert tweet == ArchiveTweet("12", datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC), "hi", "und", 0, 0, {})


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("", id="empty"),
        pytest.param('[{"tweet": {}}]', id="no-prefix"),
        pytest.param("window.YTD.likes.part0 = []", id="wrong-prefix"),
        pytest.param(PREFIX + "[{", id="truncated-json"),
        pytest.param(PREFIX + '[{"not_tweet": {}}]', id="missing-tweet-key"),
        pytest.param(PREFIX + '[{"tweet": {"id_str": "1", "full_text": "x"}}]', id="missing-created-at"),
        pytest.param(
            PREFIX + '[{"tweet": {"id_str": "1", "full_text": "x", "created_at": "2018-10-10T20:19:24Z"}}]',
            id="bad-created-at",
        ),
        pytest.param(
            PREFIX
            + '[{"tweet": {"id_str": "1", "full_text": "x", "created_at": "Wed Oct 10 20:19:24 +0000 2018",'
            ' "retweet_count": "many"}}]',
            id="bad-count",
        ),
        pytest.param(PREFIX + "42", id="not-a-list"),
        pytest.param(PREFIX + '["tweet"]', id="entry-not-an-object"),
    ],
)
def test_malformed_file_raises_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken-tweets.js"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_tweets_js(path)


def test_non_utf8_file_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "latin1-tweets.js"
    path.write_bytes((PREFIX + '[{"tweet": {"full_text": "caf\xe9"}}]').encode("latin-1"))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_tweets_js(path)


def test_write_creates_parents_replaces_atomically_and_leaves_no_temp_files(tmp_path, tweets):
    target = tmp_path / "a" / "b" / "tweets.js"
    write_tweets_js(tweets[:5], target)
    write_tweets_js(iter(tweets[5:7]), target)  # any iterable; overwrites
    assert [t.tweet_id for t in read_tweets_js(target)] == [t.tweet_id for t in tweets[5:7]]
    assert sorted(p.name for p in target.parent.iterdir()) == ["tweets.js"]


def test_empty_archive_round_trips(tmp_path):
    path = write_tweets_js([], tmp_path / "tweets.js")
    assert path.read_text(encoding="utf-8").startswith(PREFIX)
    assert read_tweets_js(path) == []


def test_write_user_archives_writes_one_archive_per_user(tmp_path, dataset):
    root = tmp_path / "archives"
    written = write_user_archives(dataset, root)
    assert set(written) == {u.twitter_user_id for u in dataset.users}
    assert len(written) == len(dataset.users)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert files == sorted(written.values())
    for user in dataset.users:
        path = written[user.twitter_user_id]
        assert path == root / user.twitter_user_id / "tweets.js"
        back = read_tweets_js(path)
        assert [t.tweet_id for t in back] == [t.tweet_id for t in user.tweets]
        assert [t.text for t in back] == [t.text for t in user.tweets]
    # Running again is idempotent: same files, same bytes.
    before = {p: p.read_bytes() for p in files}
    write_user_archives(dataset, root)
    assert {p: p.read_bytes() for p in sorted(p for p in root.rglob("*") if p.is_file())} == before
