"""The executor follows REPAZOO_EXECUTOR, and the celery settings match the workers' config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from repazoo_assets.defs.execution import jobs
from repazoo_assets.lib.settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]
CELERY_ENV = {"REPAZOO_EXECUTOR": "celery", "CELERY_BROKER_URL": "redis://r:6379/1", "CELERY_RESULT_BACKEND": "redis://r:6379/2"}


def test_default_is_dagsters_multiprocess_executor():
    assert jobs.chosen_executor({}) == "multiprocess"
    assert jobs.executor_for_environment({}) is None


def test_unknown_executor_is_refused_naming_the_variable():
    with pytest.raises(SettingsError, match="REPAZOO_EXECUTOR: unknown executor 'dask'"):
        jobs.chosen_executor({"REPAZOO_EXECUTOR": "dask"})


def test_celery_without_broker_settings_fails_at_load_naming_them():
    with pytest.raises(SettingsError, match="CELERY_BROKER_URL, CELERY_RESULT_BACKEND: required when REPAZOO_EXECUTOR=celery"):
        jobs.executor_for_environment({"REPAZOO_EXECUTOR": "celery"})


def test_celery_executor_reads_the_broker_through_env_config():
    executor = jobs.executor_for_environment({**CELERY_ENV, "CELERY_QUEUE": "tweets"})
    assert executor.name == "celery"
    config = jobs.celery_executor_config({**CELERY_ENV, "CELERY_QUEUE": "tweets"})
    # The URL (and any password in it) is resolved at run time, never stored in the definitions.
    assert config["broker"] == {"env": "CELERY_BROKER_URL"} and config["backend"] == {"env": "CELERY_RESULT_BACKEND"}
    assert config["config_source"]["task_default_queue"] == "tweets"


def test_workers_start_with_the_executors_broker_backend_and_queue():
    worker = yaml.safe_load((ROOT / "deploy" / "celery.yaml").read_text())["execution"]["config"]
    executor = jobs.celery_executor_config(CELERY_ENV)
    assert worker["broker"] == executor["broker"] and worker["backend"] == executor["backend"]
    shared = {k: v for k, v in worker["config_source"].items() if k in executor["config_source"]}
    assert shared == executor["config_source"]


@pytest.mark.skipif(importlib.util.find_spec("dagster_k8s") is not None, reason="dagster-k8s is installed")
def test_k8s_without_dagster_k8s_says_what_is_missing():
    with pytest.raises(SettingsError, match="k8s needs the dagster-k8s package"):
        jobs.executor_for_environment({"REPAZOO_EXECUTOR": "k8s"})
