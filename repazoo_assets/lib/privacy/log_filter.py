"""Personal data never reaches a log: every log record is redacted where it is made.

Two layers, both installed by `install()` (idempotent; the code location calls it when it loads,
so every run of it, in whatever process, has them):

* a log-record factory, which redacts each record as `logging` creates it: the formatted message,
  the traceback text and the stack text. Every logger goes through it, Dagster's `context.log`
  included (`DagsterLogManager` is a `logging.Logger` and builds its records the standard way),
  so what reaches the run's event log, the console and any handler is already redacted;
* `RedactingFilter` on the root logger, its handlers and Dagster's named loggers, for records
  built without the factory (`logging.makeLogRecord`, records unpickled from another process).

The detector is `repazoo_assets.lib.privacy.pii`; a redacted record carries typed placeholders
such as `[EMAIL]` in place of the data.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from repazoo_assets.lib.privacy.pii import redact

__all__ = ["RedactingFilter", "install", "redact_record"]

_DAGSTER_LOGGERS = ("dagster", "dagster.builtin", "dagster.code_server", "dagster_webserver")
_MARK = "_repazoo_redacted"
_lock = threading.Lock()
_installed = False


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact `record` in place (once) and return it."""
    if record.args is None and getattr(record, _MARK, None) is record.msg:
        return record  # already redacted, and not changed since (makeLogRecord changes msg)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what can be shown, redacted
        message = f"{record.msg!s} {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    setattr(record, _MARK, record.msg)
    return record


class RedactingFilter(logging.Filter):
    """Redacts each record it sees; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def _factory_wrapping(previous):
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    factory.repazoo_redacting = True  # type: ignore[attr-defined]
    return factory


def install() -> None:
    """Install the record factory and the filters. Safe to call any number of times."""
    global _installed
    with _lock:
        previous = logging.getLogRecordFactory()
        if not getattr(previous, "repazoo_redacting", False):
            logging.setLogRecordFactory(_factory_wrapping(previous))
        if _installed:
            return
        # httpx logs every request URL at INFO, and URLs carry user ids and page cursors.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        redacting = RedactingFilter()
        root = logging.getLogger()
        targets = [root, *root.handlers, *(logging.getLogger(name) for name in _DAGSTER_LOGGERS)]
        for target in targets:
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(redacting)
        _installed = True
