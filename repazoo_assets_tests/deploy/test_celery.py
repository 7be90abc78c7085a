"""Steps on Dagster's celery executor: a real `dagster-celery worker` (deploy/celery.yaml) against
the local Redis, a PostgreSQL-backed instance (deploy/dagster.yaml), the production resources
pointed at the local Twitter and Anthropic protocol servers and moto's S3. The run is launched the
way a deployment launches it (`dagster job execute -m repazoo_assets.definitions` in its own
process); each step must run in a process of the worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import redis
import sqlalchemy as sa
from cryptography.fernet import Fernet

from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store as store
from repazoo_assets.lib.security.vault import TokenVault
from repazoo_assets_tests.fakes.anthropic_server import FakeAnthropicServer
from repazoo_assets_tests.fakes.twitter_server import FakeTwitterServer, fake_tweet

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A Redis database of its own, and a queue name per test run: never another test's tasks.
REDIS_DB_URL = "redis://127.0.0.1:6379/13"

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.s3, pytest.mark.timeout(600)]


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the command name
        chain.append(pid)
    return chain


class Deployment:
    """The environment a worker and a run share, and the handles the test reads back."""

    def __init__(self, tmp_path: Path, pg_schema_factory, s3_endpoint, twitter: FakeTwitterServer, claude):
        self.home = tmp_path / "dagster_home"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
        self.dagster_url = pg_schema_factory().replace("postgresql+psycopg://", "postgresql+psycopg2://")
        self.app_url = pg_schema_factory()
        self.engine = create_engine(self.app_url)
        upgrade(self.engine)
        self.key = Fernet.generate_key().decode()
        self.vault = TokenVault.from_keys(self.key)
        self.queue = f"repazoo-test-{uuid.uuid4().hex[:12]}"
        self.twitter, self.claude = twitter, claude
        suffix = uuid.uuid4().hex[:8]
        self.raw_bucket = f"raw-{suffix}"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_POSTGRES_URL": self.dagster_url,
            "REPAZOO_ENV": "production",
            "REPAZOO_EXECUTOR": "celery",
            "CELERY_BROKER_URL": REDIS_DB_URL,
            "CELERY_RESULT_BACKEND": REDIS_DB_URL,
            "CELERY_QUEUE": self.queue,
            "DATABASE_URL": self.app_url,
            "REDIS_URL": REDIS_DB_URL,
            "S3_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "RAW_S3_BUCKET": self.raw_bucket,
            "PROCESSED_S3_BUCKET": f"processed-{suffix}",
            "EXPORTS_S3_BUCKET": f"exports-{suffix}",
            "ENCRYPTION_KEY": self.key,
            "PSEUDONYMIZATION_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": claude.base_url,
            "TWITTER_CLIENT_ID": twitter.client_id,
            "TWITTER_CLIENT_SECRET": twitter.client_secret,
            "TWITTER_API_BASE_URL": twitter.base_url,
            "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/unused",
        }
        self.env.pop("SENTRY_DSN", None)
        self.worker: subprocess.Popen | None = None
        self.users: list[str] = []
        self.worker_name = f"repazoo-test-{suffix}"
        self.worker_log = tmp_path / "worker.log"

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def start_worker(self) -> None:
        with open(self.worker_log, "wb") as log:
            self.worker = subprocess.Popen(
                [
                    str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                    "-y", str(ROOT / "deploy" / "celery.yaml"), "-q", self.queue, "-n", self.worker_name,
                    "--", "--concurrency=2",
                ],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = self.worker_log.read_text(errors="replace")
            if " ready." in text:
                return
            if self.worker.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"celery worker did not start:\n{self.worker_log.read_text(errors='replace')[-3000:]}")

    def stop_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            return
        os.killpg(self.worker.pid, signal.SIGTERM)  # its own session: the CLI, celery and the pool
        try:
            self.worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=30)

    def launch(self, job: str, tags: dict[str, str] | None = None) -> subprocess.Popen:
        """`dagster job execute` in a process of its own: the run's orchestrator, as a run worker."""
        args = [str(BIN / "dagster"), "job", "execute", "-m", "repazoo_assets.definitions", "-a", "defs", "-j", job]
        if tags:
            args += ["--tags", json.dumps(tags)]
        return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def deployment(tmp_path, pg_schema_factory, s3_endpoint, monkeypatch):
    with FakeTwitterServer() as twitter, FakeAnthropicServer() as claude:
        d = Deployment(tmp_path, pg_schema_factory, s3_endpoint, twitter, claude)
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", d.dagster_url)  # deploy/dagster.yaml reads it
        broker = redis.Redis.from_url(REDIS_DB_URL)
        results_before = set(broker.scan_iter(match="celery-task-meta-*"))
        try:
            yield d
        finally:
            d.stop_worker()
            d.engine.dispose()
            # What this test left in its Redis database: its queue, its task results, its users' limiter keys.
            leftovers = set(broker.scan_iter(match=f"*{d.queue}*"))
            leftovers |= set(broker.scan_iter(match="celery-task-meta-*")) - results_before
            for user_id in d.users:
                leftovers |= set(broker.scan_iter(match=f"*{user_id}*"))
            if leftovers:
                broker.delete(*leftovers)
            broker.close()


def _connect_user(d: Deployment, n_tweets: int) -> str:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    twitter_user_id = str(20_000 + int(uuid.uuid4().int % 1_000_000))
    base = datetime(2026, 11, 1, tzinfo=UTC)
    d.twitter.add_tweets(
        twitter_user_id,
        [
            fake_tweet(1_800_000_000_000_000_000 + i, f"tweet {i}: write to jane.doe@gmail.com" if i % 5 == 0
                       else f"tweet {i}: great launch", created_at=base + timedelta(minutes=i))
            for i in range(n_tweets)
        ],
    )
    access, refresh = d.twitter.issue_tokens()
    d.users.append(user_id)
    with d.engine.begin() as conn:
        store.connect_user(conn, d.vault, user_id=user_id, twitter_user_id=twitter_user_id, access_token=access,
                           refresh_token=refresh, expires_in=7200, tier="basic")
    return user_id


def _step_starts(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return {r.event_log_entry.step_key: r.event_log_entry.dagster_event.pid for r in records}


def _celery_hosts(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    hosts = set()
    for r in records:
        data = r.event_log_entry.dagster_event.engine_event_data
        if data and "Celery worker" in data.metadata:
            hosts.add(data.metadata["Celery worker"].value)
    return hosts


def test_tweet_and_event_pipelines_run_their_steps_in_the_celery_worker(deployment):
    d = deployment
    user_id = _connect_user(d, n_tweets=60)
    with d.engine.begin() as conn:
        conn.execute(sa.insert(t.clients).values(id="acme", name="acme", privacy_level="standard",
                                                 sync_frequency="hourly", destination_bucket="b-acme"))
        conn.execute(sa.insert(t.events_log), [
            {"client_id": "acme", "event_type": "page_view", "ip_address": f"10.0.0.{i}", "user_agent": "Mozilla/5.0",
             "url": f"https://acme.example.com/p/{i}", "payload": json.dumps({"n": i}),
             "consent_analytics": True, "consent_marketing": False}
            for i in range(7)
        ])
    with d.instance() as instance:
        instance.add_dynamic_partitions("users", [user_id])

    d.start_worker()
    launched = [d.launch("tweet_pipeline", tags={"dagster/partition": user_id}), d.launch("raw_events_export")]
    for run in launched:  # both at once: the worker's two processes take steps of either run
        output, _ = run.communicate(timeout=400)
        assert run.returncode == 0, output[-4000:]

    worker_pid = d.worker.pid
    with d.instance() as instance:
        runs = {run.job_name: run for run in instance.get_runs()}
        assert set(runs) == {"tweet_pipeline", "raw_events_export"}
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values())
        assert runs["tweet_pipeline"].tags["dagster/partition"] == user_id
        tweet_steps = _step_starts(instance, runs["tweet_pipeline"].run_id)
        event_steps = _step_starts(instance, runs["raw_events_export"].run_id)
        assert {"tweets", "sanitized_tweets", "tweet_analyses", "reputation_summary"} <= set(tweet_steps)
        assert "raw_events" in event_steps
        for step, pid in {**tweet_steps, **event_steps}.items():
            assert pid != os.getpid(), step
            # The step's process is the worker's: a pool process under the `dagster-celery` we started.
            assert worker_pid in _ancestors(pid), f"{step} ran in pid {pid}, not under the worker {worker_pid}"
        for run in runs.values():
            assert _celery_hosts(instance, run.run_id) == {f"{d.worker_name}@{os.uname().nodename}"}
        materialized = instance.get_latest_materialization_event(dg.AssetKey("tweets"))
        assert materialized.asset_materialization.partition == user_id

    with d.engine.connect() as conn:
        tweets = conn.execute(sa.select(sa.func.count()).select_from(t.tweets).where(t.tweets.c.user_id == user_id)).scalar()
        analysed = conn.execute(sa.select(sa.func.count()).select_from(t.analyses).where(t.analyses.c.user_id == user_id)).scalar()
        exported = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.raw_batches.c.row_count), 0))).scalar()
    assert (tweets, analysed, exported) == (60, 60, 7)
    bodies = "\n".join(r.raw.decode() for r in d.claude.requests)
    assert d.claude.requests and "jane.doe@gmail.com" not in bodies  # sanitized before Claude, in the worker too

    d.stop_worker()
    assert d.worker.returncode is not None
