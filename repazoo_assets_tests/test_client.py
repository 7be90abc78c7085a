"""The trigger client against a real `dagster dev` webserver and the real PostgreSQL."""

from __future__ import annotations

import time

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from repazoo_assets.client import (
    ConsentRevoked,
    RepazooClient,
    UnknownUser,
    WebserverUnreachable,
)
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.security.vault import TokenVault
from repazoo_assets_tests.conftest import free_port
from repazoo_assets_tests.webserver import dagster_dev


@pytest.fixture
def app_engine(pg_url):
    engine = create_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def connect(engine, user_id: str, *, tier: str = "basic") -> None:
    vault = TokenVault.from_keys(Fernet.generate_key().decode())
    with engine.begin() as conn:
        store.connect_user(
            conn, vault, user_id=user_id, twitter_user_id=f"9{abs(hash(user_id)) % 10**9}",
            access_token="access-token", refresh_token="refresh-token", expires_in=7200, tier=tier,
        )


def request_rows(engine, user_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t.user_requests).where(t.user_requests.c.user_id == user_id).order_by(t.user_requests.c.id)
        ).all()


# -- without a webserver: requests are recorded for the sensor -------------------------------------


def test_requests_are_recorded_once_and_refused_for_unknown_or_revoked_users(app_engine):
    connect(app_engine, "u-1")
    client = RepazooClient(engine=app_engine)

    first = client.sync_user("u-1")
    again = client.sync_user("u-1")
    analyse = client.analyse_user("u-1")
    assert (first.status, first.run_id, first.created) == ("pending", None, True)
    assert (again.request_id, again.created) == (first.request_id, False)
    assert analyse.request_id != first.request_id
    assert [(r.kind, r.status) for r in request_rows(app_engine, "u-1")] == [("sync", "pending"), ("analyse", "pending")]

    with pytest.raises(UnknownUser, match="unknown user 'nobody'"):
        client.sync_user("nobody")
    with app_engine.begin() as conn:
        store.revoke_token(conn, "u-1")
    with pytest.raises(ConsentRevoked, match="OAuth token revoked"):
        client.sync_user("u-1")


def test_an_unreachable_webserver_leaves_the_request_for_the_sensor(app_engine):
    connect(app_engine, "u-2")
    client = RepazooClient(engine=app_engine, webserver_url=f"http://127.0.0.1:{free_port()}", timeout=3)
    with pytest.raises(WebserverUnreachable) as caught:
        client.sync_user("u-2")
    assert caught.value.request_id is not None
    assert "the platform's sensor will launch it" in str(caught.value)
    [row] = request_rows(app_engine, "u-2")
    assert (row.id, row.status, row.run_id) == (caught.value.request_id, "pending", None)


def test_the_sensor_launches_pending_requests_once_and_closes_finished_ones(app_engine, monkeypatch):
    from repazoo_assets.defs.requests.sensors import user_requests_sensor
    from repazoo_assets.defs.resources import AppDatabase

    connect(app_engine, "u-3")
    client = RepazooClient(engine=app_engine)
    request = client.sync_user("u-3")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"app_db": AppDatabase(url=app_engine.url.render_as_string(hide_password=False))}

    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = user_requests_sensor(context)
    [run_request] = result.run_requests
    assert run_request.job_name == "tweet_pipeline"
    assert run_request.partition_key == "u-3"
    assert run_request.run_key == f"user-request:{request.request_id}"
    assert result.dynamic_partitions_requests[0].partition_keys == ["u-3"]
    assert request_rows(app_engine, "u-3")[0].status == "launched"

    # Next tick: nothing new to launch; once the run exists and succeeded, the request is done.
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        assert user_requests_sensor(context).run_requests == []
    instance.add_run(
        dg.DagsterRun(job_name="tweet_pipeline", run_id="r" * 36, status=dg.DagsterRunStatus.SUCCESS,
                      tags={"repazoo/user_request_id": str(request.request_id)})
    )
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        user_requests_sensor(context)
    [row] = request_rows(app_engine, "u-3")
    assert (row.status, row.run_id) == ("done", "r" * 36)
    assert client.sync_user("u-3").request_id != request.request_id


# -- with a real webserver -------------------------------------------------------------------------


def _wait_for_run(url: str, run_id: str, timeout: float = 300) -> str:
    query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.monotonic() < deadline:
            status = http.post("/graphql", json={"query": query, "variables": {"id": run_id}}).json()[
                "data"]["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


@pytest.mark.webserver
@pytest.mark.timeout(600)
def test_sync_user_launches_through_the_webserver_and_is_idempotent(app_engine, pg_url, tmp_path):
    from dagster_graphql import DagsterGraphQLClient

    connect(app_engine, "u-web")
    env = {"DATABASE_URL": pg_url, "REPAZOO_DATA_DIR": str(tmp_path / "data"), "REPAZOO_ENV": "local"}
    with dagster_dev(env, tmp_path / "dagster") as url:
        client = RepazooClient(engine=app_engine, webserver_url=url)
        first = client.sync_user("u-web")
        assert first.status == "launched" and first.run_id
        second = client.sync_user("u-web")
        assert (second.request_id, second.run_id) == (first.request_id, first.run_id)
        run = _run(url, first.run_id)
        assert run["jobName"] == "tweet_pipeline"
        assert {"key": "dagster/partition", "value": "u-web"} in run["tags"]
        assert {"key": "repazoo/user_request_id", "value": str(first.request_id)} in run["tags"]

        # Once the run has ended (here: cancelled by an operator), asking again makes a new run.
        DagsterGraphQLClient("127.0.0.1", port_number=int(url.rsplit(":", 1)[1])).terminate_run(first.run_id)
        assert _wait_for_run(url, first.run_id) in ("CANCELED", "SUCCESS", "FAILURE")
        third = client.sync_user("u-web")
        assert third.request_id != first.request_id and third.run_id not in (None, first.run_id)
        analysed = client.analyse_user("u-web")
        assert analysed.status == "launched" and analysed.run_id not in (None, third.run_id)
        assert _run(url, analysed.run_id)["jobName"] == "analyse_user"

    rows = request_rows(app_engine, "u-web")
    assert [(r.kind, r.status) for r in rows][1:] == [("sync", "launched"), ("analyse", "launched")]
    assert rows[0].status in ("failed", "done")  # cancelled counts as failed; a run that won the race, done
    assert [r.run_id for r in rows] == [first.run_id, third.run_id, analysed.run_id]


def _run(url: str, run_id: str) -> dict:
    query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { jobName status tags { key value } } } }"
    return httpx.post(f"{url}/graphql", json={"query": query, "variables": {"id": run_id}}, timeout=10).json()[
        "data"]["runOrError"]


def test_export_and_revocation_requests_are_recorded_once(app_engine):
    connect(app_engine, "u-4")
    client = RepazooClient(engine=app_engine, source="web")

    export = client.request_export("u-4")
    assert (export.status, export.created) == ("pending", True)
    assert client.request_export("u-4").request_id == export.request_id

    revoked = client.revoke_consent("u-4", reason="user asked", ip_address="203.0.113.9", user_agent="Firefox")
    again = client.revoke_consent("u-4", reason="user asked")
    assert revoked.created and not again.created and again.request_id == revoked.request_id
    with app_engine.connect() as conn:
        assert store.consent(conn, "u-4").reason == "OAuth token revoked"
        [row] = conn.execute(
            sa.select(t.consent_audit_log).where(
                t.consent_audit_log.c.user_id == "u-4", t.consent_audit_log.c.action == "revoke"
            )
        ).all()
    assert (row.source, row.reason, row.ip_address) == ("web", "user asked", "203.0.113.9")
    with pytest.raises(ConsentRevoked):
        client.sync_user("u-4")
    with pytest.raises(UnknownUser):
        client.request_export("ghost")


def test_a_pending_request_is_claimed_exactly_once(app_engine):
    from repazoo_assets.lib.db import requests_store

    connect(app_engine, "u-5")
    request = RepazooClient(engine=app_engine).sync_user("u-5")
    with app_engine.begin() as conn:
        first = requests_store.transition(conn, request.request_id, ("pending",), "launching")
        second = requests_store.transition(conn, request.request_id, ("pending",), "launched")
    assert (first, second) == (True, False)
    # While another caller is launching it, asking again returns the same request, not a new launch.
    again = RepazooClient(engine=app_engine, webserver_url=f"http://127.0.0.1:{free_port()}").sync_user("u-5")
    assert (again.request_id, again.status, again.created) == (request.request_id, "launching", False)
