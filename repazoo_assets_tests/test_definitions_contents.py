"""What the code location holds, and what loading it imports.

The entry point lists the defs modules instead of letting `dg.load_from_defs_folder` find them
(docs/architecture.md, "Code location"): these tests make sure nothing was lost on the way and that
a module added to the folder cannot be left out of the list.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

import repazoo_assets.defs
from repazoo_assets.definitions import DEFS_MODULES, build_defs

# What `dg.load_from_defs_folder` gave before the entry point listed the modules.
EXPECTED = {
    "assets": {
        "client_exports", "compliance_report", "data_retention", "events_cleanup", "platform_health",
        "processed_events", "raw_events", "reputation_summary", "sanitized_tweets", "tweet_analyses",
        "tweets", "user_data_exports", "user_erasure",
    },
    "checks": {
        "platform_health:database_health", "platform_health:database_queries",
        "platform_health:object_store_health", "platform_health:quota_exceeded_attempts",
        "platform_health:rate_limit_storage_health", "platform_health:rate_limit_violations",
        "platform_health:token_refresh_failures", "processed_events:processed_events_counts_match_raw",
        "processed_events:processed_events_no_raw_identifiers", "raw_events:raw_batches_match_source",
        "sanitized_tweets:sanitized_tweets_pii_free", "user_erasure:no_personal_data_remains",
    },
    "jobs": {
        "__ASSET_JOB", "analyse_user", "cleanup_exported_events", "compliance_report_daily",
        "data_retention_job", "deliver_to_clients", "export_user_data", "monitoring",
        "process_events_hourly", "raw_events_export", "tweet_pipeline", "user_erasure_job",
    },
    "sensors": {
        "data_export_requests_sensor", "run_failure_alerts", "user_erasure_sensor",
        "user_requests_sensor", "users_sensor",
    },
    "schedules": {
        "cleanup_exported_events_schedule", "client_exports_schedule", "compliance_report_daily_schedule",
        "data_retention_schedule", "monitoring_every_5_minutes", "process_events_hourly_schedule",
        "raw_events_export_schedule", "user_erasure_daily_sweep",
    },
    "resources": {
        "anthropic", "app_db", "object_store", "pseudonymization", "rate_limits", "slack", "token_vault",
        "twitter",
    },
}


def _contents(defs: dg.Definitions) -> dict[str, set[str]]:
    graph = defs.resolve_asset_graph()
    return {
        "assets": {key.to_user_string() for key in graph.get_all_asset_keys()},
        "checks": {key.to_user_string() for key in graph.asset_check_keys},
        "jobs": {job.name for job in defs.resolve_all_job_defs()},
        "sensors": {sensor.name for sensor in defs.sensors or []},
        "schedules": {schedule.name for schedule in defs.schedules or []},
        "resources": set(defs.resources or {}),
    }


def test_the_code_location_holds_exactly_the_expected_definitions():
    defs = build_defs()
    dg.Definitions.validate_loadable(defs)
    assert _contents(defs) == EXPECTED


def test_the_listed_modules_give_what_the_defs_folder_loader_gives():
    folder = dg.load_from_defs_folder(path_within_project=Path(repazoo_assets.defs.__file__).parent)
    assert _contents(build_defs()) == _contents(folder)


def test_every_module_of_the_defs_folder_is_listed():
    found = {
        info.name
        for info in pkgutil.walk_packages(repazoo_assets.defs.__path__, prefix="repazoo_assets.defs.")
        if not info.ispkg
    }
    assert found == set(DEFS_MODULES)


def test_loading_locally_leaves_production_only_libraries_unimported(tmp_path):
    """S3 (dagster-aws, boto3), Slack (httpx, pybreaker, redis) and Sentry are imported when used,
    not by every process that loads the code location."""
    code = (
        "import json, sys\n"
        "import repazoo_assets.definitions as location\n"
        "location.defs.resolve_asset_graph()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[1:])))\n"
    )
    watched = ["dagster_aws", "boto3", "httpx", "pybreaker", "redis", "sentry_sdk", "dagster_celery", "dagster_k8s"]
    env = {k: v for k, v in os.environ.items() if k not in ("REPAZOO_ENV", "REPAZOO_EXECUTOR")}
    result = subprocess.run(
        [sys.executable, "-c", code, *watched],
        env={**env, "REPAZOO_DATA_DIR": str(tmp_path / "data")},
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_s3_resource_is_defined_on_first_use():
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.defs import resources

    store = resources.S3ObjectStoreResource(
        s3=S3Resource(endpoint_url="http://127.0.0.1:9", region_name="us-east-1"),
        raw_bucket="raw", processed_bucket="processed", exports_bucket="exports",
    )
    assert isinstance(store, resources.ObjectStoreResource)
    assert resources.S3ObjectStoreResource is type(store)  # one class, however often it is asked for
    assert type(store).__module__ == "repazoo_assets.defs.resources"
    assert store.store().client.meta.endpoint_url == "http://127.0.0.1:9"
