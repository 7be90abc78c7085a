"""Business clients of the event pipeline: privacy level, sync frequency, format and the bucket
they own. Their credentials are stored encrypted with the token vault and never returned by
the listing functions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security.vault import TokenVault

# S3 bucket naming rules: 3–63 characters, lowercase letters, digits, dots and hyphens, starting
# and ending with a letter or digit, not shaped like an IP address.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
EDITABLE = (
    "name", "privacy_level", "sync_frequency", "format", "destination_bucket", "destination_prefix",
    "destination_region", "destination_endpoint_url", "active",
)


class ClientError(ValueError):
    """Bad client input or state; the message names the field and never holds a credential."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never the secret
        return f"Credentials(access_key_id={self.access_key_id[:4]}…)"


def validate(values: dict[str, Any]) -> None:
    """Check the fields given (all optional: an update passes only what changes)."""
    checks = {
        "privacy_level": t.PRIVACY_LEVELS,
        "sync_frequency": t.SYNC_FREQUENCIES,
        "format": t.DELIVERY_FORMATS,
    }
    for field, allowed in checks.items():
        if field in values and values[field] not in allowed:
            raise ClientError(f"{field}: must be one of {', '.join(allowed)}, got {values[field]!r}")
    bucket = values.get("destination_bucket")
    if bucket is not None and (not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_LIKE.fullmatch(bucket)):
        raise ClientError(f"bucket: {bucket!r} is not a valid S3 bucket name (3–63 lowercase letters, digits, '.', '-')")
    prefix = values.get("destination_prefix")
    if prefix is not None and (prefix.startswith("/") or ".." in prefix.split("/")):
        raise ClientError("prefix: must be relative, without '..' segments")
    url = values.get("destination_endpoint_url")
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClientError(f"endpoint URL: {url!r} is not an http(s) URL")
    if "name" in values and not str(values["name"]).strip():
        raise ClientError("name: must not be empty")


def add_client(
    conn: Connection, vault: TokenVault, client_id: str, values: dict[str, Any], credentials: Credentials | None
) -> None:
    if not _CLIENT_ID.fullmatch(client_id):
        raise ClientError(f"id: {client_id!r} must be lowercase letters, digits, '-' or '_' (at most 64)")
    for field in ("name", "privacy_level", "sync_frequency", "destination_bucket"):
        if values.get(field) is None:
            raise ClientError(f"{field}: required")
    validate(values)
    existing = conn.execute(sa.select(t.clients.c.deleted_at).where(t.clients.c.id == client_id)).first()
    if existing is not None and existing.deleted_at is None:
        raise ClientError(f"client {client_id} already exists; use `repazoo clients update`")
    row = {k: v for k, v in values.items() if k in EDITABLE and v is not None}
    row.update(
        id=client_id,
        credentials_encrypted=_encrypt(vault, credentials),
        active=True,
        deleted_at=None,
        updated_at=datetime.now(UTC),
    )
    if existing is not None:  # re-adding a removed client
        conn.execute(sa.update(t.clients).where(t.clients.c.id == client_id).values(**row))
    else:
        conn.execute(sa.insert(t.clients).values(**row))


def update_client(
    conn: Connection, vault: TokenVault, client_id: str, values: dict[str, Any], credentials: Credentials | None
) -> list[str]:
    """Change the given fields; returns the names of the fields changed (never values)."""
    _require_live(conn, client_id)
    changes = {k: v for k, v in values.items() if k in EDITABLE and v is not None}
    validate(changes)
    if credentials is not None:
        changes["credentials_encrypted"] = _encrypt(vault, credentials)
    if not changes:
        raise ClientError("nothing to update: give at least one option")
    conn.execute(
        sa.update(t.clients).where(t.clients.c.id == client_id).values(**changes, updated_at=datetime.now(UTC))
    )
    return sorted("credentials" if k == "credentials_encrypted" else k for k in changes)


def remove_client(conn: Connection, client_id: str) -> None:
    """Soft delete: the client stops receiving deliveries; its records stay for the audit."""
    _require_live(conn, client_id)
    now = datetime.now(UTC)
    conn.execute(
        sa.update(t.clients).where(t.clients.c.id == client_id).values(active=False, deleted_at=now, updated_at=now)
    )


def list_clients(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(t.clients).where(t.clients.c.deleted_at.is_(None)).order_by(t.clients.c.id)).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "privacy_level": r.privacy_level,
            "sync_frequency": r.sync_frequency,
            "format": r.format,
            "destination": f"s3://{r.destination_bucket}/{r.destination_prefix}".rstrip("/")
            + (f" via {r.destination_endpoint_url}" if r.destination_endpoint_url else ""),
            "credentials": "set" if r.credentials_encrypted else "none (instance role)",
            "active": r.active,
        }
        for r in rows
    ]


def load_credentials(conn: Connection, vault: TokenVault, client_id: str) -> Credentials | None:
    encrypted = conn.execute(
        sa.select(t.clients.c.credentials_encrypted).where(t.clients.c.id == client_id)
    ).scalar_one_or_none()
    if not encrypted:
        return None
    data = json.loads(vault.decrypt(encrypted))
    return Credentials(data["access_key_id"], data["secret_access_key"])


def _encrypt(vault: TokenVault, credentials: Credentials | None) -> str | None:
    if credentials is None:
        return None
    if not credentials.access_key_id or not credentials.secret_access_key:
        raise ClientError("credentials: both the access key id and the secret access key are needed")
    return vault.encrypt(
        json.dumps({"access_key_id": credentials.access_key_id, "secret_access_key": credentials.secret_access_key})
    )


def _require_live(conn: Connection, client_id: str) -> None:
    row = conn.execute(sa.select(t.clients.c.deleted_at).where(t.clients.c.id == client_id)).first()
    if row is None or row.deleted_at is not None:
        raise ClientError(f"no client {client_id}")
