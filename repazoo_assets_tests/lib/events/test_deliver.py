"""Delivery to the clients' own buckets: formats, cursor, isolation, failure."""

import io
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.deliver import DeliveryError, deliver_client, is_due
from repazoo_assets.lib.events.process import process_hour
from repazoo_assets_tests.lib.events.test_process import HOUR, KEY, loaded  # noqa: F401  (fixture)
from repazoo_assets_tests.lib.events.test_export import store  # noqa: F401  (fixture)


def client(engine, client_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(t.clients).where(t.clients.c.id == client_id)).one()


@pytest.fixture
def processed(loaded, store):  # noqa: F811
    process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    with loaded.begin() as conn:
        conn.execute(sa.update(t.clients).where(t.clients.c.id == "globex").values(format="jsonl", destination_prefix="in/repazoo"))
        conn.execute(sa.update(t.clients).where(t.clients.c.id == "initech").values(destination_bucket="no-such-bucket-x"))
    for bucket in ("b-acme", "b-globex"):
        store.ensure_bucket(bucket)
    return loaded


def test_each_client_gets_its_own_hours_in_its_format_once(processed, store):  # noqa: F811
    acme = deliver_client(processed, store, store.processed, store, client(processed, "acme"))
    assert [f["key"] for f in acme.files] == [f"dt=2026-11-22/hour=10/repazoo-events-{HOUR:%Y%m%d%H}.parquet"]
    rows = pq.read_table(io.BytesIO(store.get("b-acme", acme.files[0]["key"]))).to_pylist()
    assert len(rows) == acme.rows == 20 and {r["client_id"] for r in rows} == {"acme"}
    manifest = json.loads(store.get("b-acme", acme.manifest_key))
    assert manifest["files"][0]["sha256"] == acme.files[0]["sha256"]

    globex = deliver_client(processed, store, store.processed, store, client(processed, "globex"))
    key = globex.files[0]["key"]
    assert key.startswith("in/repazoo/dt=2026-11-22/hour=10/") and key.endswith(".jsonl")
    lines = [json.loads(line) for line in store.get("b-globex", key).decode().splitlines()]
    assert len(lines) == 18 and {r["client_id"] for r in lines} == {"globex"}
    assert all("198.51.100." not in r["ip_address"] for r in lines)

    again = deliver_client(processed, store, store.processed, store, client(processed, "acme"))
    assert again.files == [] and again.manifest_key is None  # the cursor: nothing twice
    with processed.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.client_deliveries)).scalar() == 2


def test_a_failing_client_fails_alone_and_keeps_its_hours_pending(processed, store):  # noqa: F811
    with pytest.raises(DeliveryError, match="client initech: cannot write to s3://no-such-bucket-x/"):
        deliver_client(processed, store, store.processed, store, client(processed, "initech"))
    with processed.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.client_deliveries)).scalar() == 0
    assert deliver_client(processed, store, store.processed, store, client(processed, "acme")).rows == 20


def test_a_gdpr_file_holding_a_raw_ip_is_never_delivered(processed, store):  # noqa: F811
    # The processed file was altered after processing (or the privacy check failed in its own
    # run): delivery scans it again and refuses, and records nothing.
    source = next(k for k in store.list_keys(store.processed, "client_id=globex/") if k.endswith(".parquet"))
    table = pq.read_table(io.BytesIO(store.get(store.processed, source)))
    ips = table.column("ip_address").to_pylist()
    table = table.set_column(table.column_names.index("ip_address"), "ip_address",
                             pa.array(["198.51.100.77"] + ips[1:]))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    store.put(store.processed, source, sink.getvalue())
    before = {key: store.head("b-globex", key).sha256 for key in store.list_keys("b-globex")}
    with pytest.raises(DeliveryError, match="refusing to deliver .*raw IP or e-mail in ip_address"):
        deliver_client(processed, store, store.processed, store, client(processed, "globex"))
    assert {key: store.head("b-globex", key).sha256 for key in store.list_keys("b-globex")} == before
    with processed.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.client_deliveries)).scalar() == 0


@pytest.mark.parametrize(
    ("frequency", "now", "last", "due"),
    [
        ("hourly", "2026-11-23 05:30", "2026-11-23 04:30", True),
        ("daily", "2026-11-23 00:20", "2026-11-22 00:31", False),
        ("daily", "2026-11-23 00:31", "2026-11-22 00:31", True),
        ("daily", "2026-11-23 09:30", "2026-11-23 00:31", False),
        ("weekly", "2026-11-23 00:40", "2026-11-16 00:31", True),  # a Monday
        ("weekly", "2026-11-25 10:00", "2026-11-23 00:31", False),
        ("weekly", "2026-11-25 10:00", None, True),
    ],
)
def test_due_by_frequency(frequency, now, last, due):
    parse = lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)  # noqa: E731
    assert is_due(frequency, parse(now), parse(last) if last else None) is due


def test_client_exports_asset_isolates_a_failing_client_and_alerts(processed, store, s3_endpoint, pg_url):  # noqa: F811
    import dagster as dg
    from cryptography.fernet import Fernet
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs.events.assets import client_exports
    from repazoo_assets.defs.resources import AppDatabase, S3ObjectStoreResource, TokenVaultResource

    with processed.begin() as conn:
        conn.execute(sa.update(t.clients).values(destination_endpoint_url=s3_endpoint))
    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
            raw_bucket=store.bucket, processed_bucket=store.processed, exports_bucket="e-b",
        ),
        "token_vault": TokenVaultResource(encryption_key=Fernet.generate_key().decode()),
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("clients", ["acme", "globex", "initech"])
    outcomes = {
        c: dg.materialize([client_exports], partition_key=c, resources=resources, instance=instance, raise_on_error=False)
        for c in ("initech", "acme", "globex")
    }
    assert not outcomes["initech"].success and outcomes["acme"].success and outcomes["globex"].success
    failure = next(e for e in outcomes["initech"].all_events if e.is_step_failure).step_failure_data
    assert failure.user_failure_data.description.startswith("client initech: cannot write to s3://no-such-bucket-x/")
    meta = outcomes["acme"].get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    assert (meta["dagster/row_count"].value, meta["files"].value) == (20, 1)
    with processed.connect() as conn:
        alerts = conn.execute(sa.select(t.alerts.c.check_name, t.alerts.c.message)).all()
        delivered = set(conn.execute(sa.select(t.client_deliveries.c.client_id)).scalars())
    assert [a.check_name for a in alerts] == ["client_delivery"] and "initech" in alerts[0].message
    assert delivered == {"acme", "globex"}


def test_an_hour_rewritten_after_delivery_is_delivered_again_once(processed, store):  # noqa: F811
    from repazoo_assets_tests.lib.events.test_export import event, insert
    from repazoo_assets_tests.lib.events.test_process import export_all

    first = deliver_client(processed, store, store.processed, store, client(processed, "acme"))
    assert first.rows == 20
    # Unchanged reruns of the hour leave the delivery alone.
    assert process_hour(processed, store, store.bucket, store.processed, HOUR, KEY).redelivered == []
    assert deliver_client(processed, store, store.processed, store, client(processed, "acme")).files == []
    # A late event for acme in that hour: the rerun changes acme's file, so it is delivered again.
    with processed.begin() as conn:
        insert(conn, [event(500, client="acme", created_at=HOUR + timedelta(minutes=5))])
    export_all(processed, store)
    assert process_hour(processed, store, store.bucket, store.processed, HOUR, KEY).redelivered == ["acme"]
    again = deliver_client(processed, store, store.processed, store, client(processed, "acme"))
    assert [f["key"] for f in again.files] == [f["key"] for f in first.files] and again.rows == 21
    rows = pq.read_table(io.BytesIO(store.get("b-acme", again.files[0]["key"]))).num_rows
    assert rows == 21
    assert deliver_client(processed, store, store.processed, store, client(processed, "acme")).files == []
    with processed.connect() as conn:
        recorded = conn.execute(
            sa.select(t.client_deliveries.c.row_count).where(t.client_deliveries.c.client_id == "acme")
        ).scalars().all()
    assert recorded == [21]
