"""`repazoo users connect | list | import-archive`: consent stored, partition registered, tokens
never shown."""

import dagster as dg
import sqlalchemy as sa
from click.testing import CliRunner

from repazoo_assets.cli import main
from repazoo_assets.lib.db import create_engine
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.demo.archive import write_tweets_js
from repazoo_assets.lib.demo.generator import generate_dataset
from repazoo_assets_tests.test_cli import local_env  # noqa: F401  (fixture)

CONNECT = [
    "users", "connect", "--user-id", "jane", "--twitter-user-id", "2244994945", "--access-token",
    "AT-very-secret", "--refresh-token", "RT-very-secret", "--expires-in", "7200", "--tier", "pro",
    "--handle", "jane_d",
]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_connect_registers_the_partition_and_stores_no_plaintext(local_env, tmp_path):  # noqa: F811
    assert run("db", "upgrade").exit_code == 0
    result = run(*CONNECT)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "user jane connected (pro); partition jane registered"
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("users") == ["jane"]
    engine = create_engine(f"sqlite:///{local_env / 'app.db'}")
    with engine.connect() as conn:
        token = conn.execute(sa.select(t.oauth_tokens)).one()
        actions = conn.execute(sa.select(t.audit_log.c.action, t.audit_log.c.subject_id)).all()
    assert "very-secret" not in token.access_token_encrypted + token.refresh_token_encrypted
    assert [(a.action, a.subject_id) for a in actions] == [("consent_change", "jane")]
    again = run(*CONNECT)
    assert again.output.strip().endswith("partition jane already registered")

    listing = run("users", "list")
    assert listing.exit_code == 0
    assert "jane" in listing.output and "pro" in listing.output and "granted" in listing.output
    assert "very-secret" not in listing.output and "never" in listing.output


def test_connect_refuses_bad_input_in_one_line(local_env):  # noqa: F811
    run("db", "upgrade")
    bad = [*CONNECT]
    bad[bad.index("2244994945")] = "@jane"
    result = CliRunner().invoke(main, bad)
    assert result.exit_code == 2
    assert result.output.strip() == "repazoo: error: --twitter-user-id: must be the numeric Twitter user id"
    result = CliRunner().invoke(main, [*CONNECT[:-4], "--tier", "gold"])
    assert result.exit_code == 2 and "'gold' is not one of 'basic', 'pro'" in result.output


def test_import_archive_needs_consent_and_is_idempotent(local_env, tmp_path):  # noqa: F811
    run("db", "upgrade")
    user = generate_dataset(5, users=1, tweets_per_user=12).users[0]
    archive = tmp_path / "archive"
    write_tweets_js(user.tweets, archive / "data" / "tweets.js")
    refused = CliRunner().invoke(main, ["users", "import-archive", "--user-id", "jane", str(archive)])
    assert refused.exit_code == 2
    assert "consent not granted for user jane: unknown or deleted user" in refused.output
    run(*CONNECT)
    first = run("users", "import-archive", "--user-id", "jane", str(archive))
    assert first.output.strip() == "user jane: 12 tweets read from the archive, 12 new"
    second = run("users", "import-archive", "--user-id", "jane", str(archive / "data" / "tweets.js"))
    assert second.output.strip() == "user jane: 12 tweets read from the archive, 0 new"
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = CliRunner().invoke(main, ["users", "import-archive", "--user-id", "jane", str(empty)])
    assert missing.exit_code == 2 and "no tweets.js here" in missing.output
