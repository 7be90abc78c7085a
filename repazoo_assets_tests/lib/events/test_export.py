"""The raw event export: exactly once under out-of-order commits and crashes, dead letters, on the
real PostgreSQL (and SQLite) with moto's S3 server."""

import io
import json
import time
import uuid

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.export import export_raw_events
from repazoo_assets.lib.storage import S3ObjectStore
from repazoo_assets.lib.storage.s3 import s3_client

BUCKET = "raw-events-test"


@pytest.fixture
def store(s3_endpoint):
    s = S3ObjectStore(s3_client(s3_endpoint, "us-east-1"))
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    s.ensure_bucket(bucket)
    s.bucket = bucket
    s.processed = f"processed-{uuid.uuid4().hex[:12]}"  # for the processing tests; created there
    return s


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'app.db'}"
    eng = create_engine(url)
    upgrade(eng)
    with eng.begin() as conn:
        conn.execute(
            sa.insert(t.clients),
            [
                {"id": c, "name": c, "privacy_level": "standard", "sync_frequency": "hourly", "destination_bucket": "b-" + c}
                for c in ("acme", "globex")
            ],
        )
    yield eng
    eng.dispose()


def event(i, client="acme", **overrides):
    row = {
        "client_id": client,
        "event_type": "page_view",
        "ip_address": f"10.0.0.{i % 250}",
        "user_agent": "Mozilla/5.0",
        "url": f"https://acme.example.com/p/{i}",
        "payload": json.dumps({"n": i}),
        "consent_analytics": True,
        "consent_marketing": False,
    }
    row.update(overrides)
    return row


def insert(conn, rows):
    conn.execute(sa.insert(t.events_log), rows)


def exported_ids(engine, store):
    with engine.connect() as conn:
        keys = conn.execute(sa.select(t.raw_batches.c.object_key)).scalars().all()
    ids = []
    for key in keys:
        ids += pq.read_table(io.BytesIO(store.get(store.bucket, key))).column("id").to_pylist()
    return ids


def test_exports_everything_once_in_bounded_verified_batches(engine, store):
    with engine.begin() as conn:
        insert(conn, [event(i) for i in range(23)])
    report = export_raw_events(engine, store, store.bucket, chunk_rows=10)
    assert (report.batches, report.rows, report.bad_rows, report.window_completed) == (3, 23, 0, True)
    ids = exported_ids(engine, store)
    assert sorted(ids) == ids and len(ids) == len(set(ids)) == 23
    with engine.connect() as conn:
        batches = conn.execute(sa.select(t.raw_batches).order_by(t.raw_batches.c.first_event_id)).all()
    assert [b.row_count for b in batches] == [10, 10, 3]
    for b in batches:
        info = store.head(store.bucket, b.object_key)
        assert (info.size, info.sha256) == (b.byte_size, b.sha256) and b.verified_at is not None
        assert b.object_key.endswith(f"events-{b.first_event_id}-{b.last_event_id}.parquet")
        manifest = json.loads(store.get(store.bucket, b.object_key.removesuffix(".parquet") + ".manifest.json"))
        assert (manifest["row_count"], manifest["sha256"]) == (b.row_count, b.sha256)
    again = export_raw_events(engine, store, store.bucket, chunk_rows=10)
    assert again.batches == 0 and again.skipped_reason == "no finished events to export"


def test_malformed_events_go_to_dead_letters_and_do_not_block(engine, store):
    with engine.begin() as conn:
        insert(conn, [
            event(0), event(1, client="initech"), event(2, payload="{not json"), event(3, event_type=""),
            event(4, payload="[1, 2]"), event(5, client="globex"), event(6, payload=None),
        ])
    report = export_raw_events(engine, store, store.bucket)
    assert (report.rows, report.bad_rows) == (3, 4)
    with engine.connect() as conn:
        batch = conn.execute(sa.select(t.raw_batches)).one()
    bad = pq.read_table(io.BytesIO(store.get(store.bucket, batch.bad_object_key))).to_pylist()
    assert batch.bad_object_key.startswith("bad/dt=")
    assert {r["id"] - batch.first_event_id: r["reason"] for r in bad} == {
        1: "unknown client", 2: "payload not a JSON object", 3: "missing event_type", 4: "payload not a JSON object",
    }


def test_a_crash_after_the_object_is_written_resumes_to_the_same_keys(engine, store):
    with engine.begin() as conn:
        insert(conn, [event(i) for i in range(25)])

    class Crash(Exception):
        pass

    written = []

    def crash_on_second(key):
        written.append(key)
        if len(written) == 2:
            raise Crash()

    # Another session's open transaction anywhere on the server holds the export back (nothing
    # is ready yet): try again until the rows are finished for it.
    with pytest.raises(Crash):
        for _ in range(600):
            report = export_raw_events(engine, store, store.bucket, chunk_rows=10, on_object_written=crash_on_second)
            assert report.skipped_reason, "the export finished without reaching the crash"
            time.sleep(0.2)
    with engine.begin() as conn:  # more events arrive before the retry
        insert(conn, [event(100 + i) for i in range(5)])
    resumed = export_raw_events(engine, store, store.bucket, chunk_rows=10)
    assert resumed.window_resumed and resumed.keys[0] == written[1]  # the orphan key is reused
    followup = export_raw_events(engine, store, store.bucket, chunk_rows=10)
    for _ in range(600):
        if followup.rows:
            break
        time.sleep(0.2)
        followup = export_raw_events(engine, store, store.bucket, chunk_rows=10)
    ids = exported_ids(engine, store)
    assert len(ids) == len(set(ids)) == 30
    objects = [k for k in store.list_keys(store.bucket, "events/") if k.endswith(".parquet")]
    with engine.connect() as conn:
        recorded = set(conn.execute(sa.select(t.raw_batches.c.object_key)).scalars())
    assert set(objects) == recorded  # no orphan object left behind
    assert followup.rows == 5


def test_a_late_commit_of_a_lower_id_is_exported_not_skipped(pg_url, store):
    engine = create_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.clients).values(id="acme", name="acme", privacy_level="standard",
                                                 sync_frequency="hourly", destination_bucket="b"))
    slow = engine.connect()
    slow_tx = slow.begin()
    late_id = slow.execute(sa.insert(t.events_log).values(**event(0)).returning(t.events_log.c.id)).scalar_one()
    with engine.begin() as conn:  # higher ids, committed first
        insert(conn, [event(i) for i in range(1, 6)])
    first = export_raw_events(engine, store, store.bucket)
    assert late_id not in exported_ids(engine, store)
    assert first.rows == 0  # held back behind the open transaction, never exported past it
    slow_tx.commit()
    slow.close()
    export_raw_events(engine, store, store.bucket)
    ids = exported_ids(engine, store)
    assert sorted(ids) == sorted(set(ids)) and late_id in ids and len(ids) == 6
    engine.dispose()


def test_two_exports_at_once_do_not_both_run(pg_url, store):
    engine = create_engine(pg_url)
    upgrade(engine)
    from repazoo_assets.lib.events.export import _LOCK, _UNLOCK, EXPORT_LOCK_CLASS

    with engine.connect() as holder:
        assert holder.execute(sa.text(f"select {_LOCK}"), {"k": EXPORT_LOCK_CLASS}).scalar()
        report = export_raw_events(engine, store, store.bucket)
        assert report.skipped_reason == "another export is running"
        holder.execute(sa.text(f"select {_UNLOCK}"), {"k": EXPORT_LOCK_CLASS})
    engine.dispose()


def test_chunk_rows_must_be_positive(engine, store):
    with pytest.raises(ValueError, match="chunk_rows must be positive"):
        export_raw_events(engine, store, store.bucket, chunk_rows=0)


def test_raw_events_asset_and_its_check(pg_url, store, s3_endpoint):
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs.events.assets import raw_batches_match_source, raw_events
    from repazoo_assets.defs.resources import AppDatabase, S3ObjectStoreResource

    engine = create_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.clients).values(id="acme", name="acme", privacy_level="standard",
                                                 sync_frequency="hourly", destination_bucket="b"))
        insert(conn, [event(i) for i in range(12)] + [event(99, client="nobody")])
    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
            raw_bucket=store.bucket, processed_bucket="p-b", exports_bucket="e-b",
        ),
    }
    result = dg.materialize(
        [raw_events, raw_batches_match_source], resources=resources,
        run_config={"ops": {"raw_events": {"config": {"chunk_rows": 5}}}},
    )
    assert result.success
    meta = result.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    assert (meta["dagster/row_count"].value, meta["dead_lettered"].value, meta["batches"].value) == (12, 1, 3)
    check = result.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["batches_checked"].value == 3
    with engine.begin() as conn:  # a source row appears inside an exported range: the check sees it
        first = conn.execute(sa.select(t.raw_batches.c.first_event_id).order_by(t.raw_batches.c.id)).scalars().first()
        conn.execute(sa.delete(t.events_log).where(t.events_log.c.id == first))
    rerun = dg.materialize([raw_events, raw_batches_match_source], resources=resources, raise_on_error=False)
    assert not rerun.get_asset_check_evaluations()[0].passed
    assert not rerun.success  # the check blocks: the run fails, and the run-failure sensor alerts
    engine.dispose()
