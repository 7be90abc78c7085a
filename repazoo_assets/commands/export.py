"""`repazoo export request | status`: personal-data exports (GDPR Art. 15/20, CCPA right to know).

`request` records a pending request; the `data_export_requests_sensor` launches the run that
produces the document and its download link. `status` lists a user's requests.

`repazoo_assets.cli` registers this group, so nothing from it is imported at module level (that
would be circular); its helpers are imported when a command runs.
"""

from __future__ import annotations

from datetime import datetime

import click

from repazoo_assets.commands import OperatorGroup


@click.group(cls=OperatorGroup)
def export() -> None:
    """Personal-data exports requested by users: one JSON document and a 24-hour download link."""


def _engine():
    from repazoo_assets.cli import _settings, _up_to_date_engine

    return _up_to_date_engine(_settings())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


@export.command("request")
@click.option("--user-id", required=True, help="The platform's id of the user.")
def export_request(user_id: str) -> None:
    """Record a pending export request for a user (or show the one already open).

    The export sensor launches a run for it within a minute; follow it with `repazoo export status`.
    """
    import sqlalchemy as sa

    from repazoo_assets.commands import ReportedError
    from repazoo_assets.lib.compliance.export import request_export
    from repazoo_assets.lib.db import tables as t

    engine = _engine()
    with engine.begin() as conn:
        try:
            request_id, new = request_export(conn, user_id)
        except ValueError as exc:
            raise ReportedError(f"--user-id: {exc}") from None
        known = conn.execute(sa.select(t.users.c.id).where(t.users.c.id == user_id)).first() is not None
    if new:
        click.echo(f"export request {request_id} for user {user_id}: pending")
    else:
        click.echo(f"export request {request_id} for user {user_id} is already open; no new request")
    if not known:
        click.echo(f"note: there is no user {user_id}; the request will end failed", err=True)


@export.command("status")
@click.option("--user-id", required=True, help="The platform's id of the user.")
def export_status(user_id: str) -> None:
    """A user's export requests, newest first, with the download link while it is valid."""
    from repazoo_assets.lib.compliance.export import link_if_valid, user_requests

    engine = _engine()
    with engine.connect() as conn:
        requests = user_requests(conn, user_id)
    if not requests:
        click.echo(f"no export requests for user {user_id}")
        return
    click.echo(f"{'request':>8}  {'status':<8} {'requested':<21} {'completed':<21} link expires")
    for r in requests:
        click.echo(
            f"{r['id']:>8}  {r['status']:<8} {_when(r['requested_at']):<21} {_when(r['completed_at']):<21} "
            f"{_when(r['expires_at']) if r['status'] in ('ready', 'expired') else '-'}"
        )
        url = link_if_valid(r)
        if url:
            click.echo(f"          download: {url}")
        elif r["status"] == "ready":
            click.echo("          link expired; request a new export")
        if r["status"] == "failed" and r["error"]:
            click.echo(f"          reason: {r['error']}")


def demo_export(defs, instance, engine, user_id: str) -> str | None:
    """For `repazoo demo`: request an export for one user, run `export_user_data` for it in this
    process and print the outcome; returns the download link (None if the run failed)."""
    from repazoo_assets.lib.compliance.export import request_export, user_requests

    with engine.begin() as conn:
        request_id, _ = request_export(conn, user_id)
    run = defs.resolve_job_def("export_user_data").execute_in_process(
        instance=instance,
        run_config={"ops": {"user_data_exports": {"config": {"request_ids": [request_id]}}}},
        raise_on_error=False,
    )
    with engine.connect() as conn:
        row = next(r for r in user_requests(conn, user_id) if r["id"] == request_id)
    if not run.success or row["status"] != "ready":
        click.echo(f"\ndata export for {user_id}: request {request_id} {row['status']} {row['error'] or ''}", err=True)
        return None
    click.echo(
        f"\ndata export for {user_id}: request {request_id} ready, {row['object_key']} "
        f"(link valid until {_when(row['expires_at'])}):\n  {row['download_url']}"
    )
    return row["download_url"]
