"""Where the steps of every job run, chosen by `REPAZOO_EXECUTOR` for the whole code location:

- `multiprocess` (default): Dagster's multiprocess executor, one process per step inside the run.
  The step processes are forked from a forkserver that has imported the code location once per
  run (`start_method: forkserver`, `preload_modules`), instead of Dagster's default `spawn`, where
  every step process starts a new interpreter and imports Dagster and the code location again
  (about 2 CPU-seconds a step). `REPAZOO_START_METHOD=spawn` restores the default.
- `celery`: Dagster's celery executor with Redis as broker; each step is a task that a
  `dagster-celery worker` on any machine picks up (`deploy/celery.yaml`, docs/deployment.md).
- `k8s`: dagster-k8s's `k8s_job_executor`, each step in a Kubernetes Job of its own (the image
  must have dagster-k8s installed, as the Dockerfile does).

The celery settings are read through Dagster's `env` config (`CELERY_BROKER_URL`,
`CELERY_RESULT_BACKEND`), so a broker password never appears in run config or the UI, and are
checked at load like the resources' settings: a missing variable fails the code location, naming it.
The queue (`CELERY_QUEUE`, default `dagster`) must be one the workers listen on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from repazoo_assets.lib.settings import SettingsError

EXECUTOR_VARIABLE = "REPAZOO_EXECUTOR"
EXECUTORS = ("multiprocess", "celery", "k8s")
START_METHOD_VARIABLE = "REPAZOO_START_METHOD"
START_METHODS = ("forkserver", "spawn")
# Imported once by each run's forkserver; every step process of the run is forked from it.
# dagster_postgres: the production instance's storage, which each step process opens.
FORKSERVER_PRELOAD = ("repazoo_assets.definitions", "dagster_postgres")
CELERY_REQUIRED = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
DEFAULT_QUEUE = "dagster"


def chosen_executor(environ: Mapping[str, str] = os.environ) -> str:
    name = environ.get(EXECUTOR_VARIABLE, "").strip().lower() or "multiprocess"
    if name not in EXECUTORS:
        raise SettingsError(EXECUTOR_VARIABLE, f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
    return name


def multiprocess_executor_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    method = environ.get(START_METHOD_VARIABLE, "").strip().lower() or "forkserver"
    if method not in START_METHODS:
        raise SettingsError(START_METHOD_VARIABLE, f"unknown start method {method!r}; use one of {', '.join(START_METHODS)}")
    if method == "spawn":
        return {"start_method": {"spawn": {}}}
    return {"start_method": {"forkserver": {"preload_modules": list(FORKSERVER_PRELOAD)}}}


def celery_executor_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The celery executor's config; the same block as `execution.config` in deploy/celery.yaml,
    which the workers start with."""
    missing = [name for name in CELERY_REQUIRED if not environ.get(name, "").strip()]
    if missing:
        raise SettingsError(", ".join(missing), f"required when {EXECUTOR_VARIABLE}=celery but not set")
    return {
        "broker": {"env": "CELERY_BROKER_URL"},
        "backend": {"env": "CELERY_RESULT_BACKEND"},
        "config_source": {
            "task_default_queue": environ.get("CELERY_QUEUE", "").strip() or DEFAULT_QUEUE,
            "broker_connection_retry_on_startup": True,
            # Results are read by the run within seconds; do not keep them in Redis for a day.
            "result_expires": 3600,
        },
    }


def executor_for_environment(environ: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition:
    name = chosen_executor(environ)
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_executor_config(environ), name="celery")
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise SettingsError(EXECUTOR_VARIABLE, "k8s needs the dagster-k8s package, which is not installed") from None
        # Pool limits still bound the steps; this bounds the pods one run starts at once.
        return k8s_job_executor.configured({"max_concurrent": 8}, name="k8s")
    return dg.multiprocess_executor.configured(multiprocess_executor_config(environ), name="multiprocess")


@dg.definitions
def execution() -> dg.Definitions:
    return dg.Definitions(executor=executor_for_environment())
