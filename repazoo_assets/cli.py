"""The `repazoo` command: database migrations, the local demo, keys, the audit log.

Every failure the operator can fix (a wrong setting, an unreachable database or object store)
ends in one line naming the setting and the problem and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from repazoo_assets.lib.settings import Settings, SettingsError, load_settings

EXIT_CONFIG = 2


class ReportedError(click.ClickException):
    exit_code = EXIT_CONFIG

    def show(self, file=None) -> None:
        click.echo(f"repazoo: error: {self.message}", err=True)


class _Group(click.Group):
    """Turns known, operator-fixable errors into one clear line."""

    def invoke(self, ctx: click.Context):
        from repazoo_assets.lib.storage import ObjectStoreError

        try:
            return super().invoke(ctx)
        except (SettingsError, ObjectStoreError) as exc:
            raise ReportedError(str(exc)) from None


def _settings() -> Settings:
    return load_settings()


def _engine(settings: Settings):
    from repazoo_assets.lib.db import check_connection, create_engine

    engine = create_engine(settings.database_url)
    check_connection(engine)
    return engine


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Repazoo data platform operations.

    The environment comes from REPAZOO_ENV (local by default; production reads DATABASE_URL,
    REDIS_URL, the S3 buckets and the API keys from the environment).
    """
    from repazoo_assets.lib.privacy import log_filter

    log_filter.install()


@main.group(cls=_Group)
def db() -> None:
    """The app database: migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
def db_upgrade(revision: str) -> None:
    """Apply the app's migrations. Running it again when up to date changes nothing."""
    from repazoo_assets.lib.db import safe_url, upgrade

    settings = _settings()
    engine = _engine(settings)
    before, after = upgrade(engine, revision)
    where = safe_url(engine.url)
    if before == after:
        click.echo(f"app database {where}: already at {after}, nothing to do")
    else:
        click.echo(f"app database {where}: upgraded {before or 'empty'} -> {after}")


@db.command("current")
def db_current() -> None:
    """Show the app database's migration revision and whether it is the newest."""
    from repazoo_assets.lib.db import current_revision, head_revision

    engine = _engine(_settings())
    current, head = current_revision(engine), head_revision()
    state = "up to date" if current == head else f"behind (newest is {head}); run `repazoo db upgrade`"
    click.echo(f"{current or 'empty'}: {state}")


@main.command()
@click.option("--seed", default=42, show_default=True, help="Seed of the synthetic data; same seed, same data.")
@click.option("--users", default=5, show_default=True, type=click.IntRange(min=1), help="Synthetic users.")
@click.option("--events", default=2000, show_default=True, type=click.IntRange(min=1), help="Synthetic client events.")
@click.option(
    "--materialize/--no-materialize",
    default=True,
    show_default=True,
    help="Materialize every asset after loading the data.",
)
def demo(seed: int, users: int, events: int, materialize: bool) -> None:
    """Load synthetic demo data into the local environment and materialize every asset.

    Needs no service and no key: the app database is SQLite and the object store a folder under
    REPAZOO_DATA_DIR (default ./.repazoo). Runs are kept in DAGSTER_HOME, so `make dev` shows them.
    """
    settings = _settings()
    if settings.is_production:
        raise ReportedError("REPAZOO_ENV: the demo loads synthetic data and runs only with REPAZOO_ENV=local")

    from repazoo_assets.lib.db import upgrade
    from repazoo_assets.lib.demo import generate_dataset, write_user_archives
    from repazoo_assets.lib.demo.load import load_dataset
    from repazoo_assets.lib.health import table_row_counts

    engine = _engine(settings)
    upgrade(engine)
    # Anchored at the start of today (UTC): the same seed gives the same data all day.
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    dataset = generate_dataset(seed, users=users, events=events, anchor=anchor)
    loaded = load_dataset(engine, dataset)
    archives = write_user_archives(dataset, settings.archives_dir)
    click.echo(
        f"demo data (seed {seed}): {loaded.users} users, {loaded.new_clients} new clients, "
        f"{loaded.events} events loaded; {len(archives)} tweet archives in {settings.archives_dir}"
    )
    if materialize:
        _materialize_everything()
    click.echo("\napp database rows:")
    for table, count in table_row_counts(engine).items():
        click.echo(f"  {table:<20} {count:>8}")
    click.echo("\nOpen the Dagster UI with `make dev`, then http://127.0.0.1:3000")


def _materialize_everything() -> None:
    """Materialize every asset of the code location, as `Materialize all` in the UI would."""
    import dagster as dg

    from repazoo_assets.definitions import build_defs

    if not os.environ.get("DAGSTER_HOME"):
        click.echo("DAGSTER_HOME is not set: runs are not kept (`make demo` sets it)", err=True)
        instance = dg.DagsterInstance.ephemeral()
    else:
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        instance = dg.DagsterInstance.get()
    # Built now rather than imported: resources must follow this process's environment.
    defs = build_defs()
    graph = defs.resolve_asset_graph()
    keys = [key for key in graph.materializable_asset_keys if graph.get(key).partitions_def is None]
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)
    click.echo(f"\nmaterialized {len(keys)} asset(s) in run {result.run_id}: {'success' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        click.echo(f"  {event.asset_key.to_user_string()}: materialized")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                click.echo(f"  step {event.step_key} failed: {event.step_failure_data.error.message.strip()}", err=True)
        raise ReportedError("demo: some assets failed to materialize (see above)")


@main.command()
def check() -> None:
    """Probe the app database, the object store and the rate-limit storage of this environment."""
    from limits.storage import storage_from_string

    from repazoo_assets.lib.db import create_engine
    from repazoo_assets.lib.health import probe_database, probe_object_store, probe_rate_limit_storage
    from repazoo_assets.lib.storage.factory import object_store_for

    settings = _settings()
    probes = [
        (probe_database(create_engine(settings.database_url)), "DATABASE_URL"),
        (
            probe_object_store(object_store_for(settings), settings.buckets.raw),
            "S3_ENDPOINT_URL / RAW_S3_BUCKET" if settings.is_production else "REPAZOO_DATA_DIR",
        ),
        (
            probe_rate_limit_storage(storage_from_string(settings.redis_url or "memory://")),
            "REDIS_URL" if settings.redis_url else "in-memory",
        ),
    ]
    for probe, setting in probes:
        state = "ok" if probe.ok else "FAILED"
        click.echo(f"{probe.name:<20} {state:<6} {probe.latency_ms:>8.1f} ms  [{setting}] {probe.detail}")
    failed = [setting for probe, setting in probes if not probe.ok]
    if failed:
        raise ReportedError(f"{', '.join(failed)}: health probe failed (see above)")


@main.group(cls=_Group)
def keys() -> None:
    """Encryption keys for OAuth tokens and client credentials."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key. Put it first in ENCRYPTION_KEY (comma-separated, newest first)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


def _up_to_date_engine(settings: Settings):
    from repazoo_assets.lib.db import is_up_to_date

    engine = _engine(settings)
    if not is_up_to_date(engine):
        raise ReportedError("DATABASE_URL: the app database is not up to date; run `repazoo db upgrade` first")
    return engine


def _vault(settings: Settings):
    """ENCRYPTION_KEY in production; locally the key file the Dagster resources use too."""
    from repazoo_assets.lib.security.vault import TokenVault, local_key_file

    if settings.is_production:
        return TokenVault.from_keys(os.environ.get("ENCRYPTION_KEY", ""))
    return TokenVault.from_key_file(local_key_file(settings.data_dir))


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1), help="Rows per transaction.")
def keys_rotate(batch_size: int) -> None:
    """Re-encrypt every stored token and credential with the newest key.

    Put the new key first in ENCRYPTION_KEY (locally: first line of the key file), keep the old
    ones after it, run this, then drop the old keys. Safe to rerun after an interruption.
    """
    from repazoo_assets.lib.security import audit as audit_log
    from repazoo_assets.lib.security.vault import VaultDecryptError, rotate_stored_secrets

    settings = _settings()
    vault = _vault(settings)
    engine = _up_to_date_engine(settings)
    try:
        report = rotate_stored_secrets(engine, vault, batch_size=batch_size)
    except VaultDecryptError as exc:
        raise ReportedError(f"keys rotate: {exc}") from None
    for table, rewritten in report.rewritten.items():
        current = report.already_current[table]
        click.echo(f"{table:<16} {rewritten:>8} rows rewritten, {current:>8} already under the newest key")
    audit_log.append(
        engine, actor="cli", action=audit_log.AuditAction.KEY_ROTATION, subject_type="vault",
        details={"rows_rewritten": report.rewritten},
    )


@main.group(cls=_Group)
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1), help="Rows read at a time.")
def audit_verify(batch_size: int) -> None:
    """Check every row's hash and link to the previous row; name the first broken row."""
    from repazoo_assets.lib.security import audit as audit_log

    engine = _up_to_date_engine(_settings())
    result = audit_log.verify(engine, batch_size=batch_size)
    if not result.ok:
        raise ReportedError(result.describe())
    click.echo(result.describe())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
