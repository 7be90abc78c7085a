"""`repazoo clients add | update | list | remove`: validated, audited, credentials encrypted and
never printed, partition registered."""

import dagster as dg
import sqlalchemy as sa
from click.testing import CliRunner

from repazoo_assets.cli import main
from repazoo_assets.lib.db import clients_store, create_engine
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security.vault import TokenVault, local_key_file
from repazoo_assets_tests.test_cli import local_env  # noqa: F401  (fixture)

ADD = [
    "clients", "add", "acme", "--name", "Acme Corp", "--privacy-level", "gdpr", "--sync-frequency", "daily",
    "--bucket", "acme-events", "--prefix", "repazoo/in", "--credentials-from-env",
]


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def test_add_list_update_remove(local_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("REPAZOO_CLIENT_ACCESS_KEY_ID", "AKIACLIENTKEY0000001")
    monkeypatch.setenv("REPAZOO_CLIENT_SECRET_ACCESS_KEY", "client-secret-value-xyz")
    assert run("db", "upgrade").exit_code == 0
    added = run(*ADD)
    assert added.exit_code == 0, added.output
    assert added.output.strip() == "client acme added (gdpr, daily); partition acme registered"
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("clients") == ["acme"]

    listing = run("clients", "list")
    assert "acme" in listing.output and "gdpr" in listing.output and "s3://acme-events/repazoo/in" in listing.output
    assert "set" in listing.output
    for secret in ("client-secret-value-xyz", "AKIACLIENTKEY0000001"):
        assert secret not in listing.output + added.output

    engine = create_engine(f"sqlite:///{local_env / 'app.db'}")
    vault = TokenVault.from_key_file(local_key_file(local_env))
    with engine.connect() as conn:
        stored = conn.execute(sa.select(t.clients.c.credentials_encrypted)).scalar_one()
        assert "client-secret-value-xyz" not in stored
        assert clients_store.load_credentials(conn, vault, "acme").secret_access_key == "client-secret-value-xyz"

    updated = run("clients", "update", "acme", "--privacy-level", "hipaa", "--format", "jsonl")
    assert updated.output.strip() == "client acme updated: format, privacy_level"
    assert "hipaa" in run("clients", "list").output

    assert run("clients", "remove", "acme").output.strip() == "client acme removed"
    assert run("clients", "list").output.strip() == "no clients"
    gone = run("clients", "update", "acme", "--name", "x")
    assert gone.exit_code == 2 and gone.output.strip() == "repazoo: error: clients update: no client acme"
    with engine.connect() as conn:
        changes = conn.execute(
            sa.select(t.audit_log.c.details).where(t.audit_log.c.action == "client_change").order_by(t.audit_log.c.id)
        ).scalars().all()
    assert [c["change"] for c in changes] == ["add", "update", "remove"]
    assert "client-secret-value-xyz" not in str(changes)


def test_bad_input_is_one_clear_line(local_env, monkeypatch):  # noqa: F811
    run("db", "upgrade")
    monkeypatch.delenv("REPAZOO_CLIENT_ACCESS_KEY_ID", raising=False)
    no_keys = run(*ADD)
    assert no_keys.exit_code == 2
    assert "REPAZOO_CLIENT_ACCESS_KEY_ID / REPAZOO_CLIENT_SECRET_ACCESS_KEY: both must be set" in no_keys.output
    plain = [a for a in ADD if a != "--credentials-from-env"]
    bad_bucket = [*plain]
    bad_bucket[bad_bucket.index("acme-events")] = "Acme_Events"
    result = run(*bad_bucket)
    assert result.exit_code == 2 and "bucket: 'Acme_Events' is not a valid S3 bucket name" in result.output
    bad_id = [*plain]
    bad_id[2] = "Acme Corp!"
    assert "id: 'Acme Corp!' must be lowercase" in run(*bad_id).output
    assert run(*plain).exit_code == 0
    twice = run(*plain)
    assert twice.exit_code == 2 and "client acme already exists; use `repazoo clients update`" in twice.output
    level = run("clients", "update", "acme", "--privacy-level", "secret")
    assert level.exit_code == 2 and "'secret' is not one of 'standard', 'gdpr', 'hipaa'" in level.output
    assert "nothing to update" in run("clients", "update", "acme").output
    url = run("clients", "update", "acme", "--endpoint-url", "ftp://x")
    assert "endpoint URL: 'ftp://x' is not an http(s) URL" in url.output
