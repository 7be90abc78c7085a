"""Personal-data exports on the real PostgreSQL, moto's S3 server and the local directory store:
the document (every section, this user's rows only, no token or ciphertext), the link and its
expiry, failures recorded per request, a crash redone to the same key."""

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import sqlalchemy as sa

from repazoo_assets.lib.compliance import export as ex
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.security.vault import TokenVault
from repazoo_assets.lib.storage import (
    LocalObjectStore,
    PresignedUrlExpired,
    PresignedUrlInvalid,
    S3ObjectStore,
    s3_client,
)

BUCKET = "repazoo-exports"
pytestmark = pytest.mark.postgres


def seed_user(engine, vault: TokenVault, user_id: str, twitter_user_id: str, marker: str) -> dict:
    """A user with a row in every table an export reads; `marker` is in their text, tokens and
    e-mail, so another user's document can be searched for it."""
    base = datetime(2026, 11, 1, tzinfo=UTC)
    tweet_ids = [int(twitter_user_id) * 1_000_000_000 + 9_007_199_254_740_993 + i for i in range(3)]
    with engine.begin() as conn:
        store.connect_user(
            conn, vault, user_id=user_id, twitter_user_id=twitter_user_id, access_token=f"AT-{marker}-secret",
            refresh_token=f"RT-{marker}-secret", expires_in=3600, tier="pro", handle=f"{marker}_handle",
        )
        conn.execute(sa.update(t.users).where(t.users.c.id == user_id).values(email=f"{marker}@example.org"))
        conn.execute(sa.insert(t.subscriptions).values(
            user_id=user_id, tier="basic", status="cancelled", started_at=base - timedelta(days=90),
            cancelled_at=base - timedelta(days=30),
        ))
        conn.execute(sa.insert(t.tweets), [
            {"id": tid, "user_id": user_id, "text": f"tweet {i} by {marker}, mail {marker}@example.org",
             "tweeted_at": base + timedelta(hours=i), "public_metrics": {"like_count": i}, "source": "api"}
            for i, tid in enumerate(tweet_ids)
        ])
        conn.execute(sa.insert(t.sanitized_tweets), [
            {"tweet_id": tid, "user_id": user_id, "text": f"tweet {i} by {marker}, mail [EMAIL]",
             "pii_counts": {"email": 1}, "redactor_version": "pii-2"}
            for i, tid in enumerate(tweet_ids)
        ])
        conn.execute(sa.insert(t.analyses), [
            {"tweet_id": tid, "user_id": user_id, "model": "vader", "sentiment_label": "positive",
             "sentiment_score": 0.5, "risk_flags": [], "topics": [marker]}
            for tid in tweet_ids[:2]
        ])
        conn.execute(sa.insert(t.consent_audit_log), [
            {"user_id": user_id, "action": "granted", "source": "web", "ip_address": "203.0.113.7",
             "user_agent": f"{marker}-browser", "reason": None, "created_at": base},
            {"user_id": user_id, "action": "scope_change", "source": "web", "reason": "added tweet.read",
             "ip_address": None, "user_agent": None, "created_at": base + timedelta(days=1)},
        ])
        conn.execute(sa.insert(t.api_usage).values(user_id=user_id, provider="twitter", operation="timeline", status_code=200))
        audit.append(conn, actor="cli", action=audit.AuditAction.CONSENT_CHANGE, subject_type="user",
                     subject_id=user_id, details={"consent": "granted"})
        # A client whose id equals the user's: its entries are not the user's.
        audit.append(conn, actor="cli", action=audit.AuditAction.CLIENT_CHANGE, subject_type="client",
                     subject_id=user_id, details={"change": "add"})
    return {"tweet_ids": tweet_ids}


@pytest.fixture
def local_store(tmp_path):
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def s3_store(s3_endpoint):
    return S3ObjectStore(s3_client(endpoint_url=s3_endpoint, region_name="us-east-1"))


def request(engine, user_id: str) -> int:
    with engine.begin() as conn:
        request_id, new = ex.request_export(conn, user_id)
    assert new
    return request_id


def row(engine, request_id: int):
    with engine.connect() as conn:
        return conn.execute(sa.select(t.data_exports).where(t.data_exports.c.id == request_id)).mappings().one()


def signed_expiry(url: str) -> datetime:
    """The expiry a presigned S3 URL carries: SigV4 (`X-Amz-Date` + `X-Amz-Expires`) or SigV2
    (`Expires`, epoch seconds), as S3 checks it."""
    query = parse_qs(urlparse(url).query)
    if "X-Amz-Expires" in query:
        signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed + timedelta(seconds=int(query["X-Amz-Expires"][0]))
    return datetime.fromtimestamp(int(query["Expires"][0]), UTC)


def table_counts(engine, user_id: str) -> dict[str, int]:
    def count(table, *where):
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()

    per_user = {
        "oauth_authorizations": t.oauth_tokens, "subscriptions": t.subscriptions, "tweets": t.tweets,
        "sanitized_tweets": t.sanitized_tweets, "analyses": t.analyses, "consent_history": t.consent_audit_log,
        "api_usage": t.api_usage,
    }
    counts = {"profile": count(t.users, t.users.c.id == user_id)}
    counts.update({name: count(table, table.c.user_id == user_id) for name, table in per_user.items()})
    counts["audit_log"] = count(t.audit_log, t.audit_log.c.subject_type == "user", t.audit_log.c.subject_id == user_id)
    return counts


def export_audit_entries(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t.audit_log).where(t.audit_log.c.action == "export").order_by(t.audit_log.c.id)
        ).mappings().all()


@pytest.mark.s3
def test_document_holds_every_section_of_this_user_only_and_no_token(engine, vault, s3_store):
    alice = seed_user(engine, vault, "u-alice", "1001", "alicemarker")
    bob = seed_user(engine, vault, "u-bob", "1002", "bobmarker")
    request_id = request(engine, "u-alice")
    expected = table_counts(engine, "u-alice")
    before = datetime.now(UTC)

    report = ex.handle_requests(engine, s3_store, BUCKET, [request_id])
    after = datetime.now(UTC)

    assert report.ids("ready") == [request_id] and report.bytes_written > 0
    key = f"user-exports/u-alice/{request_id}.json"
    raw = s3_store.get(BUCKET, key)
    doc = json.loads(raw)
    assert doc["schema_version"] == ex.SCHEMA_VERSION
    assert before <= datetime.fromisoformat(doc["generated_at"]) <= after
    assert doc["user_id"] == "u-alice" and doc["request"]["id"] == request_id
    assert set(ex.SECTIONS) <= set(doc)
    assert doc["counts"] == expected
    assert {k: expected[k] for k in ("subscriptions", "tweets", "sanitized_tweets", "analyses")} == {
        "subscriptions": 2, "tweets": 3, "sanitized_tweets": 3, "analyses": 2,
    }
    assert expected["consent_history"] >= 2 and expected["audit_log"] >= 1
    assert {name: len(doc[name]) for name in ex.SECTIONS if name != "profile"} == {
        k: v for k, v in doc["counts"].items() if k != "profile"
    }
    assert doc["profile"]["email"] == "alicemarker@example.org" and doc["profile"]["handle"] == "alicemarker_handle"
    (oauth,) = doc["oauth_authorizations"]
    assert set(oauth) == {"provider", "scopes", "created_at", "updated_at", "expires_at", "revoked", "revoked_at"}
    assert oauth["provider"] == "twitter" and oauth["revoked"] is False
    assert sorted(s["status"] for s in doc["subscriptions"]) == ["active", "cancelled"]
    # Snowflakes above 2**53 survive as strings.
    assert [tw["id"] for tw in doc["tweets"]] == [str(i) for i in alice["tweet_ids"]]
    assert {a["tweet_id"] for a in doc["analyses"]} == {str(i) for i in alice["tweet_ids"][:2]}
    seeded = [c for c in doc["consent_history"] if c["action"] in ("granted", "scope_change")]
    assert [c["action"] for c in seeded] == ["granted", "scope_change"]  # oldest first
    assert seeded[0]["ip_address"] == "203.0.113.7"
    assert ("consent_change", "user") in [(a["action"], a["subject_type"]) for a in doc["audit_log"]]
    assert "client" not in {a["subject_type"] for a in doc["audit_log"]}
    assert "row_hash" not in doc["audit_log"][0]

    # This user's data only.
    for name in ex.SECTIONS[1:]:
        for item in doc[name]:
            assert item.get("user_id", item.get("subject_id", "u-alice")) == "u-alice", name
    text = raw.decode()
    assert "bobmarker" not in text and "u-bob" not in text
    assert not any(str(i) in text for i in bob["tweet_ids"])
    # No token, plaintext or encrypted, of anybody.
    with engine.connect() as conn:
        ciphertexts = [v for r in conn.execute(sa.select(t.oauth_tokens)).all()
                       for v in (r.access_token_encrypted, r.refresh_token_encrypted)]
    assert len(ciphertexts) == 4 and not any(c in text for c in ciphertexts)
    assert "-secret" not in text and "gAAAA" not in text and "encrypted" not in text

    done = row(engine, request_id)
    assert done["status"] == "ready" and done["object_key"] == key and done["error"] is None
    assert done["completed_at"] is not None and done["started_at"] is not None
    assert before + timedelta(hours=24) <= done["expires_at"] <= after + timedelta(hours=24)
    assert before + timedelta(hours=24) - timedelta(seconds=1) <= signed_expiry(done["download_url"])
    assert signed_expiry(done["download_url"]) <= after + timedelta(hours=24)

    (entry,) = export_audit_entries(engine)
    assert entry["subject_type"] == "user" and entry["subject_id"] == "u-alice"
    assert entry["details"]["request_id"] == request_id and entry["details"]["outcome"] == "ready"
    assert "alicemarker" not in json.dumps(entry["details"])
    assert audit.verify(engine).ok


@pytest.mark.s3
def test_link_on_moto_serves_the_document_and_signs_the_configured_expiry(engine, vault, s3_store):
    """moto's server does not enforce a presigned URL's expiry (nor its signature) at all, so
    expiry is shown refused on the local store's links below; here: the link works, and it carries
    the expiry S3 enforces."""
    seed_user(engine, vault, "u-carol", "1003", "carolmarker")
    request_id = request(engine, "u-carol")
    ex.handle_requests(engine, s3_store, BUCKET, [request_id], link_expiry=timedelta(minutes=10))
    done = row(engine, request_id)

    response = httpx.get(done["download_url"])

    assert response.status_code == 200
    assert response.json()["user_id"] == "u-carol"
    # The recorded expiry is never later than the one S3 checks (which is whole seconds).
    assert done["expires_at"].replace(microsecond=0) <= signed_expiry(done["download_url"])
    assert signed_expiry(done["download_url"]) - done["expires_at"] < timedelta(minutes=1)


def test_local_link_works_until_it_expires_then_is_refused(engine, vault, local_store):
    seed_user(engine, vault, "u-dan", "1004", "danmarker")
    long_id, short_id = request(engine, "u-dan"), None
    ex.handle_requests(engine, local_store, BUCKET, [long_id], link_expiry=timedelta(minutes=10))
    with engine.begin() as conn:
        short_id, _ = ex.request_export(conn, "u-dan")
    ex.handle_requests(engine, local_store, BUCKET, [short_id], link_expiry=timedelta(seconds=1))
    long_url, short_url = row(engine, long_id)["download_url"], row(engine, short_id)["download_url"]

    assert json.loads(local_store.open_presigned(long_url))["request"]["id"] == long_id
    with pytest.raises(PresignedUrlInvalid):
        local_store.open_presigned(long_url.replace("signature=", "signature=0"))
    expires = int(parse_qs(urlparse(short_url).query)["expires"][0])
    while time.time() <= expires + 0.05:
        time.sleep(0.1)
    with pytest.raises(PresignedUrlExpired):
        local_store.open_presigned(short_url)
    # The recorded expiry is never later than the link's.
    assert row(engine, short_id)["expires_at"].timestamp() <= expires + 1


def test_unknown_user_fails_with_its_reason_and_the_others_go_on(engine, vault, local_store):
    seed_user(engine, vault, "u-erin", "1005", "erinmarker")
    ghost, real = request(engine, "u-ghost"), request(engine, "u-erin")

    report = ex.handle_requests(engine, local_store, BUCKET, [ghost, real])

    assert report.ids("failed") == [ghost] and report.ids("ready") == [real]
    assert report.unexpected_failures == []
    failed = row(engine, ghost)
    assert failed["status"] == "failed" and failed["error"] == ex.UNKNOWN_USER_REASON
    assert failed["download_url"] is None and failed["completed_at"] is not None
    assert list(local_store.list_keys(BUCKET, "user-exports/u-ghost/")) == []
    entries = export_audit_entries(engine)
    assert [(e["subject_id"], e["details"]["outcome"]) for e in entries] == [("u-ghost", "failed"), ("u-erin", "ready")]
    assert entries[0]["details"]["reason"] == "unknown_user"


@pytest.mark.s3
def test_an_object_store_failure_fails_that_request_with_a_reason(engine, vault, s3_store):
    seed_user(engine, vault, "u-fay", "1006", "faymarker")
    request_id = request(engine, "u-fay")

    outcome = ex.handle_request(engine, s3_store, "no-such-bucket-here", request_id)

    assert outcome.status == "failed"
    failed = row(engine, request_id)
    assert failed["status"] == "failed"
    assert failed["error"].startswith("object store: ") and "NoSuchBucket" in failed["error"]
    assert "faymarker" not in failed["error"]
    assert ex.ExportReport((outcome,)).unexpected_failures == [outcome]


class _Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


class _CrashAfterWrite(LocalObjectStore):
    def presigned_get_url(self, bucket, key, expires_in):
        raise _Crash()


def test_a_crash_after_the_object_is_redone_to_the_same_key(engine, vault, tmp_path):
    seed_user(engine, vault, "u-gus", "1007", "gusmarker")
    request_id = request(engine, "u-gus")
    crashing = _CrashAfterWrite(tmp_path / "objects")

    with pytest.raises(_Crash):
        ex.handle_requests(engine, crashing, BUCKET, [request_id])

    half = row(engine, request_id)
    assert half["status"] == "running" and half["download_url"] is None and half["object_key"] is None
    assert export_audit_entries(engine) == []
    # Without ids, a run takes only pending requests: a running one may be in another run.
    assert ex.handle_requests(engine, crashing, BUCKET).outcomes == ()

    healthy = LocalObjectStore(tmp_path / "objects")
    report = ex.handle_requests(engine, healthy, BUCKET, [request_id])

    assert report.ids("ready") == [request_id]
    assert list(healthy.list_keys(BUCKET, "user-exports/u-gus/")) == [f"user-exports/u-gus/{request_id}.json"]
    done = row(engine, request_id)
    assert done["status"] == "ready"
    assert json.loads(healthy.open_presigned(done["download_url"]))["user_id"] == "u-gus"
    assert len(export_audit_entries(engine)) == 1
    # A finished request is not done again.
    assert ex.handle_requests(engine, healthy, BUCKET, [request_id]).ids("skipped") == [request_id]


def test_requests_reuse_the_open_one_and_pending_ones_are_taken_oldest_first(engine, vault, local_store):
    seed_user(engine, vault, "u-hal", "1008", "halmarker")
    with engine.begin() as conn:
        first, new = ex.request_export(conn, "u-hal")
        again, new_again = ex.request_export(conn, "u-hal")
        other, _ = ex.request_export(conn, "u-nobody")
    assert new and not new_again and again == first
    with engine.connect() as conn:
        assert ex.pending_request_ids(conn, limit=10) == [first, other]
        assert ex.pending_request_ids(conn, limit=1) == [first]

    report = ex.handle_requests(engine, local_store, BUCKET, pending_limit=1)

    assert report.ids("ready") == [first]
    with engine.begin() as conn:
        assert ex.pending_request_ids(conn, limit=10) == [other]
        later, new_later = ex.request_export(conn, "u-hal")
        assert new_later and later > first
        listed = ex.user_requests(conn, "u-hal")
    assert [r["id"] for r in listed] == [later, first]
    assert ex.link_if_valid(listed[1]) == listed[1]["download_url"]
    assert ex.link_if_valid(listed[1], now=listed[1]["expires_at"] + timedelta(seconds=1)) is None
    assert ex.link_if_valid(listed[0]) is None


def test_link_expiry_is_bounded(engine, local_store):
    with pytest.raises(ValueError, match="between 1 second and 7 days"):
        ex.handle_request(engine, local_store, BUCKET, 1, link_expiry=timedelta(days=8))


def test_an_erasure_during_the_export_leaves_no_document_behind(engine, vault, tmp_path):
    seed_user(engine, vault, "u-ida", "1011", "idamarker")
    request_id = request(engine, "u-ida")

    class _ErasedWhileWriting(LocalObjectStore):
        def put(self, bucket, key, data, **kwargs):
            info = super().put(bucket, key, data, **kwargs)
            with engine.begin() as conn:  # what the erasure does to the request, committed meanwhile
                conn.execute(sa.delete(t.data_exports).where(t.data_exports.c.id == request_id))
            return info

    store = _ErasedWhileWriting(tmp_path / "objects")
    report = ex.handle_requests(engine, store, BUCKET, [request_id])
    assert report.ids("skipped") == [request_id]
    assert list(store.list_keys(BUCKET, "user-exports/u-ida/")) == []
