"""Every monitoring check of one run, evaluated at one time, as plain outcomes.

The thresholds come from `thresholds.py`, the health probes from `lib/health.py`. Nothing here
raises for a failing dependency: a check that cannot take its reading is an outcome too
(`measured=False`), and is not alerted on its own, because the health check of the dependency
that broke already is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from repazoo_assets.lib.health import (
    ProbeResult,
    probe_database,
    probe_object_store,
    probe_rate_limit_storage,
)
from repazoo_assets.lib.monitoring.alerts import Alert
from repazoo_assets.lib.monitoring.thresholds import (
    ERROR,
    HEALTH_ALERT_EVERY,
    USAGE_THRESHOLDS,
    WARN,
    CheckOutcome,
    describe,
    evaluate_db_queries,
    evaluate_usage,
    window_key,
)
from repazoo_assets.lib.storage import ObjectStore

HEALTH_CHECKS = {
    "database": "database_health",
    "rate_limit_storage": "rate_limit_storage_health",
    "object_store": "object_store_health",
}
CHECK_NAMES = (
    *(th.check_name for th in USAGE_THRESHOLDS),
    "database_queries",
    *HEALTH_CHECKS.values(),
)


def _not_measured(
    check_name: str, exc: Exception, now: datetime, threshold: float | None, window: str
) -> CheckOutcome:
    return CheckOutcome(
        check_name=check_name, passed=False, severity=WARN, measured=False,
        description=f"not measured: {type(exc).__name__}", window_key=window_key(now, HEALTH_ALERT_EVERY),
        threshold=threshold, window=window,
    )


def usage_outcomes(engine: Engine, now: datetime) -> list[CheckOutcome]:
    outcomes = []
    for threshold in USAGE_THRESHOLDS:
        try:
            with engine.connect() as conn:
                outcomes.append(evaluate_usage(conn, threshold, now))
        except Exception as exc:
            outcomes.append(
                _not_measured(
                    threshold.check_name, exc, now, float(threshold.limit), describe(threshold.window)
                )
            )
    return outcomes


def db_queries_outcome(engine: Engine, now: datetime) -> CheckOutcome:
    try:
        return evaluate_db_queries(engine, now)
    except Exception as exc:
        return _not_measured("database_queries", exc, now, 1000.0, "5 min")


def health_outcome(probe: ProbeResult, now: datetime) -> CheckOutcome:
    return CheckOutcome(
        check_name=HEALTH_CHECKS[probe.name],
        passed=probe.ok,
        severity=ERROR,
        description=f"{probe.name}: {'ok' if probe.ok else 'FAILED'} ({probe.detail})",
        window_key=window_key(now, HEALTH_ALERT_EVERY),
        value=probe.latency_ms,
        window="probe",
        extra={"latency_ms": probe.latency_ms},
    )


def _probe(name: str, build: Callable[[], ProbeResult]) -> ProbeResult:
    try:
        return build()
    except Exception as exc:  # building the client failed (bad URI, missing bucket setting...)
        return ProbeResult(name, False, 0.0, f"{type(exc).__name__}: could not set up the probe")


def evaluate_all(
    engine: Engine,
    store: Callable[[], ObjectStore],
    bucket: str,
    rate_limit_storage: Callable[[], object],
    now: datetime,
) -> list[CheckOutcome]:
    """All checks, in CHECK_NAMES order. `store` and `rate_limit_storage` are factories, so a
    dependency whose client cannot even be built fails its own check and no other."""
    probes = [
        _probe("database", lambda: probe_database(engine)),
        _probe("rate_limit_storage", lambda: probe_rate_limit_storage(rate_limit_storage())),
        _probe("object_store", lambda: probe_object_store(store(), bucket)),
    ]
    return [
        *usage_outcomes(engine, now),
        db_queries_outcome(engine, now),
        *(health_outcome(p, now) for p in probes),
    ]


def alert_for(outcome: CheckOutcome) -> Alert | None:
    """The alert a failed, measured outcome raises; None otherwise."""
    if outcome.passed or not outcome.measured:
        return None
    return Alert(
        check_name=outcome.check_name,
        severity=outcome.severity.lower(),
        message=outcome.description,
        window_key=outcome.window_key,
        value=outcome.value if outcome.threshold is not None else None,
        threshold=outcome.threshold,
    )
