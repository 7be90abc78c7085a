"""Sentry reporting of monitoring alerts and failed runs, when `SENTRY_DSN` is set.

A client of our own (not `sentry_sdk.init`): nothing global is patched, no integration is
installed, and only what we capture is sent. Every event passes `scrub` (the client's
`before_send`) before it leaves the process: each string in it goes through the privacy
library's redaction, and the request and user parts are dropped, so a value that carries personal
data by mistake reaches Sentry as `[EMAIL]`, `[PHONE]`, ... Without a DSN `reporter_from_env`
returns None and nothing is sent.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from repazoo_assets.lib.privacy.pii import redact

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 2.0
DROPPED_KEYS = ("request", "user")


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `before_send` hook: personal data redacted from every string of the event."""
    return {k: _scrub_value(v) for k, v in event.items() if k not in DROPPED_KEYS}


class SentryReporter:
    def __init__(self, dsn: str, *, environment: str | None = None) -> None:
        # Imported here (~0.15 s): only a deployment with SENTRY_DSN makes a reporter.
        import sentry_sdk

        self.client = sentry_sdk.Client(
            dsn=dsn,
            environment=environment,
            before_send=scrub,
            default_integrations=False,
            auto_enabling_integrations=False,
            max_breadcrumbs=0,
            shutdown_timeout=FLUSH_TIMEOUT,
        )

    def _capture(
        self, message: str, level: str, tags: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> str | None:
        try:
            event = {
                "message": message,
                "level": level,
                "logger": "repazoo.monitoring",
                "tags": {k: str(v) for k, v in tags.items() if v is not None},
                "extra": dict(extra),
            }
            return self.client.capture_event(event)
        except Exception as exc:  # reporting must never fail the caller
            log.warning("sentry: event not captured (%s)", type(exc).__name__)
            return None

    def capture_alert(
        self, check_name: str, severity: str, message: str, *, value: float | None = None,
        threshold: float | None = None, window_key: str | None = None,
    ) -> str | None:
        level = "error" if severity.upper() == "ERROR" else "warning"
        return self._capture(
            f"[{check_name}] {message}", level,
            {"check_name": check_name, "severity": severity.lower(), "source": "monitoring"},
            {"value": value, "threshold": threshold, "window": window_key},
        )

    def capture_run_failure(
        self, *, job_name: str, run_id: str, partition: str | None, error_class: str, message: str
    ) -> str | None:
        return self._capture(
            message, "error",
            {"job": job_name, "error_class": error_class, "partition": partition, "source": "run_failure"},
            {"run_id": run_id},
        )

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        try:
            self.client.flush(timeout=timeout)
        except Exception as exc:
            log.warning("sentry: flush failed (%s)", type(exc).__name__)


_reporters: dict[str, SentryReporter] = {}
_lock = threading.Lock()


def reporter_from_env(environ: Mapping[str, str] = os.environ) -> SentryReporter | None:
    """The reporter for `SENTRY_DSN` (one per DSN and process), or None when it is unset."""
    dsn = (environ.get("SENTRY_DSN") or "").strip()
    if not dsn:
        return None
    with _lock:
        if dsn not in _reporters:
            try:
                _reporters[dsn] = SentryReporter(dsn, environment=environ.get("REPAZOO_ENV", "local"))
            except Exception as exc:  # a malformed DSN disables reporting, it does not fail runs
                log.warning("SENTRY_DSN: unusable (%s); nothing is sent to Sentry", type(exc).__name__)
                return None
        return _reporters[dsn]
