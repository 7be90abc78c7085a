"""Processing an hour: per-client files under each privacy level, isolation, counts, encryption."""

import io
import json
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
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


def export_all(engine, store, chunk_rows=25):  # noqa: F811
    """Export until every row of events_log is in a raw batch (good or dead-lettered). The export
    only takes finished transactions older than the oldest open one in the cluster, and other
    tests run on the same server: a run can legitimately export nothing yet."""
    deadline = time.monotonic() + 120
    while True:
        export_raw_events(engine, store, store.bucket, chunk_rows=chunk_rows)
        with engine.connect() as conn:
            source = conn.execute(sa.select(sa.func.count()).select_from(t.events_log)).scalar()
            exported = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(t.raw_batches.c.row_count + t.raw_batches.c.bad_count), 0))
            ).scalar()
        if exported == source or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def add_clients(conn):
    conn.execute(sa.insert(t.clients), [
        {"id": c, "name": c, "privacy_level": level, "sync_frequency": "hourly", "destination_bucket": f"b-{c}"}
        for c, level in LEVELS.items()
    ])


@pytest.fixture
def loaded(pg_url, store):  # noqa: F811
    engine = create_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        add_clients(conn)
        rows = []
        for i in range(60):
            client = list(LEVELS)[i % 3]
            rows.append(event(
                i, client=client, created_at=HOUR + timedelta(minutes=i % 90),  # some fall in the next hour
                consent_analytics=i % 10 != 0, ip_address=f"198.51.100.{i}",
                payload=json.dumps({"user_id": f"u{i}", "email": f"user{i}@example.com", "comment": "hi"}),
            ))
        insert(conn, rows)
    export_all(engine, store)
    store.ensure_bucket(store.processed)
    yield engine
    engine.dispose()


def read(store, key):  # noqa: F811
    return pq.read_table(io.BytesIO(store.get(store.processed, key))).to_pylist()


def test_one_file_per_client_hour_with_each_level_applied(loaded, store):  # noqa: F811
    report = process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
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
    head = store.client.head_object(Bucket=store.processed, Key=processed_key("initech", HOUR))
    assert head["ServerSideEncryption"] == "AES256"
    plain = store.client.head_object(Bucket=store.processed, Key=processed_key("acme", HOUR))
    assert "ServerSideEncryption" not in plain or plain["ServerSideEncryption"] != "AES256"
    with loaded.connect() as conn:
        audited = conn.execute(
            sa.select(t.audit_log.c.subject_id).where(t.audit_log.c.action == "export")
        ).scalars().all()
    assert audited == ["initech"]


def test_rerun_overwrites_the_same_keys(loaded, store):  # noqa: F811
    first = process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    second = process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    assert first.keys == second.keys and first.written == second.written
    assert len([k for k in store.list_keys(store.processed) if k.endswith(".parquet")]) == 3


def test_an_altered_raw_object_stops_processing(loaded, store):  # noqa: F811
    key = next(k for k in store.list_keys(store.bucket, "events/") if k.endswith(".parquet"))
    store.put(store.bucket, key, b"tampered")
    with pytest.raises(Exception, match="does not match its recorded SHA-256"):
        process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)


def test_processed_events_asset_backfills_a_range_in_one_run(loaded, store, s3_endpoint, pg_url):  # noqa: F811
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs.events.assets import processed_events
    from repazoo_assets.defs.resources import AppDatabase, PseudonymizationKeyResource, S3ObjectStoreResource

    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
            raw_bucket=store.bucket, processed_bucket=store.processed, exports_bucket="e-b",
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
            raw_bucket=store.bucket, processed_bucket=store.processed, exports_bucket="e-b",
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
    store.put(store.processed, processed_key("globex", empty_hour), raw)
    rerun = dg.materialize([processed_events, processed_events_no_raw_identifiers], resources=resources,
                           partition_key=f"{empty_hour:%Y-%m-%d-%H:%M}", raise_on_error=False)
    failed = rerun.get_asset_check_evaluations()[0]
    assert not rerun.success  # blocking: the run fails, and the run-failure sensor alerts
    assert not failed.passed and failed.metadata["dirty"].value[0].startswith(processed_key("globex", empty_hour))


def _resources(store, s3_endpoint, pg_url):  # noqa: F811
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs.resources import AppDatabase, PseudonymizationKeyResource, S3ObjectStoreResource

    return {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(
            s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
            raw_bucket=store.bucket, processed_bucket=store.processed, exports_bucket="e-b",
        ),
        "pseudonymization": PseudonymizationKeyResource(key="k" * 40),
    }


def test_the_count_check_passes_on_a_run_and_fails_on_a_removed_or_tampered_file_or_a_count_off(
    loaded, store, s3_endpoint, pg_url  # noqa: F811
):
    import dagster as dg

    from repazoo_assets.defs.events.assets import processed_events, processed_events_counts_match_raw
    from repazoo_assets.lib.events.process import hour_manifest_key, verify_hour_counts

    resources = _resources(store, s3_endpoint, pg_url)
    run = dg.materialize([processed_events, processed_events_counts_match_raw], resources=resources,
                         partition_key="2026-11-22-10:00")
    check = run.get_asset_check_evaluations()[0]
    assert check.passed, check.metadata["problems"].value
    meta = check.metadata
    assert meta["raw_events"].value == 60
    assert meta["processed_rows"].value + sum(meta["dropped"].value.values()) == 60
    assert meta["dropped"].value == {"no analytics consent": 4}

    def problems():
        return verify_hour_counts(loaded, store, store.bucket, store.processed, HOUR).problems

    # A count off: the manifest's drops no longer add up.
    manifest_key = hour_manifest_key(HOUR)
    original_manifest = store.get(store.processed, manifest_key)
    manifest = json.loads(original_manifest)
    manifest["dropped"]["no analytics consent"] = 3
    store.put(store.processed, manifest_key, json.dumps(manifest).encode())
    assert problems() == ["raw 60 != processed 56 + dropped 3"]
    store.put(store.processed, manifest_key, original_manifest)
    assert problems() == []

    # A tampered file: one row fewer (and so a different checksum).
    key = processed_key("globex", HOUR)
    original = store.get(store.processed, key)
    table = pq.read_table(io.BytesIO(original))
    sink = io.BytesIO()
    pq.write_table(table.slice(1), sink)
    store.put(store.processed, key, sink.getvalue())
    assert problems() == [f"{key}: 17 rows, 18 recorded", "raw 60 != processed 55 + dropped 4"]
    # Same row count, other content (the first row twice, the last one gone): the checksum catches it.
    sink = io.BytesIO()
    pq.write_table(table.take(pa.array([0] + list(range(17)))), sink, compression="zstd")
    store.put(store.processed, key, sink.getvalue())
    assert problems() == [f"{key}: altered (SHA-256 differs from the recorded one)"]

    # A removed file: the asset check fails and names it.
    store.put(store.processed, key, original)
    store.delete(store.processed, processed_key("acme", HOUR))
    job = dg.Definitions(
        assets=[processed_events], asset_checks=[processed_events_counts_match_raw], resources=resources,
    ).resolve_implicit_global_asset_job_def()
    rerun = job.execute_in_process(partition_key="2026-11-22-10:00", asset_selection=[],
                                   op_selection=["processed_events_processed_events_counts_match_raw"],
                                   raise_on_error=False)
    failed = rerun.get_asset_check_evaluations()[0]
    assert not rerun.success and not failed.passed
    assert failed.metadata["problems"].value == [
        f"2026-11-22 10:00 {processed_key('acme', HOUR)}: missing",
        "2026-11-22 10:00 raw 60 != processed 36 + dropped 4",
    ]


def test_an_unprocessed_hour_with_raw_events_fails_the_count_and_an_empty_one_passes(loaded, store):  # noqa: F811
    from repazoo_assets.lib.events.process import verify_hour_counts

    assert verify_hour_counts(loaded, store, store.bucket, store.processed, HOUR).problems == [
        "60 raw events but the hour was not processed"
    ]
    empty = verify_hour_counts(loaded, store, store.bucket, store.processed, HOUR + timedelta(hours=3))
    assert (empty.raw_rows, empty.problems) == (0, [])


def test_late_events_fail_the_count_until_the_hour_is_rerun(loaded, store):  # noqa: F811
    from repazoo_assets.lib.events.process import verify_hour_counts

    process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    with loaded.begin() as conn:
        insert(conn, [event(100, client="acme", created_at=HOUR + timedelta(minutes=30))])
    export_all(loaded, store)
    late = verify_hour_counts(loaded, store, store.bucket, store.processed, HOUR)
    assert late.problems == ["raw 61 != processed 56 + dropped 4 (1 raw events arrived after the hour was processed: rerun it)"]
    process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    assert verify_hour_counts(loaded, store, store.bucket, store.processed, HOUR).problems == []


def test_a_range_reads_each_raw_batch_once_and_matches_hour_by_hour(loaded, store):  # noqa: F811
    from repazoo_assets.lib.events.process import process_hours

    with loaded.begin() as conn:  # 90 more events over the next three hours: batches straddle hours
        insert(conn, [event(200 + i, client=list(LEVELS)[i % 3], created_at=HOUR + timedelta(hours=1, minutes=2 * i))
                      for i in range(90)])
    export_all(loaded, store)
    with loaded.connect() as conn:
        batches = conn.execute(sa.select(sa.func.count()).select_from(t.raw_batches)).scalar()
    reports = process_hours(loaded, store, store.bucket, store.processed, HOUR, HOUR + timedelta(hours=4), KEY)
    assert [r.raw_rows for r in reports] == [60, 30, 30, 30]
    assert sum(r.raw_reads for r in reports) == batches == 7  # 60 + 90 events in batches of ≤ 25, each read once
    files = {k: store.get(store.processed, k) for r in reports for k in r.keys}
    one_by_one = [process_hour(loaded, store, store.bucket, store.processed, HOUR + timedelta(hours=h), KEY)
                  for h in range(4)]
    assert sum(r.raw_reads for r in one_by_one) > batches  # hour by hour, straddling batches are read twice
    assert [r.written for r in one_by_one] == [r.written for r in reports]
    assert files == {k: store.get(store.processed, k) for r in one_by_one for k in r.keys}  # same bytes
    assert all(r.redelivered == [] for r in one_by_one)


def test_a_removed_clients_file_is_deleted_on_rerun_and_counted_as_dropped(loaded, store):  # noqa: F811
    from repazoo_assets.lib.events.process import verify_hour_counts

    process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    with loaded.begin() as conn:
        conn.execute(sa.update(t.clients).where(t.clients.c.id == "globex").values(deleted_at=HOUR))
    report = process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    assert report.removed == ["globex"] and report.dropped["client removed"] == 20
    assert not store.exists(store.processed, processed_key("globex", HOUR))
    assert verify_hour_counts(loaded, store, store.bucket, store.processed, HOUR).problems == []


def test_a_client_whose_events_are_all_dropped_still_gets_its_empty_file(loaded, store):  # noqa: F811
    from repazoo_assets.lib.events.process import verify_hour_counts

    with loaded.begin() as conn:
        conn.execute(sa.insert(t.clients).values(id="hooli", name="hooli", privacy_level="gdpr", sync_frequency="hourly",
                                                 destination_bucket="b-hooli"))
        insert(conn, [event(300 + i, client="hooli", consent_analytics=False, created_at=HOUR + timedelta(minutes=i))
                      for i in range(3)])
    export_all(loaded, store)
    report = process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    assert report.written["hooli"] == 0 and report.dropped["no analytics consent"] == 4 + 3
    assert read(store, processed_key("hooli", HOUR)) == []
    assert verify_hour_counts(loaded, store, store.bucket, store.processed, HOUR).problems == []


class _PutFails(Exception):
    pass


def _failing_puts(monkeypatch, store, hour, after=None):  # noqa: F811
    """`store.put` raises for the processed files of `hour` (S3: no put_many, so one put each),
    once `after` is set if given."""
    put = store.put
    prefix = f"/dt={hour:%Y-%m-%d}/hour={hour:%H}/"

    def failing(bucket, key, *args, **kwargs):
        if bucket == store.processed and prefix in key and key.endswith("events.parquet"):
            if after is not None:
                assert after.wait(30)
            raise _PutFails("the store refused the object")
        return put(bucket, key, *args, **kwargs)

    monkeypatch.setattr(store, "put", failing)


def test_a_failed_write_fails_the_run_and_leaves_no_manifest_for_its_hour(loaded, store, monkeypatch, tmp_path):  # noqa: F811
    from repazoo_assets.lib.events.process import hour_manifest_key, process_hours
    from repazoo_assets.lib.storage import base

    spool = tmp_path / "spool"  # where the S3 store's writers keep the files before uploading them
    spool.mkdir()
    monkeypatch.setattr(base.tempfile, "tempdir", str(spool))

    with loaded.begin() as conn:  # events in the next two hours too
        insert(conn, [event(200 + i, client=list(LEVELS)[i % 3], created_at=HOUR + timedelta(hours=1, minutes=2 * i))
                      for i in range(60)])
    export_all(loaded, store)
    failing_hour = HOUR + timedelta(hours=1)
    _failing_puts(monkeypatch, store, failing_hour)
    with pytest.raises(_PutFails):
        process_hours(loaded, store, store.bucket, store.processed, HOUR, HOUR + timedelta(hours=6), KEY)
    assert store.exists(store.processed, hour_manifest_key(HOUR))
    assert not store.exists(store.processed, hour_manifest_key(failing_hour))
    assert list(spool.iterdir()) == []  # no client file left on local disk by the failed uploads


def test_a_write_failure_is_noted_when_the_main_thread_fails_too(loaded, store, monkeypatch):  # noqa: F811
    import threading

    from repazoo_assets.lib.events import process

    main_failed = threading.Event()
    _failing_puts(monkeypatch, store, HOUR, after=main_failed)  # the write fails after the main thread
    encode = process._encode_hour

    def encode_then_fail(hour, *args):
        if hour > HOUR:  # while the first hour is being written
            main_failed.set()
            raise ValueError("encoding failed")
        return encode(hour, *args)

    monkeypatch.setattr(process, "_encode_hour", encode_then_fail)
    with pytest.raises(ValueError, match="encoding failed") as caught:
        process.process_hours(loaded, store, store.bucket, store.processed, HOUR, HOUR + timedelta(hours=2), KEY)
    assert caught.value.__notes__ == ["writing the previous hour also failed (_PutFails); it has no manifest"]
    assert not store.exists(store.processed, process.hour_manifest_key(HOUR))


def test_uploads_without_put_many_run_on_their_own_pool(loaded, store, monkeypatch):  # noqa: F811
    import threading

    threads = set()
    put = store.put

    def recording(bucket, key, *args, **kwargs):
        threads.add(threading.current_thread().name.rsplit("_", 1)[0])
        return put(bucket, key, *args, **kwargs)

    monkeypatch.setattr(store, "put", recording)
    process_hour(loaded, store, store.bucket, store.processed, HOUR, KEY)
    assert "processed-events-put" in threads and "processed-events" not in threads


def test_raw_row_groups_outside_the_hour_are_not_decoded_and_none_is_lost(pg_url, store, monkeypatch):  # noqa: F811
    from repazoo_assets.lib.events import export, process

    monkeypatch.setattr(export, "RAW_PARQUET_OPTIONS", {**export.RAW_PARQUET_OPTIONS, "row_group_size": 4})
    monkeypatch.setattr(process, "SLICE_ROWS", 3)  # row groups sliced too
    engine = create_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        add_clients(conn)
        # 80 events over three hours, in id order, so each 40-event batch holds row groups of
        # one hour, of the next, and one that straddles both.
        insert(conn, [event(i, client=list(LEVELS)[i % 3], created_at=HOUR + timedelta(minutes=(i * 9) // 4))
                      for i in range(80)])
    export_all(engine, store, chunk_rows=40)
    store.ensure_bucket(store.processed)
    keys = [k for k in store.list_keys(store.bucket, "events/") if k.endswith(".parquet")]
    assert [pq.ParquetFile(io.BytesIO(store.get(store.bucket, k))).metadata.num_row_groups for k in keys] == [10, 10]

    decoded = []
    read_row_group = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        decoded.append(i)
        return read_row_group(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    reports = process.process_hours(engine, store, store.bucket, store.processed, HOUR, HOUR + timedelta(hours=3), KEY)
    expected = [sum(1 for i in range(80) if h * 60 <= (i * 9) // 4 < (h + 1) * 60) for h in range(3)]
    assert [r.raw_rows for r in reports] == expected == [27, 27, 26]
    # 20 row groups in all: each decoded for the hours it overlaps only (two straddle an hour's end)
    assert 20 <= len(decoded) <= 22
    ids = []
    for r in reports:
        assert sum(r.written.values()) + sum(r.dropped.values()) == r.raw_rows
        for key in r.keys:
            rows = read(store, key)
            assert all(r.hour <= row["created_at"] < r.hour + timedelta(hours=1) for row in rows)
            ids += [row["id"] for row in rows]
    assert len(ids) == len(set(ids))  # no event in two hours
    engine.dispose()
