"""The app database schema (SQLAlchemy Core), mirrored by the Alembic migrations.

Natural keys carry unique constraints so that re-running a partition is an upsert, never a
duplicate: a tweet by its id, an analysis by (tweet, model), a raw batch by its id range, a
client delivery by (client, window). Indexes follow the pipelines' queries, named next to each.
`repazoo_assets_tests/lib/db/test_migrations.py` fails if these tables and the migrations drift.
"""

from __future__ import annotations

import sqlalchemy as sa

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

TIERS = ("basic", "pro")
SUBSCRIPTION_STATUSES = ("active", "past_due", "cancelled")
PRIVACY_LEVELS = ("standard", "gdpr", "hipaa")
SYNC_FREQUENCIES = ("hourly", "daily", "weekly")
DELIVERY_FORMATS = ("parquet", "jsonl")
EXPORT_STATUSES = ("pending", "running", "ready", "failed", "expired")
USER_REQUEST_KINDS = ("sync", "analyse")
USER_REQUEST_STATUSES = ("pending", "launching", "launched", "done", "failed")
USER_REQUEST_OPEN_STATUSES = ("pending", "launching", "launched")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _created_at() -> sa.Column:
    return sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now())


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("twitter_user_id", sa.String(32), nullable=False, unique=True),
    sa.Column("handle", sa.String(64)),
    sa.Column("display_name", sa.String(128)),
    sa.Column("email", sa.String(320)),
    _created_at(),
    sa.Column("updated_at", Timestamp),
    sa.Column("last_fetched_at", Timestamp),
    sa.Column("deleted_at", Timestamp),
)

oauth_tokens = sa.Table(
    "oauth_tokens",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False, server_default="twitter"),
    # Fernet ciphertext only: plaintext tokens never reach the database.
    sa.Column("access_token_encrypted", sa.Text, nullable=False),
    sa.Column("refresh_token_encrypted", sa.Text),
    sa.Column("scopes", sa.String(512)),
    sa.Column("expires_at", Timestamp),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("revoked_at", Timestamp),
    _created_at(),
    sa.Column("updated_at", Timestamp),
    sa.UniqueConstraint("user_id", "provider"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("started_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("current_period_end", Timestamp),
    sa.Column("cancelled_at", Timestamp),
    sa.CheckConstraint(_in("tier", TIERS), name="tier"),
    sa.CheckConstraint(_in("status", SUBSCRIPTION_STATUSES), name="status"),
    # Consent check: "does this user have an active subscription?"
    sa.Index(None, "user_id", "status"),
)

tweets = sa.Table(
    "tweets",
    metadata,
    # Tweet ids are 64-bit snowflakes: numeric order is time order, which `since_id` relies on.
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("lang", sa.String(16)),
    sa.Column("tweeted_at", Timestamp, nullable=False),
    sa.Column("public_metrics", sa.JSON),
    sa.Column("entities", sa.JSON),
    sa.Column("source", sa.String(16), nullable=False, server_default="api"),
    sa.Column("fetched_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("deleted_at", Timestamp),
    # Incremental fetch (max id per user) and per-user time ranges.
    sa.Index(None, "user_id", "id"),
    sa.Index(None, "user_id", "tweeted_at"),
)

sanitized_tweets = sa.Table(
    "sanitized_tweets",
    metadata,
    sa.Column("tweet_id", sa.BigInteger, sa.ForeignKey("tweets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("pii_counts", sa.JSON),
    sa.Column("redactor_version", sa.String(32), nullable=False),
    _created_at(),
    sa.Index(None, "user_id"),
)

analyses = sa.Table(
    "analyses",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tweet_id", sa.BigInteger, sa.ForeignKey("tweets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("sentiment_label", sa.String(16), nullable=False),
    sa.Column("sentiment_score", sa.Float, nullable=False),
    sa.Column("risk_score", sa.Float),
    sa.Column("risk_flags", sa.JSON),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("analysed_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("topics", sa.JSON),
    sa.UniqueConstraint("tweet_id", "model"),
    sa.Index(None, "user_id", "analysed_at"),
)

# Tweets a model could not analyse (its output stayed invalid after a retry): recorded with the
# reason, never stored as a fake result; retried when the partition runs again.
analysis_failures = sa.Table(
    "analysis_failures",
    metadata,
    sa.Column("tweet_id", sa.BigInteger, sa.ForeignKey("tweets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("model", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("failed_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Index(None, "user_id"),
)

api_usage = sa.Table(
    "api_usage",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE")),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    _created_at(),
    # Monthly quota: calls of one user to one provider since the month began.
    sa.Index(None, "user_id", "provider", "created_at"),
)

# Monitoring counts the events of one kind (`rate_limited`, `token_refresh_failed`,
# `quota_exceeded`) in a recent window every five minutes: an index range scan, not a table scan.
sa.Index("ix_api_usage_operation_created_at", api_usage.c.operation, api_usage.c.created_at)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    _created_at(),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject_type", sa.String(16), nullable=False),
    sa.Column("subject_id", sa.String(64)),
    sa.Column("details", sa.JSON),
    # Hash chain: each row stores the previous row's hash and its own (SHA-256 hex).
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False, unique=True),
    sa.Index(None, "subject_type", "subject_id"),
)

consent_audit_log = sa.Table(
    "consent_audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # No foreign key: the consent record must outlive the user's erasure.
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(256)),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("ip_address", sa.String(64)),
    sa.Column("user_agent", sa.String(512)),
    _created_at(),
    sa.Index(None, "user_id", "created_at"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    # One alert per check and window: a re-run of the check never alerts twice.
    sa.Column("dedup_key", sa.String(128), nullable=False, unique=True),
    _created_at(),
    sa.Column("notified_at", Timestamp),
    sa.Column("resolved_at", Timestamp),
    sa.Index(None, "check_name", "created_at"),
)

data_exports = sa.Table(
    "data_exports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("requested_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", Timestamp),
    sa.Column("completed_at", Timestamp),
    sa.Column("object_key", sa.String(512)),
    sa.Column("download_url", sa.Text),
    sa.Column("expires_at", Timestamp),
    sa.Column("error", sa.String(512)),
    sa.CheckConstraint(_in("status", EXPORT_STATUSES), name="status"),
    # The export sensor polls pending requests; the retention job finds expired ones.
    sa.Index(None, "status", "requested_at"),
    sa.Index(None, "user_id"),
)

events_log = sa.Table(
    "events_log",
    metadata,
    sa.Column("id", BigId, sa.Identity(), primary_key=True),
    # No foreign key: events for unknown clients must land and go to the dead-letter prefix.
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("ip_address", sa.String(64)),
    sa.Column("user_agent", sa.String(512)),
    sa.Column("url", sa.Text),
    # Text, not JSON: a malformed payload must be stored so it can be dead-lettered, not refused.
    sa.Column("payload", sa.Text),
    sa.Column("consent_analytics", sa.Boolean),
    sa.Column("consent_marketing", sa.Boolean),
    _created_at(),
    # PostgreSQL: the inserting transaction's id (xid8 as bigint, default pg_current_xact_id(),
    # set by migration 0003). The export reads only rows of finished transactions (below the
    # snapshot's xmin), so a late commit with a low id is never skipped. NULL on SQLite.
    sa.Column("txid", sa.BigInteger),
    sa.Index(None, "txid", "id"),
)

# One export window: the rows whose transactions finished in [xid_from, xid_to) (ids on SQLite,
# where writes commit in id order). Recorded before any object is written, so a crashed export
# resumes the same rows, cut into the same chunks, written to the same keys.
raw_export_windows = sa.Table(
    "raw_export_windows",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("xid_from", sa.BigInteger, nullable=False),
    sa.Column("xid_to", sa.BigInteger, nullable=False),
    sa.Column("chunk_rows", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    _created_at(),
    sa.Column("completed_at", Timestamp),
    sa.UniqueConstraint("xid_from"),
    sa.Index(None, "status"),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("privacy_level", sa.String(16), nullable=False),
    sa.Column("sync_frequency", sa.String(16), nullable=False),
    sa.Column("format", sa.String(16), nullable=False, server_default="parquet"),
    sa.Column("destination_endpoint_url", sa.String(512)),
    sa.Column("destination_bucket", sa.String(63), nullable=False),
    sa.Column("destination_prefix", sa.String(256), nullable=False, server_default=""),
    sa.Column("destination_region", sa.String(32)),
    # Encrypted with the token vault; never printed.
    sa.Column("credentials_encrypted", sa.Text),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    _created_at(),
    sa.Column("updated_at", Timestamp),
    sa.Column("deleted_at", Timestamp),
    sa.CheckConstraint(_in("privacy_level", PRIVACY_LEVELS), name="privacy_level"),
    sa.CheckConstraint(_in("sync_frequency", SYNC_FREQUENCIES), name="sync_frequency"),
    sa.CheckConstraint(_in("format", DELIVERY_FORMATS), name="format"),
)

client_deliveries = sa.Table(
    "client_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    sa.Column("window_start", Timestamp, nullable=False),
    sa.Column("window_end", Timestamp, nullable=False),
    sa.Column("object_key", sa.String(512), nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("delivered_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("client_id", "window_start", "window_end"),
)

raw_batches = sa.Table(
    "raw_batches",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("first_event_id", sa.BigInteger, nullable=False),
    sa.Column("last_event_id", sa.BigInteger, nullable=False),
    sa.Column("object_key", sa.String(512), nullable=False, unique=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("byte_size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    _created_at(),
    sa.Column("verified_at", Timestamp),
    sa.Column("cleaned_at", Timestamp),
    sa.Column("window_id", sa.BigInteger, sa.ForeignKey("raw_export_windows.id")),
    sa.Column("bad_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bad_object_key", sa.String(512)),
    sa.Column("min_created_at", Timestamp),
    sa.Column("max_created_at", Timestamp),
    sa.UniqueConstraint("first_event_id", "last_event_id"),
    # Cleanup finds verified batches not yet deleted from events_log.
    sa.Index(None, "cleaned_at"),
)

# Small named values monitoring keeps between runs, e.g. the last reading of the database's
# transaction counters, from which the queries-per-5-minutes check takes its delta.
monitoring_state = sa.Table(
    "monitoring_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# Work the web app asked for through the trigger client (repazoo_assets/client.py).
user_requests = sa.Table(
    "user_requests",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("source", sa.String(32), nullable=False, server_default="web"),
    sa.Column("run_id", sa.String(64)),
    sa.Column("requested_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("launched_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.CheckConstraint(_in("kind", USER_REQUEST_KINDS), name="kind"),
    sa.CheckConstraint(_in("status", USER_REQUEST_STATUSES), name="status"),
    # At most one open request per user and kind: a repeated request is the same request.
    sa.Index(
        "uq_user_requests_open", "user_id", "kind", unique=True,
        postgresql_where=sa.text("status IN ('pending', 'launching', 'launched')"),
        sqlite_where=sa.text("status IN ('pending', 'launching', 'launched')"),
    ),
    # The sensor's queue: pending and launched requests in order.
    sa.Index(None, "status", "id"),
)
