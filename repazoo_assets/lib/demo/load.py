"""Load a synthetic demo dataset into the app database, idempotently.

Users, subscriptions and clients are upserts on their natural keys. Events have no natural key
(the database assigns ids), so they are inserted only for clients this call created: loading the
same dataset twice never doubles the event backlog. Tweets are not loaded here: locally they come
from the account archives (`tweets.js`) through the tweet pipeline, as from the real API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import upsert
from repazoo_assets.lib.demo.generator import DemoDataset

_EVENT_BATCH = 5_000


@dataclass(frozen=True)
class LoadSummary:
    users: int
    new_clients: int
    events: int


def load_dataset(engine: Engine, dataset: DemoDataset) -> LoadSummary:
    with engine.begin() as conn:
        _load_users(conn, dataset)
        new_clients = _load_clients(conn, dataset)
        events = _load_events(conn, dataset, new_clients)
    return LoadSummary(users=len(dataset.users), new_clients=len(new_clients), events=events)


def _load_users(conn: sa.Connection, dataset: DemoDataset) -> None:
    rows = [
        {
            "id": u.user_id,
            "twitter_user_id": u.twitter_user_id,
            "handle": u.handle,
            "display_name": u.display_name,
            "email": u.email,
            "created_at": u.created_at,
        }
        for u in dataset.users
    ]
    upsert(conn, t.users, rows, key=["id"])
    with_subscription = set(
        conn.execute(
            sa.select(t.subscriptions.c.user_id).where(t.subscriptions.c.user_id.in_([r["id"] for r in rows]))
        ).scalars()
    )
    new_subscriptions = [
        {
            "user_id": u.user_id,
            "tier": u.tier,
            "status": "active",
            "started_at": u.created_at,
            "current_period_end": u.created_at + timedelta(days=30),
        }
        for u in dataset.users
        if u.user_id not in with_subscription
    ]
    if new_subscriptions:
        conn.execute(sa.insert(t.subscriptions), new_subscriptions)


def _load_clients(conn: sa.Connection, dataset: DemoDataset) -> set[str]:
    ids = [c.client_id for c in dataset.clients]
    existing = set(conn.execute(sa.select(t.clients.c.id).where(t.clients.c.id.in_(ids))).scalars())
    rows = [
        {
            "id": c.client_id,
            "name": c.name,
            "privacy_level": c.privacy_level,
            "sync_frequency": c.sync_frequency,
            "format": c.format,
            "destination_bucket": c.bucket,
            "destination_prefix": c.prefix,
        }
        for c in dataset.clients
        if c.client_id not in existing
    ]
    if rows:
        conn.execute(sa.insert(t.clients), rows)
    return {r["id"] for r in rows}


def _load_events(conn: sa.Connection, dataset: DemoDataset, new_clients: set[str]) -> int:
    # Events of unknown clients (deliberate dead-letter cases) travel with the first new client.
    known = {c.client_id for c in dataset.clients}
    take_unknown = bool(new_clients)
    batch: list[dict] = []
    total = 0
    for e in dataset.events:
        if e.client_id in new_clients or (take_unknown and e.client_id not in known):
            batch.append(
                {
                    "client_id": e.client_id,
                    "event_type": e.event_type,
                    "ip_address": e.ip_address,
                    "user_agent": e.user_agent,
                    "url": e.url,
                    "payload": e.payload,
                    "consent_analytics": e.consent_analytics,
                    "consent_marketing": e.consent_marketing,
                    "created_at": e.created_at,
                }
            )
        if len(batch) >= _EVENT_BATCH:
            conn.execute(sa.insert(t.events_log), batch)
            total += len(batch)
            batch.clear()
    if batch:
        conn.execute(sa.insert(t.events_log), batch)
        total += len(batch)
    return total
