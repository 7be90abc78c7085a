"""Processing an hour: per-client files under each privacy level, isolation, counts, encryption."""

import io
import json
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.events.export import export_raw_events
from repazoo_assets.lib.events.process import process_hour, processed_key
from repazoo_assets_tests.lib.events.test_export import event, insert, store  # noqa: F401  (fixture)

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
KEY = b"p" * 32
LEVELS = {"acme": "standard", "globex": "gdpr", "initech": "hipaa"}


@pytest.fixture
def loaded(pg_url, store):  # noqa: F811
    engine = create_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.clients), [
            {"id": c, "name": c, "privacy_level": level, "sync_frequency": "hourly", "destination_bucket": f"b-{c}"}
            for c, level in LEVELS.items()
        ])
        rows = []
        for i in range(60):
            client = list(LEVELS)[i % 3]
            rows.append(event(
                i, client=client, created_at=HOUR + timedelta(minutes=i % 90),  # some fall in the next hour
                consent_analytics=i % 10 != 0, ip_address=f"198.51.100.{i}",
                payload=json.dumps({"user_id": f"u{i}", "email": f"user{i}@example.com", "comment": "hi"}),
            ))
        insert(conn, rows)
    export_raw_events(engine, store, store.bucket, chunk_rows=25)
    store.ensure_bucket("processed-test")
    yield engine
    engine.dispose()


def read(store, key):  # noqa: F811
    return pq.read_table(io.BytesIO(store.get("processed-test", key))).to_pylist()


def test_one_file_per_client_hour_with_each_level_applied(loaded, store):  # noqa: F811
    report = process_hour(loaded, store, store.bucket, "processed-test", HOUR, KEY)
    in_hour = [i for i in range(60) if i % 90 < 60]
    assert report.raw_rows == len(in_hour)
    assert sum(report.written.values()) + sum(report.dropped.values()) == report.raw_rows
    assert set(report.keys) == {processed_key(c, HOUR) for c in LEVELS}
    for client, level in LEVELS.items():
        rows = read(store, processed_key(client, HOUR))
        assert {r["client_id"] for r in rows} == {client}  # never another client's data
        assert all(HOUR <= r["created_at"] < HOUR + timedelta(hours=1) for r in rows)
        text = json.dumps(rows, default=str)
        if level == "standard":
            assert len(rows) == 20 and "198.51.100." in text and "@example.com" in text
        else:
            assert "198.51.100." not in text and "@example.com" not in text
            assert all(json.loads(r["payload"])["user_id"] != "u0" for r in rows)
            assert len(rows) == 18  # the two events without analytics consent are dropped
        if level == "hipaa":
            assert all("comment" not in json.loads(r["payload"]) for r in rows)
    assert report.dropped["no analytics consent"] == 4
    head = store.client.head_object(Bucket="processed-test", Key=processed_key("initech", HOUR))
    assert head["ServerSideEncryption"] == "AES256"
    plain = store.client.head_object(Bucket="processed-test", Key=processed_key("acme", HOUR))
    assert "ServerSideEncryption" not in plain or plain["ServerSideEncryption"] != "AES256"
    with loaded.connect() as conn:
        audited = conn.execute(
            sa.select(t.audit_log.c.subject_id).where(t.audit_log.c.action == "export")
        ).scalars().all()
    assert audited == ["initech"]


def test_rerun_overwrites_the_same_keys(loaded, store):  # noqa: F811
    first = process_hour(loaded, store, store.bucket, "processed-test", HOUR, KEY)
    second = process_hour(loaded, store, store.bucket, "processed-test", HOUR, KEY)
    assert first.keys == second.keys and first.written == second.written
    assert len([k for k in store.list_keys("processed-test") if k.endswith(".parquet")]) == 3


def test_an_altered_raw_object_stops_processing(loaded, store):  # noqa: F811
    key = next(k for k in store.list_keys(store.bucket, "events/") if k.endswith(".parquet"))
    store.put(store.bucket, key, b"tampered")
    with pytest.raises(Exception, match="does not match its recorded SHA-256"):
        process_hour(loaded, store, store.bucket, "processed-test", HOUR, KEY)


def test_processed_events_asset_backfills_a_range_in_one_run(loaded, store, s3_endpoint, pg_url):  # noqa: F811
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs.events.assets import processed_events
    from repazoo_assets.defs.resources import AppDatabase, PseudonymizationKeyResource, S3ObjectStoreResource

    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
            raw_bucket=store.bucket, processed_bucket="processed-test", exports_bucket="e-b",
        ),
        "pseudonymization": PseudonymizationKeyResource(key="k" * 40),
    }
    result = dg.materialize(
        [processed_events], resources=resources,
        tags={"dagster/asset_partition_range_start": "2026-11-22-10:00", "dagster/asset_partition_range_end": "2026-11-22-11:00"},
    )
    assert result.success
    meta = result.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    assert meta["hours"].value == 2 and meta["client_files"].value == 3  # the second hour has no events
    assert meta["dagster/row_count"].value + sum(meta["dropped"].value.values()) == 60
    short = dict(resources, pseudonymization=PseudonymizationKeyResource(key="short"))
    failed = dg.materialize([processed_events], resources=short, partition_key="2026-11-22-10:00", raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure).step_failure_data
    assert failure.user_failure_data.description == "PSEUDONYMIZATION_KEY: must be at least 32 characters"


def test_the_privacy_scan_check_passes_on_processed_output_and_fails_on_raw_identifiers(loaded, store, s3_endpoint, pg_url):  # noqa: F811
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs.events.assets import processed_events, processed_events_no_raw_identifiers
    from repazoo_assets.defs.resources import AppDatabase, PseudonymizationKeyResource, S3ObjectStoreResource
    from repazoo_assets.lib.events.process import processed_key

    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
            raw_bucket=store.bucket, processed_bucket="processed-test", exports_bucket="e-b",
        ),
        "pseudonymization": PseudonymizationKeyResource(key="k" * 40),
    }
    run = dg.materialize([processed_events, processed_events_no_raw_identifiers], resources=resources,
                         partition_key="2026-11-22-10:00")
    check = run.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["values_scanned"].value > 0
    # A GDPR file with a raw IP in it (as a buggy writer would leave it), in an hour with no events
    # (so the run's processing does not overwrite it): the scan catches it.
    empty_hour = HOUR + timedelta(hours=5)
    raw = store.get(store.bucket, next(k for k in store.list_keys(store.bucket, "events/") if k.endswith(".parquet")))
    store.put("processed-test", processed_key("globex", empty_hour), raw)
    rerun = dg.materialize([processed_events, processed_events_no_raw_identifiers], resources=resources,
                           partition_key=f"{empty_hour:%Y-%m-%d-%H:%M}")
    failed = rerun.get_asset_check_evaluations()[0]
    assert not failed.passed and failed.metadata["dirty"].value[0].startswith(processed_key("globex", empty_hour))
