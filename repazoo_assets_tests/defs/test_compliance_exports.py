"""`user_data_exports`, its sensor and `repazoo export`: runs launched once per batch of pending
requests, documents and links produced on moto's S3 and on the embedded local defaults."""

import json

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from dagster_aws.s3 import S3Resource

from repazoo_assets.commands.export import demo_export, export
from repazoo_assets.defs.compliance.exports import (
    BATCH_SIZE,
    batch_run_key,
    data_export_requests_sensor,
    export_user_data_job,
    user_data_exports,
)
from repazoo_assets.defs.resources import AppDatabase, LocalObjectStoreResource, S3ObjectStoreResource
from repazoo_assets.lib.compliance import export as ex
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.settings import PRODUCTION_REQUIRED
from repazoo_assets.lib.storage import LocalObjectStore
from repazoo_assets_tests.lib.compliance.test_export import seed_user

BUCKETS = {"raw_bucket": "repazoo-raw", "processed_bucket": "repazoo-processed", "exports_bucket": "repazoo-exports"}
pytestmark = pytest.mark.postgres


def insert_requests(engine, user_ids) -> list[int]:
    with engine.begin() as conn:
        return [
            conn.execute(sa.insert(t.data_exports).values(user_id=u).returning(t.data_exports.c.id)).scalar_one()
            for u in user_ids
        ]


def statuses(engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t.data_exports.c.id, t.data_exports.c.status)).all())


def tick(pg_url, instance, cursor=None):
    # A context manager: AppDatabase disposes of its engine at teardown.
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"app_db": AppDatabase(url=pg_url)}
    ) as context:
        return data_export_requests_sensor(context)


def ids_of(run_request) -> list[int]:
    return run_request.run_config["ops"]["user_data_exports"]["config"]["request_ids"]


def metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def test_sensor_requests_each_pending_request_once(engine, pg_url):
    instance = dg.DagsterInstance.ephemeral()
    first = insert_requests(engine, [f"user-{i}" for i in range(BATCH_SIZE + 2)])

    result = tick(pg_url, instance)

    assert [ids_of(r) for r in result.run_requests] == [first[:BATCH_SIZE], first[BATCH_SIZE:]]
    assert result.run_requests[0].run_key == batch_run_key(first[:BATCH_SIZE], 1)
    assert len({r.run_key for r in result.run_requests}) == 2

    # The runs have not started yet: the requests are still pending, and not requested again.
    second = tick(pg_url, instance, result.cursor)
    assert second.run_requests == [] and second.skip_reason

    # Only the new request is launched; ones a run has picked up leave the cursor.
    with engine.begin() as conn:
        conn.execute(sa.update(t.data_exports).where(t.data_exports.c.id.in_(first[:BATCH_SIZE])).values(status="running"))
    (new,) = insert_requests(engine, ["user-new"])
    third = tick(pg_url, instance, second.cursor)
    assert [ids_of(r) for r in third.run_requests] == [[new]]
    assert set(json.loads(third.cursor)["launched"]) == {str(i) for i in [*first[BATCH_SIZE:], new]}


def test_sensor_launches_again_a_request_whose_run_ended_without_it(engine, pg_url, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    (request_id,) = insert_requests(engine, ["user-a"])
    result = tick(pg_url, instance)
    (launched,) = result.run_requests
    # That run ends without reaching the request (here: it was given another id to handle).
    dg.materialize(
        [user_data_exports], instance=instance, tags={"dagster/run_key": launched.run_key},
        resources={"app_db": AppDatabase(url=pg_url), "object_store": LocalObjectStoreResource(root=str(tmp_path), **BUCKETS)},
        run_config={"ops": {"user_data_exports": {"config": {"request_ids": [request_id + 1000]}}}},
    )
    assert statuses(engine)[request_id] == "pending"

    again = tick(pg_url, instance, result.cursor)

    (relaunch,) = again.run_requests
    assert ids_of(relaunch) == [request_id] and relaunch.run_key == batch_run_key([request_id], 2)
    assert tick(pg_url, instance, again.cursor).run_requests == []


@pytest.mark.s3
def test_run_on_s3_produces_links_and_records_an_unknown_user_as_failed(engine, vault, pg_url, s3_endpoint):
    seed_user(engine, vault, "u-ivy", "2001", "ivymarker")
    ghost, ivy = insert_requests(engine, ["u-ghost", "u-ivy"])
    instance = dg.DagsterInstance.ephemeral()
    (run_request,) = tick(pg_url, instance).run_requests
    resources = {
        "app_db": AppDatabase(url=pg_url),
        "object_store": S3ObjectStoreResource(s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"), **BUCKETS),
    }

    result = dg.materialize([user_data_exports], resources=resources, instance=instance, run_config=run_request.run_config)

    assert result.success
    meta = metadata(result)
    assert (meta["ready"], meta["failed"], meta["skipped"], meta["dagster/row_count"]) == (1, 1, 0, 1)
    assert meta["request_ids_ready"] == [ivy] and meta["request_ids_failed"] == [ghost]
    assert meta["bytes_written"] > 0 and meta["link_expiry_seconds"] == 86400
    assert "u-ivy" not in json.dumps({k: str(v) for k, v in meta.items()})
    assert statuses(engine) == {ghost: "failed", ivy: "ready"}
    with engine.connect() as conn:
        url = conn.execute(sa.select(t.data_exports.c.download_url).where(t.data_exports.c.id == ivy)).scalar_one()
    response = httpx.get(url)
    assert response.status_code == 200 and response.json()["profile"]["id"] == "u-ivy"


@pytest.mark.s3
def test_a_platform_failure_fails_the_run_and_names_the_requests(engine, vault, pg_url, s3_endpoint):
    seed_user(engine, vault, "u-jo", "2002", "jomarker")
    (request_id,) = insert_requests(engine, ["u-jo"])

    class _NoExportsBucket(S3ObjectStoreResource):
        def store(self):
            real = super().store()
            real.ensure_bucket = lambda bucket: None  # the bucket is missing and not created
            return real

    result = dg.materialize(
        [user_data_exports], raise_on_error=False,
        resources={
            "app_db": AppDatabase(url=pg_url),
            "object_store": _NoExportsBucket(
                s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
                **{**BUCKETS, "exports_bucket": "exports-bucket-never-made"},
            ),
        },
        run_config={"ops": {"user_data_exports": {"config": {"request_ids": [request_id]}}}},
    )

    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert f"request {request_id}: object store: " in failure.step_failure_data.user_failure_data.description
    assert statuses(engine) == {request_id: "failed"}


def test_embedded_defaults_end_to_end(tmp_path, vault):
    """SQLite app database and the local directory store, as `make demo` runs: sensor, run, link."""
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    upgrade(engine)
    seed_user(engine, vault, "u-kim", "2003", "kimmarker")
    with engine.begin() as conn:
        request_id, _ = ex.request_export(conn, "u-kim")
    url = str(engine.url)
    instance = dg.DagsterInstance.ephemeral()
    (run_request,) = tick(url, instance).run_requests
    resources = {
        "app_db": AppDatabase(url=url),
        "object_store": LocalObjectStoreResource(root=str(tmp_path / "objects"), **BUCKETS),
    }

    defs = dg.Definitions(assets=[user_data_exports], jobs=[export_user_data_job], resources=resources)

    result = defs.resolve_job_def("export_user_data").execute_in_process(
        instance=instance, run_config=run_request.run_config
    )

    assert result.success and metadata(result)["ready"] == 1
    with engine.connect() as conn:
        (done,) = ex.user_requests(conn, "u-kim")
    assert done["status"] == "ready" and done["object_key"] == f"user-exports/u-kim/{request_id}.json"
    document = json.loads(LocalObjectStore(tmp_path / "objects").open_presigned(done["download_url"]))
    assert document["user_id"] == "u-kim" and document["counts"]["tweets"] == 3
    assert "kimmarker-secret" not in json.dumps(document)
    engine.dispose()


# --- repazoo export --------------------------------------------------------------------------------
@pytest.fixture
def cli_env(tmp_path, monkeypatch, pg_url):
    for name in (*PRODUCTION_REQUIRED, "REPAZOO_ENV", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPAZOO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", pg_url)
    return tmp_path / "data"


def cli(*args):
    return CliRunner().invoke(export, list(args), catch_exceptions=False)


def test_cli_request_and_status(engine, vault, cli_env):
    seed_user(engine, vault, "u-lee", "2004", "leemarker")

    first = cli("request", "--user-id", "u-lee")
    assert first.exit_code == 0, first.output
    (request_id,) = statuses(engine)
    assert first.output == f"export request {request_id} for user u-lee: pending\n"
    again = cli("request", "--user-id", "u-lee")
    assert again.output == f"export request {request_id} for user u-lee is already open; no new request\n"
    assert cli("status", "--user-id", "u-lee").output.splitlines()[1].split()[:2] == [str(request_id), "pending"]

    store = LocalObjectStore(cli_env / "objects")
    ex.handle_requests(engine, store, "repazoo-exports", [request_id])
    shown = cli("status", "--user-id", "u-lee").output.splitlines()
    assert shown[1].split()[:2] == [str(request_id), "ready"]
    url = shown[2].split("download: ")[1]
    assert json.loads(store.open_presigned(url))["user_id"] == "u-lee"

    with engine.begin() as conn:  # the link has expired
        conn.execute(sa.update(t.data_exports).values(expires_at=sa.func.now() - sa.text("interval '1 minute'")))
    expired = cli("status", "--user-id", "u-lee").output
    assert "download:" not in expired and "link expired; request a new export" in expired


def test_cli_unknown_user_and_settings_errors(engine, cli_env, monkeypatch):
    result = cli("request", "--user-id", "u-nobody")
    assert result.exit_code == 0
    assert result.stdout.startswith("export request ") and result.stdout.endswith(" for user u-nobody: pending\n")
    assert result.stderr == "note: there is no user u-nobody; the request will end failed\n"
    (request_id,) = statuses(engine)
    ex.handle_requests(engine, LocalObjectStore(cli_env / "objects"), "repazoo-exports", [request_id])
    status = cli("status", "--user-id", "u-nobody").output
    assert f"reason: {ex.UNKNOWN_USER_REASON}" in status and "failed" in status
    assert cli("status", "--user-id", "u-other").output == "no export requests for user u-other\n"

    monkeypatch.setenv("REPAZOO_ENV", "staging")
    bad = CliRunner().invoke(export, ["status", "--user-id", "u-other"])
    assert bad.exit_code == 2
    assert bad.output.strip() == "repazoo: error: REPAZOO_ENV: unknown environment 'staging'; use one of local, production"


def test_demo_export_prints_the_link(engine, vault, pg_url, tmp_path, capsys):
    seed_user(engine, vault, "u-max", "2005", "maxmarker")
    defs = dg.Definitions(
        assets=[user_data_exports], jobs=[export_user_data_job],
        resources={
            "app_db": AppDatabase(url=pg_url),
            "object_store": LocalObjectStoreResource(root=str(tmp_path / "objects"), **BUCKETS),
        },
    )

    url = demo_export(defs, dg.DagsterInstance.ephemeral(), engine, "u-max")

    assert url is not None and url in capsys.readouterr().out
    assert json.loads(LocalObjectStore(tmp_path / "objects").open_presigned(url))["user_id"] == "u-max"
