"""The executor follows REPAZOO_EXECUTOR, and the celery settings match the workers' config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dagster as dg
import pytest
import yaml

from repazoo_assets.defs.execution import jobs
from repazoo_assets.lib.settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]
CELERY_ENV = {"REPAZOO_EXECUTOR": "celery", "CELERY_BROKER_URL": "redis://r:6379/1", "CELERY_RESULT_BACKEND": "redis://r:6379/2"}


def test_default_is_the_multiprocess_executor_forking_steps_from_a_preloaded_server():
    assert jobs.chosen_executor({}) == "multiprocess"
    executor = jobs.executor_for_environment({})
    assert executor.name == "multiprocess"
    assert jobs.multiprocess_executor_config({}) == {
        "start_method": {"forkserver": {"preload_modules": ["repazoo_assets.definitions", "dagster_postgres"]}}
    }
    # The preloaded modules exist: forkserver ignores a module it cannot import, silently.
    for module in jobs.FORKSERVER_PRELOAD:
        assert importlib.util.find_spec(module) is not None, module


def test_spawn_can_be_chosen_and_an_unknown_start_method_is_refused():
    assert jobs.multiprocess_executor_config({"REPAZOO_START_METHOD": "spawn"}) == {"start_method": {"spawn": {}}}
    with pytest.raises(SettingsError, match="REPAZOO_START_METHOD: unknown start method 'fork'"):
        jobs.executor_for_environment({"REPAZOO_START_METHOD": "fork"})


def test_steps_run_in_processes_forked_from_the_preloaded_server(tmp_path, monkeypatch):
    """A real run of a two-step job through the configured executor: each step runs in a process
    of its own whose parent is the forkserver, not the run's process, and the code location was
    already imported there before the step began."""
    import os

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    job = dg.reconstructable(_forkserver_probe_job)
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(job, instance=instance) as result:
            assert result.success
            seen = [result.output_for_node(name) for name in ("first", "second")]
    run_pid = os.getpid()
    for step_pid, parent_pid, preloaded in seen:
        assert step_pid != run_pid and parent_pid != run_pid
        assert preloaded
    assert seen[0][1] == seen[1][1]  # one forkserver for the run


def _where() -> tuple[int, int, bool]:
    import os
    import sys

    return os.getpid(), os.getppid(), "repazoo_assets.definitions" in sys.modules


@dg.op
def first() -> tuple[int, int, bool]:
    return _where()


@dg.op
def second(after: tuple[int, int, bool]) -> tuple[int, int, bool]:
    return _where()


@dg.job(executor_def=jobs.executor_for_environment({}))
def _forkserver_probe_job():
    second(first())


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
