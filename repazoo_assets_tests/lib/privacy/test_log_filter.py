"""Log redaction: personal data passed to any log call, Dagster's run log included, comes out
redacted."""


import io
import logging

import dagster as dg
from dagster._serdes import serialize_value

import repazoo_assets.definitions  # noqa: F401  (loading the code location installs the filter)
from repazoo_assets.lib.privacy import log_filter

EMAIL = "jane.doe@gmail.com"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
KEY = "AKIAIOSFODNN7EXAMPLE"
PLANTED = (EMAIL, PHONE, CARD, KEY, "7946 0958", "4111")


@dg.asset
def chatty_asset(context: dg.AssetExecutionContext) -> int:
    context.log.info(f"fetched tweets of {EMAIL}, phone {PHONE}")
    context.log.warning("card %s seen in a tweet", CARD)
    logging.getLogger("repazoo_assets.somewhere").error("key %s in payload", KEY)
    try:
        raise ValueError(f"could not parse {EMAIL}")
    except ValueError:
        context.log.exception("parse failed")
    return 1


def test_dagster_run_log_holds_no_planted_personal_data():
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([chatty_asset], instance=instance)
    assert result.success
    entries = instance.all_logs(result.run_id)
    messages = [entry.user_message for entry in entries]
    stored = "\n".join(serialize_value(entry) for entry in entries)
    for datum in PLANTED:
        assert datum not in stored, datum
    # The records were redacted, not dropped: the placeholders are in the run log.
    assert any("fetched tweets of [EMAIL], phone [PHONE]" in m for m in messages)
    assert any("card [CARD] seen in a tweet" in m for m in messages)
    assert any("parse failed" in m for m in messages)


def test_python_loggers_and_tracebacks_are_redacted():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("repazoo_assets.test_log_filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("user %s, card %s", EMAIL, CARD)
        try:
            raise KeyError(f"no user with phone {PHONE}")
        except KeyError:
            logger.exception("lookup failed for %s", EMAIL)
        logger.info("stack for %s", KEY, stack_info=True)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    for datum in PLANTED:
        assert datum not in out, datum
    assert "WARNING repazoo_assets.test_log_filter user [EMAIL], card [CARD]" in out
    assert "KeyError: 'no user with phone [PHONE]'" in out
    assert "lookup failed for [EMAIL]" in out


def test_records_made_without_the_factory_are_redacted_by_the_filter():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        log_filter.install()  # again: the new root handler gets the filter too
        record = logging.makeLogRecord({"msg": "token %s", "args": (KEY,), "levelno": logging.ERROR})
        root.handle(record)
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == "token [SECRET]\n"


def test_install_is_idempotent():
    factory = logging.getLogRecordFactory()
    log_filter.install()
    log_filter.install()
    assert logging.getLogRecordFactory() is factory
    root_filters = [f for f in logging.getLogger().filters if isinstance(f, log_filter.RedactingFilter)]
    assert len(root_filters) == 1


def test_a_bad_format_string_is_still_logged_redacted():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d users: %s", ("many", EMAIL), None)
    log_filter.redact_record(record)
    assert EMAIL not in record.getMessage()
    assert "[EMAIL]" in record.getMessage()
