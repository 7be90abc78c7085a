"""Erasure of one user's personal data (GDPR Art. 17), and the scan that proves it.

`erase_user` deletes, for one internal user id, in ONE database transaction: analysis failures,
analyses, sanitized tweets, tweets, API usage rows, OAuth tokens, subscriptions, data export
records and the `users` row; and every object of the user in the object store (the exports,
processed and raw buckets under `user-exports/<user_id>/` and `users/<user_id>/`, plus each
object a `data_exports` row points at). It appends one `erase` entry to the audit log, counts
only, in the same transaction.

Order: objects are deleted inside the transaction, before the rows that point at them, and the
transaction commits last. If an object delete fails, the transaction rolls back and every row is
still there for the next run to find. If the commit fails after the objects are gone, rows point
at missing objects, which the next run deletes (deleting a missing object is a no-op). The other
order — commit, then delete objects — could lose the only pointer to an object that a crash left
behind, and nothing would find it again. Erasure is idempotent: a second run finds nothing,
deletes nothing, and its scan passes.

Kept on purpose: `audit_log` and `consent_audit_log` keep the internal user id. They are the
evidence that consent was given and withdrawn and that the erasure happened (Art. 17(3)(b) legal
obligation, 17(3)(e) legal claims; Art. 5(2) accountability); they hold no tweet text, handle,
email or token (the audit log refuses personal data in its details).

`find_remaining` then looks for the user's identifiers (internal id, Twitter user id, handle,
email) in every app table but those two, and in the object store, and reports counts per table
and bucket — never the values or keys themselves. The identifiers are captured in memory before
the delete (`UserIdentifiers`, whose repr withholds them), never written to logs or metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from repazoo_assets.lib.compliance import consent as consent_log
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.settings import Buckets
from repazoo_assets.lib.storage.base import ObjectStore

# Where a user's objects live, in every bucket. The data export writes
# `user-exports/<user_id>/<request_id>.json` to the exports bucket.
USER_PREFIXES = ("user-exports/{user_id}/", "users/{user_id}/")
# Kept through erasure, by law (see the module docstring).
RETAINED_TABLES = frozenset({"audit_log", "consent_audit_log"})
# Deleted child before parent, so each count is the table's own rows (not hidden in a cascade).
ERASED_TABLES = (
    t.analysis_failures,
    t.analyses,
    t.sanitized_tweets,
    t.tweets,
    t.api_usage,
    t.oauth_tokens,
    t.subscriptions,
    t.data_exports,
    t.users,
)


@dataclass(frozen=True, eq=False)
class UserIdentifiers:
    """What identifies a user, held in memory for the post-erasure scan only."""

    user_id: str
    twitter_user_id: str | None = None
    handle: str | None = None
    email: str | None = None

    def __repr__(self) -> str:  # never the values: this object can end up in a traceback
        return "UserIdentifiers(<withheld>)"

    __str__ = __repr__

    def values(self) -> list[str]:
        return [v for v in (self.user_id, self.twitter_user_id, self.handle, self.email) if v]

    def key_tokens(self) -> set[str]:
        """What may name an object: the ids (an e-mail does not appear in our keys, but is matched
        too), compared case-insensitively. Not the handle: a handle such as `events`, `hours` or
        `12` is also a word of our own key layout, and a false remnant fails the erasure run."""
        return {v.lower() for v in (self.user_id, self.twitter_user_id, self.email) if v}


@dataclass(eq=False)
class ErasureResult:
    user_id: str
    counts: dict[str, int]
    identifiers: UserIdentifiers = field(repr=False)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Remaining:
    """What the scan found: rows per table, objects per bucket. Counts only."""

    tables: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.tables.values()) and not any(self.objects.values())

    @property
    def total(self) -> int:
        return sum(self.tables.values()) + sum(self.objects.values())


class ErasureRefused(RuntimeError):
    """The user's consent stands: nothing was erased."""


# --- which users ----------------------------------------------------------------------------
def _revoked_by_consent_log() -> sa.Select:
    """User ids whose latest consent event is a revoke."""
    log = t.consent_audit_log
    last = sa.select(log.c.user_id, sa.func.max(log.c.id).label("id")).group_by(log.c.user_id).subquery()
    return sa.select(last.c.user_id).join(log, log.c.id == last.c.id).where(log.c.action == consent_log.REVOKE)


def erasable(conn: Connection, user_id: str) -> bool:
    """True when the user withdrew consent (latest consent event a revoke, or token revoked), or
    no users row is left (a re-run over an erased user)."""
    if conn.execute(sa.select(t.users.c.id).where(t.users.c.id == user_id)).first() is None:
        return True
    event = consent_log.latest(conn, user_id)
    if event is not None:
        return event.action == consent_log.REVOKE
    token = conn.execute(
        sa.select(t.oauth_tokens.c.revoked).where(
            t.oauth_tokens.c.user_id == user_id, t.oauth_tokens.c.revoked.is_(True)
        )
    ).first()
    return token is not None


def pending_erasures(conn: Connection, limit: int = 100) -> list[str]:
    """Users who withdrew consent and still have data: a users row with a revoked token or a
    latest `revoke`, or export records left after their users row went."""
    revoked_tokens = sa.select(t.oauth_tokens.c.user_id).where(t.oauth_tokens.c.revoked.is_(True))
    revoked = _revoked_by_consent_log()
    has_no_grant_after_revoke = sa.or_(
        t.users.c.id.in_(revoked),
        sa.and_(t.users.c.id.in_(revoked_tokens), ~t.users.c.id.in_(sa.select(t.consent_audit_log.c.user_id))),
    )
    users = sa.select(t.users.c.id.label("user_id")).where(has_no_grant_after_revoke)
    orphans = sa.select(t.data_exports.c.user_id).where(
        t.data_exports.c.user_id.in_(revoked), ~t.data_exports.c.user_id.in_(sa.select(t.users.c.id))
    )
    union = sa.union(users, orphans).subquery()
    return list(conn.execute(sa.select(union.c.user_id).order_by(union.c.user_id).limit(limit)).scalars())


# --- capture and delete -----------------------------------------------------------------------
def capture_identifiers(conn: Connection, user_id: str) -> UserIdentifiers:
    """Read the user's identifiers (locking the row until the transaction ends on PostgreSQL)."""
    row = conn.execute(
        sa.select(t.users.c.twitter_user_id, t.users.c.handle, t.users.c.email)
        .where(t.users.c.id == user_id)
        .with_for_update()
    ).first()
    if row is None:
        return UserIdentifiers(user_id)
    return UserIdentifiers(user_id, row.twitter_user_id, row.handle, row.email)


def _user_objects(conn: Connection, store: ObjectStore, buckets: Buckets, user_id: str) -> list[tuple[str, str]]:
    found: dict[tuple[str, str], None] = {}
    export_keys = conn.execute(
        sa.select(t.data_exports.c.object_key).where(
            t.data_exports.c.user_id == user_id, t.data_exports.c.object_key.is_not(None)
        )
    ).scalars()
    for key in export_keys:
        found[(buckets.exports, key)] = None
    for bucket in (buckets.exports, buckets.processed, buckets.raw):
        for prefix in USER_PREFIXES:
            for key in store.list_keys(bucket, prefix.format(user_id=user_id)):
                found[(bucket, key)] = None
    return list(found)


def erase_user(
    engine: Engine,
    store: ObjectStore,
    buckets: Buckets,
    user_id: str,
    *,
    actor: str,
    check_consent: bool = True,
) -> ErasureResult:
    """Erase the user (see the module docstring). Raises ErasureRefused, having changed nothing,
    when `check_consent` and the user's consent stands."""
    if not user_id:
        raise ValueError("user_id must be non-empty")
    with engine.begin() as conn:
        if check_consent and not erasable(conn, user_id):
            raise ErasureRefused(f"user {user_id} has not withdrawn consent; nothing was erased")
        identifiers = capture_identifiers(conn, user_id)
        counts: dict[str, int] = {}
        objects = _user_objects(conn, store, buckets, user_id)
        # Objects first, inside the transaction: a failure here rolls every row back.
        counts["objects"] = sum(1 for bucket, key in objects if store.delete(bucket, key))
        for table in ERASED_TABLES:
            column = table.c.id if table is t.users else table.c.user_id
            counts[table.name] = conn.execute(sa.delete(table).where(column == user_id)).rowcount
        audit.append(
            conn, actor=actor, action=audit.AuditAction.ERASE, subject_type="user", subject_id=user_id,
            details={"counts": counts, "outcome": "erased" if sum(counts.values()) else "nothing left to erase"},
        )
    return ErasureResult(user_id, counts, identifiers)


# --- the scan ---------------------------------------------------------------------------------
_CHECK_IN = re.compile(r"^\s*(\w+)\s+IN\s*\(", re.IGNORECASE)
# Columns that hold keys, paths or URLs: matched by path segment, not only by equality.
_PATH_LIKE = ("key", "url", "prefix")


def _vocabulary_columns(table: sa.Table) -> set[str]:
    """Columns limited by a CHECK to a fixed list (tier, status, …): a handle that happens to be
    'active' must not look like a remnant."""
    names = set()
    for constraint in table.constraints:
        if isinstance(constraint, sa.CheckConstraint):
            match = _CHECK_IN.match(str(constraint.sqltext))
            if match:
                names.add(match.group(1))
    return names


_HANDLE_COLUMNS = {"handle", "display_name", "text", "email"}


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _segment_patterns(value: str) -> list[str]:
    v = _escape_like(value)
    return [f"{v}/%", f"%/{v}/%", f"%/{v}", f"%/{v}.%", f"{v}.%", f"%={v}/%", f"%={v}"]


def _table_conditions(table: sa.Table, ids: UserIdentifiers) -> list[sa.ColumnElement]:
    lowered = sorted({v.lower() for v in (ids.user_id, ids.twitter_user_id, ids.email) if v})
    # A handle is an ordinary word ('web', 'vader'): compared only where handles and text live.
    with_handle = sorted({*lowered, ids.handle.lower()}) if ids.handle else lowered
    path_values = [v for v in (ids.user_id, ids.twitter_user_id) if v]
    vocabulary = _vocabulary_columns(table)
    conditions = []
    for column in table.columns:
        if not isinstance(column.type, sa.String) or column.name in vocabulary:
            continue
        values = with_handle if column.name in _HANDLE_COLUMNS else lowered
        conditions.append(sa.func.lower(column).in_(values))
        if column.name.endswith(_PATH_LIKE):
            for value in path_values:
                conditions += [column.like(p, escape="\\") for p in _segment_patterns(value)]
    return conditions


def find_remaining_rows(conn: Connection, ids: UserIdentifiers) -> dict[str, int]:
    """Rows per table (all app tables but the retained logs) where a text column equals one of
    the identifiers, or a key/URL column has the internal or Twitter id as a path segment."""
    found = {}
    for table in t.metadata.sorted_tables:
        if table.name in RETAINED_TABLES:
            continue
        conditions = _table_conditions(table, ids)
        if not conditions:
            continue
        count = conn.execute(sa.select(sa.func.count()).select_from(table).where(sa.or_(*conditions))).scalar_one()
        if count:
            found[table.name] = count
    return found


def key_names_user(key: str, tokens: set[str]) -> bool:
    """True when a path segment of `key` is one of `tokens`: `x/<id>/…`, `<id>.json`,
    `user=<id>/…`. Not a substring match: `events-12345-12400.parquet` does not name user 12345."""
    for segment in key.lower().split("/"):
        if segment in tokens or segment.split(".", 1)[0] in tokens or segment.rsplit("=", 1)[-1] in tokens:
            return True
    return False


def _bucket_keys(store: ObjectStore, bucket: str, user_id: str, scan_all: bool) -> Iterator[str]:
    if scan_all:
        yield from store.list_keys(bucket)
        return
    for prefix in USER_PREFIXES:
        yield from store.list_keys(bucket, prefix.format(user_id=user_id))


def find_remaining_objects(
    store: ObjectStore, buckets: Buckets, ids: UserIdentifiers, *, scan_all_keys: bool = True
) -> dict[str, int]:
    """Objects per bucket under the user's prefixes or whose key names the user. `scan_all_keys`
    lists whole buckets (one listing per bucket); without it only the user's prefixes."""
    tokens = ids.key_tokens()
    prefixes = tuple(p.format(user_id=ids.user_id) for p in USER_PREFIXES)
    found = {}
    for bucket in dict.fromkeys((buckets.exports, buckets.processed, buckets.raw)):
        count = sum(
            1 for key in _bucket_keys(store, bucket, ids.user_id, scan_all_keys)
            if key.startswith(prefixes) or key_names_user(key, tokens)
        )
        if count:
            found[bucket] = count
    return found


def find_remaining(
    engine: Engine, store: ObjectStore, buckets: Buckets, ids: UserIdentifiers, *, scan_all_keys: bool = True
) -> Remaining:
    with engine.connect() as conn:
        tables = find_remaining_rows(conn, ids)
    return Remaining(tables, find_remaining_objects(store, buckets, ids, scan_all_keys=scan_all_keys))


def erase_users(
    engine: Engine, store: ObjectStore, buckets: Buckets, user_ids: Iterable[str], *, actor: str,
    scan_all_keys: bool = True,
) -> list[tuple[ErasureResult, Remaining]]:
    """Erase each user in turn (one transaction each) and scan for what remains."""
    out = []
    for user_id in user_ids:
        result = erase_user(engine, store, buckets, user_id, actor=actor)
        out.append((result, find_remaining(engine, store, buckets, result.identifiers, scan_all_keys=scan_all_keys)))
    return out
