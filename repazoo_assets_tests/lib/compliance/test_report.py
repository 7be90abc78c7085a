"""The daily compliance report on the real PostgreSQL: exact counts and latencies for one UTC day,
rows of the day before and after (and at the exact boundaries) left out, the audit details read
as the erasure and retention code really write them, and no personal data in the Markdown, the
chart or the figures even when some is planted in the rows read."""

import base64
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.compliance import erasure, report, report_render, retention
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.settings import Buckets
from repazoo_assets.lib.storage import LocalObjectStore

DAY = date(2026, 11, 20)
START = datetime(2026, 11, 20, tzinfo=UTC)
NEXT = START + timedelta(days=1)
BEFORE = START - timedelta(microseconds=1)  # the last instant of the day before
# Planted personal data: none of it may reach the report.
EMAIL = "jane.doe@example.org"
IP = "203.0.113.77"
USER_IDS = ("usr-jane-7781", "usr-omar-5512", "usr-li-0093", "usr-ana-4410")
HANDLE = "jane_doe_x"


def at(hour=0, minute=0, second=0, day=START):
    return day + timedelta(hours=hour, minutes=minute, seconds=second)


@pytest.fixture
def env(pg_url, tmp_path):
    engine = create_engine(pg_url)
    upgrade(engine)
    store = LocalObjectStore(tmp_path)
    buckets = Buckets(raw="raw", processed="processed", exports="exports")
    for bucket in (buckets.raw, buckets.processed, buckets.exports):
        store.ensure_bucket(bucket)
    yield SimpleNamespace(engine=engine, store=store, buckets=buckets)
    engine.dispose()


def add_user(conn, user_id, twitter_id, *, tweets=(), revoked=False):
    conn.execute(
        sa.insert(t.users).values(
            id=user_id, twitter_user_id=twitter_id, handle=HANDLE + twitter_id, email=EMAIL
        )
    )
    if revoked:
        conn.execute(
            sa.insert(t.oauth_tokens).values(
                user_id=user_id, access_token_encrypted="ciphertext", revoked=True
            )
        )
    for tweet_id in tweets:
        conn.execute(
            sa.insert(t.tweets).values(
                id=tweet_id, user_id=user_id, text=f"mail me at {EMAIL}", tweeted_at=at(-48)
            )
        )


def move_last_audit_entry(engine, when):
    """The audit log stamps entries with the real clock; put the newest one on the test's day."""
    with engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(t.audit_log.c.id))).scalar_one()
        conn.execute(sa.update(t.audit_log).where(t.audit_log.c.id == last).values(created_at=when))


def seed_exports(engine):
    e = t.data_exports
    rows = [
        # served on the day: latencies 30 s, 20 min (requested the day before), 120 s, 60 s
        ("ready", at(10), at(10, 0, 30)),
        ("expired", at(0, -10), at(0, 10)),
        ("ready", at(12), at(12, 2)),
        ("ready", at(13), at(13, 1)),
        ("failed", at(14), at(14, 0, 5)),
        # requested on the day, not completed on it
        ("pending", NEXT - timedelta(microseconds=1), None),
        ("running", at(22), None),
        ("ready", at(23), NEXT),  # completed at the first instant of the next day
        # the day before
        ("ready", at(-3), BEFORE),
        ("failed", at(-2), at(-1)),
        # the day after
        ("ready", NEXT + timedelta(hours=1), NEXT + timedelta(hours=2)),
    ]
    with engine.begin() as conn:
        for i, (status, requested, completed) in enumerate(rows):
            conn.execute(
                sa.insert(e).values(
                    user_id=f"usr-export-{i}", status=status, requested_at=requested, completed_at=completed,
                    error=f"could not reach {EMAIL}" if status == "failed" else None,
                )
            )


def seed_erasures(env):
    """Two erasures on the day (one of a user with tweets and an export object, one finding
    nothing left), one on the day before and one on the day after."""
    engine = env.engine
    with engine.begin() as conn:
        add_user(conn, USER_IDS[0], "9001", tweets=(101, 102))
        conn.execute(
            sa.insert(t.sanitized_tweets).values(
                tweet_id=101, user_id=USER_IDS[0], text="mail me at [EMAIL]", pii_counts={"email": 1},
                redactor_version="v1", created_at=at(8),  # erased below: must not count as redacted
            )
        )
        key = f"user-exports/{USER_IDS[0]}/1.json"
        conn.execute(
            sa.insert(t.data_exports).values(
                user_id=USER_IDS[0], status="ready", object_key=key, requested_at=at(-240),
                completed_at=at(-239),
            )
        )
        add_user(conn, USER_IDS[1], "9002", tweets=(201,))
    env.store.put(env.buckets.exports, key, json.dumps({"email": EMAIL}).encode())
    for user_id, when in ((USER_IDS[0], at(9)), (USER_IDS[0], at(9, 5)), (USER_IDS[1], NEXT)):
        erasure.erase_user(
            engine, env.store, env.buckets, user_id, actor="pipeline:erasure", check_consent=False
        )
        move_last_audit_entry(engine, when)
    erasure.erase_user(
        engine, env.store, env.buckets, USER_IDS[2], actor="pipeline:erasure", check_consent=False
    )
    move_last_audit_entry(engine, BEFORE)


def seed_retention(env):
    """A real retention run deleting the 3 tweets of a user with a revoked token, and a second
    entry on the day; one entry on the day after."""
    with env.engine.begin() as conn:
        add_user(conn, USER_IDS[3], "9004", tweets=(401, 402, 403), revoked=True)
    result = retention.apply_retention(
        env.engine, env.store, env.buckets, now=at(3), actor="pipeline:retention"
    )
    assert result.counts["revoked_token_data"] == 3 and result.total == 3
    move_last_audit_entry(env.engine, at(3))
    for counts, when in (
        ({"expired_exports": 2, "hard_deleted_users": 1}, at(23, 59, 59)),
        ({"expired_exports": 50}, NEXT),
    ):
        audit.append(
            env.engine, actor="pipeline:retention", action=audit.AuditAction.RETENTION_PURGE,
            subject_type="retention", details={"counts": counts},
        )
        move_last_audit_entry(env.engine, when)


def seed_sanitized(engine):
    with engine.begin() as conn:
        add_user(conn, "usr-pii-owner", "9005", tweets=range(501, 508))
        rows = [
            (501, {"email": 2, "phone": 1}, at(1)),
            (502, {}, at(2)),
            (503, None, at(0)),  # the first instant of the day
            (504, {"ip": 1, EMAIL: 4}, at(23)),  # a key that is personal data counts as `other`
            (505, {"email": 9}, NEXT),
            (506, {"card": 3}, BEFORE),
            (507, {"iban": 1}, NEXT + timedelta(hours=5)),
        ]
        for tweet_id, counts, when in rows:
            conn.execute(
                sa.insert(t.sanitized_tweets).values(
                    tweet_id=tweet_id, user_id="usr-pii-owner", text="redacted", pii_counts=counts,
                    redactor_version="v1", created_at=when,
                )
            )


def seed_alerts(engine):
    rows = [
        ("rate_limit_violations", "warn", at(1)),
        ("rate_limit_violations", "warn", at(2)),
        ("run_failure", "error", at(5)),
        ("database_health", "critical", at(0)),
        (f"login_{EMAIL}", "warn", at(6)),  # a check name holding personal data is not shown
        ("run_failure", "error", NEXT),
        ("run_failure", "error", BEFORE),
    ]
    with engine.begin() as conn:
        for i, (check_name, severity, when) in enumerate(rows):
            conn.execute(
                sa.insert(t.alerts).values(
                    check_name=check_name, severity=severity, created_at=when, dedup_key=f"{check_name}:{i}",
                    message=f"user {USER_IDS[0]} ({EMAIL}, {IP}) failed",
                )
            )


def seed_consent(engine):
    with engine.begin() as conn:
        for user_id, action, source, when in (
            ("usr-c1", "grant", "web", at(0)),
            ("usr-c1", "revoke", "cli", at(7)),
            ("usr-c2", "grant", "oauth", at(23, 59, 59)),
            ("usr-c3", "revoke", "web", NEXT),
            ("usr-c4", "grant", "web", BEFORE),
        ):
            consent_log.record_consent(
                conn, user_id=user_id, action=action, source=source, reason=f"asked by {EMAIL}",
                ip_address=IP, user_agent="Mozilla/5.0", now=when,
            )
        # A source outside the known ones (here personal data) counts as `other`.
        conn.execute(
            sa.insert(t.consent_audit_log).values(
                user_id="usr-c5", action="revoke", source=EMAIL, ip_address=IP, created_at=at(12)
            )
        )


@pytest.fixture
def seeded(env):
    seed_exports(env.engine)
    seed_erasures(env)
    seed_retention(env)
    seed_sanitized(env.engine)
    seed_alerts(env.engine)
    seed_consent(env.engine)
    return env


GENERATED = datetime(2026, 11, 21, 0, 20, tzinfo=UTC)


def test_exports_counts_and_latency(seeded):
    day = report.gather(seeded.engine, DAY, now=GENERATED)
    x = day.exports
    assert x.completed_by_status == {"expired": 1, "failed": 1, "ready": 3}
    assert (x.served, x.failed, x.completed) == (4, 1, 5)
    assert x.latencies_seconds == (30.0, 60.0, 120.0, 1200.0)
    assert x.p50_seconds == pytest.approx(90.0)
    assert x.p95_seconds == pytest.approx(120 + (1200 - 120) * 0.85)
    assert x.max_seconds == 1200.0
    assert (x.requested, x.still_open) == (7, 2)


def test_erasures_from_the_erasure_audit_entries(seeded):
    e = report.gather(seeded.engine, DAY, now=GENERATED).erasures
    assert e.entries == 2
    assert e.by_outcome == {"erased": 1, "nothing left to erase": 1}
    assert e.rows_by_table == {"data_exports": 1, "sanitized_tweets": 1, "tweets": 2, "users": 1}
    assert e.objects == 1


def test_retention_per_rule(seeded):
    r = report.gather(seeded.engine, DAY, now=GENERATED).retention
    assert r.runs == 2
    assert list(r.by_rule) == list(retention.RULES)
    assert r.by_rule == dict.fromkeys(retention.RULES, 0) | {
        "revoked_token_data": 3, "expired_exports": 2, "hard_deleted_users": 1
    }
    assert r.deleted == 6


def test_pii_alerts_and_consent(seeded):
    day = report.gather(seeded.engine, DAY, now=GENERATED)
    assert day.pii.tweets_redacted == 4
    assert day.pii.tweets_with_pii == 2
    assert day.pii.items_by_kind == {"email": 2, "ip": 1, "other": 4, "phone": 1}
    assert day.alerts == {
        ("database_health", "critical"): 1,
        ("other", "warn"): 1,
        ("rate_limit_violations", "warn"): 2,
        ("run_failure", "error"): 1,
    }
    assert day.consent_by_action == {"grant": 2, "revoke": 2}
    assert day.consent_by_source == {"cli": 1, "oauth": 1, "other": 1, "web": 1}
    assert day.pii_check is None


def test_other_days_are_excluded(seeded):
    before = report.gather(seeded.engine, date(2026, 11, 19), now=GENERATED)
    assert before.exports.completed_by_status == {"failed": 1, "ready": 1}
    assert before.exports.latencies_seconds == (3 * 3600 - 1e-6,)
    assert before.erasures.entries == 1 and before.retention.runs == 0
    assert before.pii.items_by_kind == {"card": 3}
    assert before.alerts == {("run_failure", "error"): 1}
    assert before.consent_by_action == {"grant": 1}
    after = report.gather(seeded.engine, date(2026, 11, 21), now=GENERATED)
    assert after.exports.completed_by_status == {"ready": 2}
    assert after.exports.latencies_seconds == (3600.0, 3600.0)
    assert after.erasures.entries == 1 and after.erasures.by_outcome == {"erased": 1}
    assert after.retention.by_rule["expired_exports"] == 50
    assert after.pii.items_by_kind == {"email": 9, "iban": 1}
    assert after.consent_by_action == {"revoke": 1}
    empty = report.gather(seeded.engine, date(2026, 11, 10), now=GENERATED)
    assert empty.events == 0 and empty.exports.p95_seconds is None


def test_events_and_figures(seeded):
    day = report.gather(
        seeded.engine, DAY, pii_check=report.CheckFigures(passed=3, failed=1), now=GENERATED
    )
    # 5 exports completed + 2 erasures + 2 retention runs + 4 tweets + 4 check runs + 5 alerts + 4 consent
    assert day.events == 26
    assert day.figures() == {
        "exports_served": 4, "exports_failed": 1, "export_latency_p50_seconds": 90.0,
        "export_latency_p95_seconds": 1038.0, "export_latency_max_seconds": 1200.0, "erasures": 2,
        "retention_deleted": 6, "tweets_redacted": 4, "pii_items_redacted": 8, "pii_check_passed": 3,
        "pii_check_failed": 1, "alerts": 5, "consent_changes": 4,
    }


def svg_of(markdown: str) -> str:
    match = re.search(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, "the chart is embedded as a data URI"
    return base64.b64decode(match.group(1)).decode()


def test_markdown_and_chart(seeded):
    day = report.gather(seeded.engine, DAY, pii_check=report.CheckFigures(passed=3, failed=1), now=GENERATED)
    markdown = report_render.render_markdown(day)
    assert markdown.startswith("# Compliance report, 2026-11-20 (UTC)")
    assert "5 completed this day: **4 served**, 1 failed" in markdown
    assert "| 1 min 30 s | 17 min 18 s | 20 min 00 s |" in markdown
    assert "| `revoked_token_data` | 3 |" in markdown
    assert "| `rate_limit_violations` | `warn` | 2 |" in markdown
    assert "**3 passed**, **1 failed**" in markdown
    svg = svg_of(markdown)
    root = ET.fromstring(svg)  # well-formed
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = list(root.iter("{http://www.w3.org/2000/svg}text"))
    # Each bar: its label (right-aligned, left of the axis), then its value.
    labels = {el.text: texts[i + 1].text for i, el in enumerate(texts) if el.get("text-anchor") == "end"}
    assert labels["exports served"] == "4"
    assert labels["retention deletions"] == "6"
    assert labels["PII check failures"] == "1"
    assert labels["consent changes"] == "4"
    assert labels["p95"] == "17 min 18 s"
    # A bar for every non-zero count.
    assert len(root.findall(".//{http://www.w3.org/2000/svg}rect[@class='count']")) == 9


def test_no_personal_data_anywhere(seeded):
    day = report.gather(seeded.engine, DAY, pii_check=report.CheckFigures(passed=1, failed=0), now=GENERATED)
    markdown = report_render.render_markdown(day)
    outputs = [markdown, svg_of(markdown), json.dumps(day.figures()), repr(day)]
    planted = (*USER_IDS, "usr-export-", "usr-pii-owner", "usr-c1", "usr-c5", EMAIL, IP, HANDLE, "Mozilla")
    for text in outputs:
        for value in planted:
            assert value not in text


def test_without_check_history_and_empty_day(env):
    day = report.gather(env.engine, DAY, now=GENERATED)
    markdown = report_render.render_markdown(day)
    assert "not available from this Dagster instance" in markdown
    assert "| – | – | – |" in markdown
    svg = ET.fromstring(svg_of(markdown))
    assert not svg.findall(".//{http://www.w3.org/2000/svg}rect[@class='count']")


def test_check_figures_counts_the_day_only():
    evaluations = [
        (START, True), (BEFORE, False), (NEXT, False), (at(12), False), (at(13), True),
        (datetime(2026, 11, 20, 23, 0), True),  # naive: taken as UTC
    ]
    assert report.check_figures(evaluations, DAY) == report.CheckFigures(passed=3, failed=1)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [((), 50, None), ((7.0,), 95, 7.0), ((1.0, 2.0, 3.0, 4.0), 50, 2.5), ((0.0, 10.0), 95, 9.5)],
)
def test_percentile(values, q, expected):
    assert report.percentile(values, q) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"), (0.84, "0.8 s"), (42.4, "42 s"), (185, "3 min 05 s"), (7620, "2 h 07 min"),
        (100800, "1 d 4 h"),
    ],
)
def test_duration(seconds, text):
    assert report_render.duration(seconds) == text


def test_local_sqlite_database(tmp_path):
    """The local default app database: naive UTC timestamps, the same day boundaries."""
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        for requested, completed in ((at(1), at(1, 0, 45)), (at(-1), BEFORE), (at(23), NEXT)):
            conn.execute(
                sa.insert(t.data_exports).values(
                    user_id="usr-local", status="ready", requested_at=requested, completed_at=completed
                )
            )
    seed_alerts(engine)
    day = report.gather(engine, DAY, now=GENERATED)
    engine.dispose()
    assert day.exports.latencies_seconds == (45.0,)
    assert (day.exports.requested, day.alert_count) == (2, 5)
