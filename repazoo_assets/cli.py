"""The `repazoo` command: database migrations, the local demo, keys, the audit log.

Every failure the operator can fix (a wrong setting, an unreachable database or object store)
ends in one line naming the setting and the problem and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from repazoo_assets.lib.settings import Settings, load_settings

from repazoo_assets.commands import EXIT_CONFIG, ReportedError  # noqa: F401 (re-exported)
from repazoo_assets.commands import OperatorGroup as _Group


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
    _demo_tokens(engine, settings, [u.user_id for u in dataset.users])
    click.echo(
        f"demo data (seed {seed}): {loaded.users} users, {loaded.new_clients} new clients, "
        f"{loaded.events} events loaded; {len(archives)} tweet archives in {settings.archives_dir}"
    )
    if materialize:
        _materialize_everything([u.user_id for u in dataset.users])
    click.echo("\napp database rows:")
    for table, count in table_row_counts(engine).items():
        click.echo(f"  {table:<20} {count:>8}")
    click.echo("\nOpen the Dagster UI with `make dev`, then http://127.0.0.1:3000")


def _process_exported_hours(defs, instance):
    """Run `processed_events` over every hour the raw batches cover, as one backfill run."""
    import sqlalchemy as sa

    from repazoo_assets.lib.db import create_engine
    from repazoo_assets.lib.db import tables as t

    engine = create_engine(_settings().database_url)
    with engine.connect() as conn:
        first, last = conn.execute(
            sa.select(sa.func.min(t.raw_batches.c.min_created_at), sa.func.max(t.raw_batches.c.max_created_at))
        ).one()
    engine.dispose()
    if first is None:
        return None
    first, last = (m.replace(tzinfo=UTC) if m.tzinfo is None else m.astimezone(UTC) for m in (first, last))
    start = first.replace(minute=0, second=0, microsecond=0)
    end = min(last, datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    if end < start:
        return None
    job = defs.resolve_implicit_global_asset_job_def()
    import dagster as dg

    return job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("processed_events")],
        tags={
            "dagster/asset_partition_range_start": f"{start:%Y-%m-%d-%H:%M}",
            "dagster/asset_partition_range_end": f"{end:%Y-%m-%d-%H:%M}",
        },
        raise_on_error=False,
    )


def _deliver_to_clients(defs, instance) -> list:
    """Register every client's partition and run its delivery; returns the failed runs."""
    import sqlalchemy as sa

    from repazoo_assets.defs.events.partitions import clients_partitions
    from repazoo_assets.lib.db import create_engine
    from repazoo_assets.lib.db import tables as t

    engine = create_engine(_settings().database_url)
    with engine.connect() as conn:
        clients = conn.execute(
            sa.select(t.clients.c.id, t.clients.c.privacy_level, t.clients.c.format, t.clients.c.destination_bucket)
            .where(t.clients.c.deleted_at.is_(None), t.clients.c.active.is_(True))
            .order_by(t.clients.c.id)
        ).all()
    engine.dispose()
    _add_missing_partitions(instance, clients_partitions.name, [c.id for c in clients])
    job = defs.resolve_job_def("deliver_to_clients")
    failed = []
    for c in clients:
        run = job.execute_in_process(instance=instance, partition_key=c.id, raise_on_error=False)
        if not run.success:
            failed.append(run)
            continue
        meta = run.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
        click.echo(
            f"  client_exports[{c.id}]: {meta['files'].value} files, {meta['dagster/row_count'].value} events "
            f"({c.privacy_level}, {c.format}) to bucket {c.destination_bucket}"
        )
    return failed


def _demo_tokens(engine, settings: Settings, user_ids: list[str]) -> None:
    """Demo users get a (synthetic) OAuth token, so the consent check passes for them as it
    would for users who connected their account."""
    import sqlalchemy as sa

    from repazoo_assets.lib.compliance import consent as consent_log
    from repazoo_assets.lib.db import tables as t
    from repazoo_assets.lib.db import twitter_store as store

    vault = _vault(settings)
    with engine.begin() as conn:
        have = set(conn.execute(sa.select(t.oauth_tokens.c.user_id)).scalars())
        for user_id in user_ids:
            if user_id not in have:
                store.store_tokens(conn, vault, user_id, f"demo-access-{user_id}", f"demo-refresh-{user_id}", 365 * 86400)
                # A re-created demo user consents again (their last record may be an erasure's revoke).
                consent_log.record_consent(conn, user_id=user_id, action=consent_log.GRANT, source="demo")


def _materialize_everything(user_ids: list[str] = ()) -> None:
    """Materialize every asset of the code location, as `Materialize all` in the UI would, and
    the tweet pipeline for each user partition."""
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
        meta = event.step_materialization_data.materialization.metadata
        shown = {k: meta[k].value for k in ("dagster/row_count", "dead_lettered", "batches") if k in meta}
        detail = ", ".join(f"{k.removeprefix('dagster/')} {v}" for k, v in shown.items())
        click.echo(f"  {event.asset_key.to_user_string()}: materialized" + (f" ({detail})" if detail else ""))
    failed = [] if result.success else [result]
    processed = _process_exported_hours(defs, instance)
    if processed is not None:
        if processed.success:
            meta = processed.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
            click.echo(
                f"  processed_events: {meta['hours'].value} hours in one run, {meta['client_files'].value} "
                f"client-hour files, {meta['dagster/row_count'].value} events (dropped: {meta['dropped'].value})"
            )
        else:
            failed.append(processed)
        failed += _deliver_to_clients(defs, instance)
    if user_ids:
        from repazoo_assets.defs.twitter.assets import users_partitions

        _add_missing_partitions(instance, users_partitions.name, user_ids)
        pipeline = defs.resolve_job_def("tweet_pipeline")
        click.echo(f"\ntweet pipeline, one run per user ({len(user_ids)} users):")
        click.echo(f"  {'user':<22} {'tweets':>7} {'new':>5} {'with PII':>9} {'redacted':>9} {'analysed':>9}  model / summary")
        for user_id in user_ids:
            run = pipeline.execute_in_process(instance=instance, partition_key=user_id, raise_on_error=False)
            meta = {
                e.asset_key.to_user_string(): {k: v.value for k, v in e.step_materialization_data.materialization.metadata.items()}
                for e in run.get_asset_materialization_events()
            }
            tw, san = meta.get("tweets", {}), meta.get("sanitized_tweets", {})
            an, summ = meta.get("tweet_analyses", {}), meta.get("reputation_summary", {})
            redacted = sum((san.get("redacted_items") or {}).values()) if isinstance(san.get("redacted_items"), dict) else 0
            by = summ.get("by_sentiment") or {}
            click.echo(
                f"  {user_id:<22} {tw.get('dagster/row_count', '-'):>7} {tw.get('new_tweets', '-'):>5} "
                f"{san.get('tweets_with_pii', '-'):>9} {redacted:>9} {an.get('dagster/row_count', '-'):>9}  "
                f"{an.get('model', '-')}: {by.get('positive', 0)}+ {by.get('neutral', 0)}= {by.get('negative', 0)}-"
                + ("" if run.success else "  FAILED")
            )
            if not run.success:
                failed.append(run)
        _demo_compliance(defs, instance, user_ids)
    monitoring = _run_monitoring(defs, instance)
    if monitoring is not None:
        failed.append(monitoring)
    if failed:
        for run in failed:
            for event in run.all_events:
                if event.is_step_failure:
                    click.echo(f"  step {event.step_key} failed: {event.step_failure_data.error.message.strip()}", err=True)
        raise ReportedError("demo: some assets failed to materialize (see above)")


def _run_monitoring(defs, instance):
    """Run the monitoring job once and print each check; returns the run if it failed."""
    run = defs.resolve_job_def("monitoring").execute_in_process(instance=instance, raise_on_error=False)
    click.echo("\nmonitoring checks (platform_health):")
    for check in run.get_asset_check_evaluations():
        meta = {k: v.value for k, v in check.metadata.items()}
        status = "passed" if check.passed else f"FAILED ({check.severity.value})"
        alert = meta.get("alert", "none")
        click.echo(f"  {check.check_name:<26} {status:<16} {check.description}"
                   + (f"  [alert: {alert}]" if alert != "none" else ""))
    return None if run.success else run


def _demo_compliance(defs, instance, user_ids: list[str]) -> None:
    """A personal-data export for the first demo user, with its link; the last demo user
    revokes consent and is erased."""
    from repazoo_assets.commands.export import demo_export
    from repazoo_assets.lib.db import create_engine

    engine = create_engine(_settings().database_url)
    try:
        if demo_export(defs, instance, engine, user_ids[0]) is None:
            raise ReportedError("demo: the data export failed (see above)")
    finally:
        engine.dispose()
    from repazoo_assets.commands.consent import demo_erasure

    lines = demo_erasure(defs, instance, user_ids[-1])
    for line in lines:
        click.echo(line)
    if any("FAILED" in line for line in lines):
        raise ReportedError("demo: the erasure failed (see above)")


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
def users() -> None:
    """Connected users: their consent, tokens and tweet-pipeline partitions."""


def _add_missing_partitions(instance, partitions_name: str, keys) -> list[str]:
    """Register the keys not yet in the dynamic partitions `partitions_name`; return them."""
    new = [k for k in keys if not instance.has_dynamic_partition(partitions_name, k)]
    if new:
        instance.add_dynamic_partitions(partitions_name, new)
    return new


def _register_in_instance(partitions_name: str, key: str, unset_note: str = "") -> str:
    """Add `key` to the dynamic partitions `partitions_name` of the current Dagster instance
    (DAGSTER_HOME); say what happened."""
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        return "DAGSTER_HOME is not set: partition not registered here" + unset_note
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.get() as instance:
        added = _add_missing_partitions(instance, partitions_name, [key])
    return f"partition {key} registered" if added else f"partition {key} already registered"


def _register_partition(user_id: str) -> str:
    """The user's `users` partition, in the current Dagster instance."""
    from repazoo_assets.defs.twitter.assets import users_partitions

    return _register_in_instance(users_partitions.name, user_id, " (the users sensor will register it)")


@users.command("connect")
@click.option("--user-id", required=True, help="The platform's id of the user.")
@click.option("--twitter-user-id", required=True, help="The user's numeric Twitter id.")
@click.option("--access-token", required=True, envvar="REPAZOO_ACCESS_TOKEN", help="OAuth2 access token (or env REPAZOO_ACCESS_TOKEN).")
@click.option("--refresh-token", envvar="REPAZOO_REFRESH_TOKEN", help="OAuth2 refresh token (or env REPAZOO_REFRESH_TOKEN).")
@click.option("--expires-in", required=True, type=click.IntRange(min=1), help="Seconds until the access token expires.")
@click.option("--tier", required=True, type=click.Choice(["basic", "pro"]), help="Subscription tier.")
@click.option("--handle", help="The user's @handle, without '@'.")
def users_connect(user_id, twitter_user_id, access_token, refresh_token, expires_in, tier, handle) -> None:
    """Store a user, an active subscription and their encrypted tokens; register their partition.

    Tokens are encrypted with the token vault before they reach the database and are never
    printed. Prefer the environment variables to the options, which show in the process list.
    """
    from repazoo_assets.lib.db import twitter_store as store
    from repazoo_assets.lib.security import audit as audit_log

    settings = _settings()
    engine = _up_to_date_engine(settings)
    vault = _vault(settings)
    if not twitter_user_id.isdigit():
        raise ReportedError("--twitter-user-id: must be the numeric Twitter user id")
    with engine.begin() as conn:
        try:
            store.connect_user(
                conn, vault, user_id=user_id, twitter_user_id=twitter_user_id, access_token=access_token,
                refresh_token=refresh_token, expires_in=expires_in, tier=tier, handle=handle,
            )
        except ValueError as exc:
            raise ReportedError(f"users connect: {exc}") from None
        audit_log.append(
            conn, actor="cli", action=audit_log.AuditAction.CONSENT_CHANGE, subject_type="user",
            subject_id=user_id, details={"consent": "granted", "tier": tier},
        )
    click.echo(f"user {user_id} connected ({tier}); {_register_partition(user_id)}")


@users.command("list")
def users_list() -> None:
    """Users with tier, consent state and last fetch (never tokens)."""
    from repazoo_assets.lib.db import twitter_store as store

    engine = _up_to_date_engine(_settings())
    with engine.connect() as conn:
        rows = store.list_users(conn)
    if not rows:
        click.echo("no users")
        return
    click.echo(f"{'user':<24} {'handle':<20} {'tier':<6} {'last fetch':<20} consent")
    for row in rows:
        fetched = row["last_fetched_at"].strftime("%Y-%m-%d %H:%M") if row["last_fetched_at"] else "never"
        click.echo(
            f"{row['user_id']:<24} {row['handle'] or '':<20} {row['tier'] or '-':<6} {fetched:<20} {row['consent']}"
        )


@users.command("import-archive")
@click.option("--user-id", required=True, help="The platform's id of the user.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def users_import_archive(user_id: str, path: Path) -> None:
    """Load tweets from the user's downloaded Twitter archive (a folder with data/tweets.js, or
    the tweets.js file itself). Needs the user's consent, like a fetch."""
    from repazoo_assets.defs.twitter.assets import _ArchiveTweet
    from repazoo_assets.lib.db import twitter_store as store
    from repazoo_assets.lib.demo.archive import read_tweets_js
    from repazoo_assets.lib.security import audit as audit_log

    engine = _up_to_date_engine(_settings())
    file = path / "data" / "tweets.js" if path.is_dir() else path
    if not file.is_file():
        raise ReportedError(f"{file}: no tweets.js here (expected an archive folder with data/tweets.js)")
    try:
        archived = [_ArchiveTweet(a) for a in read_tweets_js(file)]
    except ValueError as exc:
        raise ReportedError(str(exc)) from None
    with engine.begin() as conn:
        state = store.consent(conn, user_id)
        if not state.granted:
            raise ReportedError(f"consent not granted for user {user_id}: {state.reason}")
        sent, new = store.upsert_tweets(conn, user_id, archived, source="archive")
        audit_log.append(
            conn, actor="cli", action=audit_log.AuditAction.FETCH, subject_type="user", subject_id=user_id,
            details={"outcome": "fetched", "source": "archive", "tweets": sent, "new": new},
        )
    click.echo(f"user {user_id}: {sent} tweets read from the archive, {new} new")


@main.group(cls=_Group)
def clients() -> None:
    """Business clients of the event pipeline and the buckets they own."""


def _client_options(command, *, adding: bool):
    """The options `add` and `update` share; on `update` every one is optional."""
    from repazoo_assets.lib.db import tables as t

    options = [
        click.option("--name", required=adding, help="Display name."),
        click.option("--privacy-level", type=click.Choice(t.PRIVACY_LEVELS), required=adding, help="What the client may receive."),
        click.option("--sync-frequency", type=click.Choice(t.SYNC_FREQUENCIES), required=adding, help="How often deliveries run."),
        click.option("--format", "format_", type=click.Choice(t.DELIVERY_FORMATS), default="parquet" if adding else None, show_default=adding, help="Delivery file format."),
        click.option("--bucket", required=adding, help="The client's S3 bucket."),
        click.option("--prefix", help="Key prefix inside the client's bucket."),
        click.option("--region", help="The bucket's region."),
        click.option("--endpoint-url", help="S3-compatible endpoint (other than AWS)."),
        click.option(
            "--credentials-from-env", is_flag=True,
            help="Read the client's keys from REPAZOO_CLIENT_ACCESS_KEY_ID and REPAZOO_CLIENT_SECRET_ACCESS_KEY "
            "(never from options, which show in the process list).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _client_values(name, privacy_level, sync_frequency, format_, bucket, prefix, region, endpoint_url) -> dict:
    return {
        "name": name, "privacy_level": privacy_level, "sync_frequency": sync_frequency, "format": format_,
        "destination_bucket": bucket, "destination_prefix": prefix, "destination_region": region,
        "destination_endpoint_url": endpoint_url,
    }


def _client_credentials(from_env: bool):
    from repazoo_assets.lib.db.clients_store import Credentials

    if not from_env:
        return None
    key_id = os.environ.get("REPAZOO_CLIENT_ACCESS_KEY_ID", "")
    secret = os.environ.get("REPAZOO_CLIENT_SECRET_ACCESS_KEY", "")
    if not key_id or not secret:
        raise ReportedError("REPAZOO_CLIENT_ACCESS_KEY_ID / REPAZOO_CLIENT_SECRET_ACCESS_KEY: both must be set")
    return Credentials(key_id, secret)


def _register_client_partition(client_id: str) -> str:
    from repazoo_assets.defs.events.partitions import clients_partitions

    return _register_in_instance(clients_partitions.name, client_id)


@clients.command("add")
@click.argument("client_id")
@functools.partial(_client_options, adding=True)
def clients_add(client_id, name, privacy_level, sync_frequency, format_, bucket, prefix, region, endpoint_url, credentials_from_env):
    """Add a client (CLIENT_ID: lowercase letters, digits, '-', '_') and register its partition."""
    from repazoo_assets.lib.db import clients_store
    from repazoo_assets.lib.security import audit as audit_log

    settings = _settings()
    engine = _up_to_date_engine(settings)
    credentials = _client_credentials(credentials_from_env)
    values = _client_values(name, privacy_level, sync_frequency, format_, bucket, prefix, region, endpoint_url)
    with engine.begin() as conn:
        try:
            clients_store.add_client(conn, _vault(settings), client_id, values, credentials)
        except clients_store.ClientError as exc:
            raise ReportedError(f"clients add: {exc}") from None
        audit_log.append(
            conn, actor="cli", action=audit_log.AuditAction.CLIENT_CHANGE, subject_type="client",
            subject_id=client_id, details={"change": "add", "privacy_level": privacy_level},
        )
    click.echo(f"client {client_id} added ({privacy_level}, {sync_frequency}); {_register_client_partition(client_id)}")


@clients.command("update")
@click.argument("client_id")
@functools.partial(_client_options, adding=False)
def clients_update(client_id, name, privacy_level, sync_frequency, format_, bucket, prefix, region, endpoint_url, credentials_from_env):
    """Change some of a client's settings or its credentials."""
    from repazoo_assets.lib.db import clients_store
    from repazoo_assets.lib.security import audit as audit_log

    settings = _settings()
    engine = _up_to_date_engine(settings)
    credentials = _client_credentials(credentials_from_env)
    values = _client_values(name, privacy_level, sync_frequency, format_, bucket, prefix, region, endpoint_url)
    with engine.begin() as conn:
        try:
            changed = clients_store.update_client(conn, _vault(settings), client_id, values, credentials)
        except clients_store.ClientError as exc:
            raise ReportedError(f"clients update: {exc}") from None
        audit_log.append(
            conn, actor="cli", action=audit_log.AuditAction.CLIENT_CHANGE, subject_type="client",
            subject_id=client_id, details={"change": "update", "fields": changed},
        )
    click.echo(f"client {client_id} updated: {', '.join(changed)}")


@clients.command("list")
def clients_list() -> None:
    """Clients with privacy level, frequency, format and destination (never credentials)."""
    from repazoo_assets.lib.db import clients_store

    engine = _up_to_date_engine(_settings())
    with engine.connect() as conn:
        rows = clients_store.list_clients(conn)
    if not rows:
        click.echo("no clients")
        return
    click.echo(f"{'client':<24} {'privacy':<9} {'every':<7} {'format':<8} {'credentials':<20} destination")
    for r in rows:
        click.echo(
            f"{r['id']:<24} {r['privacy_level']:<9} {r['sync_frequency']:<7} {r['format']:<8} "
            f"{r['credentials']:<20} {r['destination']}"
        )


@clients.command("remove")
@click.argument("client_id")
def clients_remove(client_id: str) -> None:
    """Stop deliveries to a client (soft delete; its records stay for the audit)."""
    from repazoo_assets.lib.db import clients_store
    from repazoo_assets.lib.security import audit as audit_log

    engine = _up_to_date_engine(_settings())
    with engine.begin() as conn:
        try:
            clients_store.remove_client(conn, client_id)
        except clients_store.ClientError as exc:
            raise ReportedError(f"clients remove: {exc}") from None
        audit_log.append(
            conn, actor="cli", action=audit_log.AuditAction.CLIENT_CHANGE, subject_type="client",
            subject_id=client_id, details={"change": "remove"},
        )
    click.echo(f"client {client_id} removed")


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


# Command groups kept in their own modules (repazoo_assets/commands/).
from repazoo_assets.commands.export import export  # noqa: E402

from repazoo_assets.commands.consent import consent  # noqa: E402

main.add_command(export)
main.add_command(consent)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
