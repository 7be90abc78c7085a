"""`repazoo consent revoke | status`: withdraw a user's consent (which starts their erasure) and
show the consent record.

Registered in `repazoo_assets/cli.py` with `main.add_command(consent)`.
"""

from __future__ import annotations

import click

from repazoo_assets.commands import OperatorGroup

SOURCES = ("cli", "support", "web")


@click.group(cls=OperatorGroup)
def consent() -> None:
    """Users' consent: withdraw it (the user's data is then erased) and show its record."""


@consent.command("revoke")
@click.option("--user-id", required=True, help="The platform's id of the user.")
@click.option("--reason", required=True, help="Why (e.g. 'user asked for deletion'); kept in the consent record.")
@click.option(
    "--source", default="cli", show_default=True, type=click.Choice(SOURCES), help="Where the request came from."
)
def consent_revoke(user_id: str, reason: str, source: str) -> None:
    """Withdraw USER's consent: their token is revoked at once, nothing more is fetched or
    analysed, and the erasure sensor erases their data and removes their partition.

    Running it again records nothing and says so.
    """
    from repazoo_assets.cli import _settings, _up_to_date_engine
    from repazoo_assets.commands import ReportedError
    from repazoo_assets.lib.compliance import consent as consent_log
    from repazoo_assets.lib.security import audit as audit_log

    engine = _up_to_date_engine(_settings())
    with engine.begin() as conn:
        if not consent_log.user_exists(conn, user_id) and consent_log.latest(conn, user_id) is None:
            raise ReportedError(f"consent revoke: no user {user_id}")
        change = consent_log.revoke_consent(conn, user_id=user_id, reason=reason, source=source)
        if change.recorded:
            audit_log.append(
                conn, actor="cli", action=audit_log.AuditAction.CONSENT_CHANGE, subject_type="user",
                subject_id=user_id, details={"consent": "revoked", "source": source},
            )
    if change.recorded:
        click.echo(f"consent of user {user_id} revoked; their data will be erased by the user_erasure_sensor")
    else:
        click.echo(f"consent of user {user_id} already revoked: nothing recorded")


@consent.command("status")
@click.option("--user-id", required=True, help="The platform's id of the user.")
def consent_status(user_id: str) -> None:
    """Show USER's consent state and every recorded change (never IP addresses or tokens)."""
    from repazoo_assets.cli import _settings, _up_to_date_engine
    from repazoo_assets.commands import ReportedError
    from repazoo_assets.lib.compliance import consent as consent_log
    from repazoo_assets.lib.db import twitter_store as store

    engine = _up_to_date_engine(_settings())
    with engine.connect() as conn:
        events = consent_log.history(conn, user_id)
        exists = consent_log.user_exists(conn, user_id)
        state = store.consent(conn, user_id) if exists else None
    if not events and not exists:
        raise ReportedError(f"consent status: no user {user_id}")
    if state is None:
        click.echo(f"user {user_id}: erased (only the consent record remains)")
    else:
        click.echo(f"user {user_id}: " + ("granted" if state.granted else f"not granted ({state.reason})"))
    for event in events:
        reason = f"  {event.reason}" if event.reason else ""
        click.echo(f"  {event.created_at:%Y-%m-%d %H:%M:%S}  {event.action:<6} {event.source:<8}{reason}")


def demo_erasure(defs, instance, user_id: str) -> list[str]:
    """For `repazoo demo`: revoke one user's consent, remove their partition and run the erasure
    job as the sensor would; returns the lines to print (counts only)."""
    from repazoo_assets.cli import _settings
    from repazoo_assets.defs.compliance.erasure import ASSET, CHECK, erasure_run_config
    from repazoo_assets.defs.twitter.assets import users_partitions
    from repazoo_assets.lib.compliance import consent as consent_log
    from repazoo_assets.lib.db import create_engine

    engine = create_engine(_settings().database_url)
    try:
        with engine.begin() as conn:
            consent_log.revoke_consent(conn, user_id=user_id, reason="demo: the user asked for deletion", source="cli")
    finally:
        engine.dispose()
    removed = instance.has_dynamic_partition(users_partitions.name, user_id)
    if removed:
        instance.delete_dynamic_partition(users_partitions.name, user_id)
    run = defs.resolve_job_def("user_erasure_job").execute_in_process(
        instance=instance, run_config=erasure_run_config(user_id), raise_on_error=False
    )
    if not run.success:
        return [f"\nerasure of {user_id}: FAILED (run {run.run_id})"]
    meta = run.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    check = next(e.event_specific_data for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")
    rows = {table: count for table, count in meta["rows_by_table"].value.items() if count}
    return [
        f"\nerasure of {user_id} (consent revoked): {meta['dagster/row_count'].value} rows and "
        f"{meta['objects_deleted'].value} objects deleted" + (", partition removed" if removed else ""),
        "  " + (", ".join(f"{table} {count}" for table, count in rows.items()) or "nothing left to erase"),
        f"  check {CHECK} on {ASSET}: {'passed' if check.passed else 'FAILED'}",
    ]
