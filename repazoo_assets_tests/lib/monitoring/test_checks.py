"""All checks of one run on the real services; the health checks fail for each unreachable one."""

import uuid
from datetime import UTC, datetime

import boto3
import pytest

from repazoo_assets.lib.health import rate_limit_storage
from repazoo_assets.lib.monitoring.checks import CHECK_NAMES, alert_for, evaluate_all
from repazoo_assets.lib.monitoring.run_failures import error_class, run_failure_alert
from repazoo_assets.lib.storage import LocalObjectStore, S3ObjectStore, s3_client
from repazoo_assets_tests.conftest import free_port

NOW = datetime(2026, 11, 24, 12, 7, tzinfo=UTC)
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def bucket(s3_endpoint):
    name = f"mon-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def by_name(outcomes):
    return {o.check_name: o for o in outcomes}


def test_every_check_passes_on_healthy_services(engine, s3_endpoint, bucket):
    outcomes = evaluate_all(
        engine, lambda: S3ObjectStore(s3_client(s3_endpoint)), bucket,
        lambda: rate_limit_storage(REDIS, f"test-{uuid.uuid4().hex}"), NOW,
    )
    assert [o.check_name for o in outcomes] == list(CHECK_NAMES)
    assert all(o.passed for o in outcomes), [o.description for o in outcomes if not o.passed]
    assert by_name(outcomes)["rate_limit_storage_health"].description.startswith("rate_limit_storage: ok (RedisStorage")
    assert all(alert_for(o) is None for o in outcomes)


def test_unreachable_redis_fails_only_its_health_check(engine, tmp_path):
    store = LocalObjectStore(tmp_path)
    store.ensure_bucket("raw")
    closed = f"redis://127.0.0.1:{free_port()}/0"
    outcomes = by_name(evaluate_all(engine, lambda: store, "raw", lambda: rate_limit_storage(closed, timeout=1), NOW))
    failed = [name for name, o in outcomes.items() if not o.passed]
    assert failed == ["rate_limit_storage_health"]
    redis_check = outcomes["rate_limit_storage_health"]
    assert redis_check.severity == "ERROR" and "did not answer" in redis_check.description
    alert = alert_for(redis_check)
    assert alert.severity == "error" and alert.dedup_key == "rate_limit_storage_health:2026-11-24T12:00Z"


def test_unreachable_object_store_fails_its_health_check(engine):
    closed = f"http://127.0.0.1:{free_port()}"
    outcomes = by_name(evaluate_all(
        engine, lambda: S3ObjectStore(s3_client(closed, "us-east-1", connect_timeout=1, max_attempts=1)),
        "raw", lambda: rate_limit_storage("memory://"), NOW,
    ))
    assert [n for n, o in outcomes.items() if not o.passed] == ["object_store_health"]
    assert "ObjectStoreUnreachable" in outcomes["object_store_health"].description


def test_unreachable_database_fails_its_health_check_and_other_checks_are_not_measured(tmp_path):
    from repazoo_assets.lib.db import create_engine

    down = create_engine(f"postgresql+psycopg://root@127.0.0.1:{free_port()}/test")
    store = LocalObjectStore(tmp_path)
    store.ensure_bucket("raw")
    outcomes = by_name(evaluate_all(down, lambda: store, "raw", lambda: rate_limit_storage("memory://"), NOW))
    assert not outcomes["database_health"].passed and alert_for(outcomes["database_health"]) is not None
    for name in ("rate_limit_violations", "token_refresh_failures", "quota_exceeded_attempts", "database_queries"):
        assert not outcomes[name].measured and "OperationalError" in outcomes[name].description
        assert alert_for(outcomes[name]) is None  # the database's own health check alerts
    assert outcomes["object_store_health"].passed and outcomes["rate_limit_storage_health"].passed
    down.dispose()


def test_a_store_that_cannot_be_built_fails_only_its_check(engine):
    def broken():
        raise ValueError("RAW_S3_BUCKET missing")

    outcomes = by_name(evaluate_all(engine, broken, "raw", lambda: rate_limit_storage("memory://"), NOW))
    assert [n for n, o in outcomes.items() if not o.passed] == ["object_store_health"]


class Err:
    def __init__(self, cls_name, cause=None, message=""):
        self.cls_name, self.cause, self.message = cls_name, cause, message


def test_error_class_looks_through_dagster_wrappers():
    inner = Err("HTTPStatusError", message="401 for jane.doe@gmail.com")
    assert error_class(Err("DagsterExecutionStepExecutionError", inner)) == "HTTPStatusError"
    assert error_class(Err("Failure")) == "Failure"
    assert error_class(None) is None


def test_run_failure_alert_names_job_partition_steps_and_class_only():
    alert = run_failure_alert(
        job_name="tweet_pipeline", run_id="0f3c9d2a-1111-2222-3333-444455556666", partition="user-42",
        error_classes=["HTTPStatusError", "HTTPStatusError"], failed_steps=["tweets"], will_retry=False,
    )
    assert alert.message == (
        "run 0f3c9d2a of job tweet_pipeline failed; partition user-42; error HTTPStatusError; steps tweets"
    )
    assert alert.severity == "error" and alert.dedup_key == "run_failure:0f3c9d2a-1111-2222-3333-444455556666"
    retried = run_failure_alert(job_name="j", run_id="r", partition=None, error_classes=[], failed_steps=[],
                                will_retry=True)
    assert retried.severity == "warn" and retried.message == "run r of job j failed; error unknown error; will be retried"
