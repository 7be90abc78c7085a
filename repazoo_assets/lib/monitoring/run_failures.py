"""What a failed run's alert says: the job, the partition, the failed steps and the error's class.

Never the error's message or stack: a message can quote anything the failing code held (a tweet,
an e-mail address, a token), while a class name (`OperationalError`, `HTTPStatusError`) tells
the on-call engineer where to look and cannot carry personal data.
"""

from __future__ import annotations

from collections.abc import Sequence

from repazoo_assets.lib.monitoring.alerts import Alert

RUN_FAILURE_CHECK = "run_failure"

# Framework errors that only wrap the user code's error: the class worth reporting is the cause's.
WRAPPER_CLASSES = frozenset(
    {
        "DagsterExecutionStepExecutionError",
        "DagsterUserCodeExecutionError",
        "DagsterExecutionInterruptedError",
    }
)


def error_class(error) -> str | None:
    """Class name of the innermost meaningful error of a SerializableErrorInfo-like object
    (attributes `cls_name` and `cause`), or None without one."""
    seen = 0
    while error is not None and seen < 10:
        cause = getattr(error, "cause", None)
        if getattr(error, "cls_name", None) in WRAPPER_CLASSES and cause is not None:
            error, seen = cause, seen + 1
            continue
        return getattr(error, "cls_name", None)
    return None


def run_failure_alert(
    *,
    job_name: str,
    run_id: str,
    partition: str | None,
    error_classes: Sequence[str],
    failed_steps: Sequence[str],
    will_retry: bool,
) -> Alert:
    """One alert per failed run (its id is the window). A run that Dagster will retry is a
    warning; the last attempt's failure is an error."""
    classes = ", ".join(sorted(set(error_classes))) or "unknown error"
    parts = [f"run {run_id[:8]} of job {job_name} failed"]
    if partition:
        parts.append(f"partition {partition}")
    parts.append(f"error {classes}")
    if failed_steps:
        parts.append(f"steps {', '.join(sorted(failed_steps)[:5])}{' …' if len(failed_steps) > 5 else ''}")
    if will_retry:
        parts.append("will be retried")
    return Alert(
        check_name=RUN_FAILURE_CHECK,
        severity="warn" if will_retry else "error",
        message="; ".join(parts),
        window_key=run_id,
    )
