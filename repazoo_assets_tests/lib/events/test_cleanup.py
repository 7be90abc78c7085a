"""Cleanup deletes exactly the exported rows, and only behind a verified raw object."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.cleanup import cleanup_exported_events
from repazoo_assets.lib.events.export import export_raw_events
from repazoo_assets_tests.lib.events.test_export import engine, event, insert, store  # noqa: F401  (fixtures)

LATER = datetime.now(UTC) + timedelta(hours=3)


def rows(engine):  # noqa: F811
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t.events_log)).scalar_one()


def test_deletes_verified_batches_only_after_the_minimum_age(engine, store):  # noqa: F811
    with engine.begin() as conn:
        insert(conn, [event(i) for i in range(25)])
    export_raw_events(engine, store, store.bucket, chunk_rows=10)
    too_soon = cleanup_exported_events(engine, store, store.bucket)
    assert (too_soon.batches_cleaned, rows(engine)) == (0, 25)
    done = cleanup_exported_events(engine, store, store.bucket, now=LATER)
    assert (done.batches_cleaned, done.rows_deleted, rows(engine)) == (3, 25, 0)
    again = cleanup_exported_events(engine, store, store.bucket, now=LATER)
    assert again.batches_cleaned == 0


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_a_missing_or_altered_object_blocks_its_batch_and_alerts(engine, store, damage):  # noqa: F811
    with engine.begin() as conn:
        insert(conn, [event(i) for i in range(20)])
    report = export_raw_events(engine, store, store.bucket, chunk_rows=10)
    victim = report.keys[0]
    if damage == "missing":
        store.delete(store.bucket, victim)
    else:
        store.put(store.bucket, victim, b"not the parquet we wrote")
    result = cleanup_exported_events(engine, store, store.bucket, now=LATER)
    assert result.blocked == [(victim, damage)]
    assert (result.batches_cleaned, result.rows_deleted, rows(engine)) == (1, 10, 10)
    cleanup_exported_events(engine, store, store.bucket, now=LATER)  # a re-run does not alert twice
    with engine.connect() as conn:
        alerts = conn.execute(sa.select(t.alerts.c.check_name, t.alerts.c.message)).all()
    assert len(alerts) == 1 and alerts[0].check_name == "raw_object_integrity" and victim in alerts[0].message


def test_a_late_commit_inside_an_exported_id_range_is_not_deleted(pg_url, store):  # noqa: F811
    from repazoo_assets.lib.db import create_engine, upgrade

    eng = create_engine(pg_url)
    upgrade(eng)
    with eng.begin() as conn:
        conn.execute(sa.insert(t.clients).values(id="acme", name="acme", privacy_level="standard",
                                                 sync_frequency="hourly", destination_bucket="b"))
    slow = eng.connect()
    slow_tx = slow.begin()
    slow.execute(sa.insert(t.events_log).values(**event(0)))
    with eng.begin() as conn:
        insert(conn, [event(i) for i in range(1, 4)])
    slow_tx.commit()
    slow.close()
    export_raw_events(eng, store, store.bucket)
    with eng.begin() as conn:  # rows of a window that is not exported yet, inside no batch
        insert(conn, [event(10 + i) for i in range(3)])
    cleanup_exported_events(eng, store, store.bucket, now=LATER)
    with eng.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.events_log)).scalar_one() == 3
    eng.dispose()


def test_min_age_is_bounded(engine, store):  # noqa: F811
    with pytest.raises(ValueError, match="between 1 and 24 hours"):
        cleanup_exported_events(engine, store, store.bucket, min_age=timedelta(minutes=5))


def test_events_cleanup_asset_fails_naming_the_blocked_batch(pg_url, store, s3_endpoint):  # noqa: F811
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs.events.assets import events_cleanup
    from repazoo_assets.defs.resources import AppDatabase, S3ObjectStoreResource
    from repazoo_assets.lib.db import create_engine, upgrade

    eng = create_engine(pg_url)
    upgrade(eng)
    with eng.begin() as conn:
        conn.execute(sa.insert(t.clients).values(id="acme", name="acme", privacy_level="standard",
                                                 sync_frequency="hourly", destination_bucket="b"))
        insert(conn, [event(i, created_at=datetime.now(UTC) - timedelta(hours=2)) for i in range(6)])
    report = export_raw_events(eng, store, store.bucket, chunk_rows=3)
    store.delete(store.bucket, report.keys[1])
    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
            raw_bucket=store.bucket, processed_bucket="p-b", exports_bucket="e-b",
        ),
    }
    result = dg.materialize([events_cleanup], resources=resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.user_failure_data.description.startswith(
        "1 raw batches blocked (object missing or altered); 3 rows of 1 verified batches were deleted"
    )
    bad = dg.materialize(
        [events_cleanup], resources=resources, raise_on_error=False,
        run_config={"ops": {"events_cleanup": {"config": {"min_age_hours": 48}}}},
    )
    assert "min_age_hours must be between 1 and 24, got 48" in next(
        e for e in bad.all_events if e.is_step_failure
    ).step_failure_data.user_failure_data.description
    eng.dispose()
