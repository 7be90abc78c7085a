"""Token vault: encryption, key parsing, the local key file, rotation of stored secrets, `keys rotate`."""

from __future__ import annotations

import stat
import threading

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet

from repazoo_assets.cli import main
from repazoo_assets.defs.resources import TokenVaultResource
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security.vault import (
    TokenVault,
    VaultDecryptError,
    VaultKeyError,
    local_key_file,
    rotate_stored_secrets,
)
from repazoo_assets.lib.settings import PRODUCTION_REQUIRED

OLD, NEW, STRANGER = (Fernet.generate_key().decode() for _ in range(3))


def test_roundtrip_and_fresh_ciphertext_each_time():
    vault = TokenVault.from_keys(f" {NEW} , {OLD} ")
    first, second = vault.encrypt("access-token-123"), vault.encrypt("access-token-123")
    assert first != second and "access-token-123" not in first
    assert vault.decrypt(first) == vault.decrypt(second) == "access-token-123"
    assert repr(vault) == "TokenVault(keys=2)"


def test_new_key_first_encrypts_and_old_keys_still_decrypt():
    old_token = TokenVault.from_keys(OLD).encrypt("secret")
    both = TokenVault.from_keys(f"{NEW},{OLD}")
    assert both.decrypt(old_token) == "secret"
    assert TokenVault.from_keys(NEW).decrypt(both.encrypt("secret")) == "secret"
    rotated = both.rotate(old_token)
    assert TokenVault.from_keys(NEW).decrypt(rotated) == "secret"
    assert both.is_current(rotated) and not both.is_current(old_token)


@pytest.mark.parametrize("ciphertext", ["wrong-key", "not a token at all", ""])
def test_wrong_key_or_garbage_raises_never_returns_garbage(ciphertext):
    if ciphertext == "wrong-key":
        ciphertext = TokenVault.from_keys(STRANGER).encrypt("secret")
    vault = TokenVault.from_keys(f"{NEW},{OLD}")
    with pytest.raises(VaultDecryptError, match="not valid under any configured key — wrong or missing ENCRYPTION_KEY"):
        vault.decrypt(ciphertext)
    with pytest.raises(VaultDecryptError):
        vault.rotate(ciphertext)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (f"{NEW},not-a-fernet-key-xyz", "ENCRYPTION_KEY: key 2 of 2 is not a valid Fernet key"),
        (f"not-a-fernet-key-xyz,{NEW},{OLD}", "ENCRYPTION_KEY: key 1 of 3 is not a valid Fernet key"),
        (f"{NEW},,{OLD}", "ENCRYPTION_KEY: key 2 of 3 is not a valid Fernet key"),
        ("", "ENCRYPTION_KEY: is empty"),
        ("   ", "ENCRYPTION_KEY: is empty"),
    ],
)
def test_malformed_keys_name_the_setting_and_position_not_the_value(keys, expected):
    with pytest.raises(VaultKeyError) as info:
        TokenVault.from_keys(keys)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(expected)
    assert "not-a-fernet-key-xyz" not in str(info.value) and NEW not in str(info.value)


def test_key_file_is_created_private_once_and_reused(tmp_path):
    path = tmp_path / "data" / "secrets" / "encryption.key"
    token = TokenVault.from_key_file(path).encrypt("secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenVault.from_key_file(path).decrypt(token) == "secret"
    assert [p.name for p in path.parent.iterdir()] == ["encryption.key"], "no temporary file left behind"


def test_racing_first_uses_agree_on_one_key(tmp_path):
    path = tmp_path / "encryption.key"
    barrier, tokens = threading.Barrier(8), []

    def first_use():
        barrier.wait()
        tokens.append(TokenVault.from_key_file(path).encrypt("secret"))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = TokenVault.from_keys(path.read_text())
    assert [final.decrypt(token) for token in tokens] == ["secret"] * 8


def test_resource_builds_the_vault_from_the_key_or_the_key_file(tmp_path):
    token = TokenVaultResource(encryption_key=f"{NEW},{OLD}").vault().encrypt("x")
    assert TokenVault.from_keys(NEW).decrypt(token) == "x"
    local = TokenVaultResource(key_file=str(tmp_path / "k.key")).vault()
    assert TokenVault.from_key_file(tmp_path / "k.key").decrypt(local.encrypt("x")) == "x"
    with pytest.raises(VaultKeyError, match="ENCRYPTION_KEY"):
        TokenVaultResource().vault()


# --- rotation of stored secrets ------------------------------------------------------------


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'app.db'}"
    eng = create_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _store_secrets(engine, vault: TokenVault, users: int = 7, clients: int = 5) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(t.users), [{"id": f"u{i}", "twitter_user_id": str(1000 + i)} for i in range(users)])
        conn.execute(
            sa.insert(t.oauth_tokens),
            [
                {
                    "user_id": f"u{i}",
                    "access_token_encrypted": vault.encrypt(f"access-{i}"),
                    # Some users have no refresh token: NULL must survive rotation.
                    "refresh_token_encrypted": vault.encrypt(f"refresh-{i}") if i % 3 else None,
                }
                for i in range(users)
            ],
        )
        if not clients:
            return
        conn.execute(
            sa.insert(t.clients),
            [
                {
                    "id": f"client-{i}",
                    "name": f"Client {i}",
                    "privacy_level": "gdpr",
                    "sync_frequency": "daily",
                    "destination_bucket": "bucket",
                    "credentials_encrypted": vault.encrypt(f"creds-{i}") if i else None,
                }
                for i in range(clients)
            ],
        )


def _decrypt_all(engine, vault: TokenVault) -> tuple[list, list]:
    with engine.connect() as conn:
        tokens = conn.execute(
            sa.select(t.oauth_tokens.c.access_token_encrypted, t.oauth_tokens.c.refresh_token_encrypted).order_by(
                t.oauth_tokens.c.id
            )
        ).all()
        creds = conn.execute(sa.select(t.clients.c.credentials_encrypted).order_by(t.clients.c.id)).scalars().all()
    plain_tokens = [(vault.decrypt(a), r and vault.decrypt(r)) for a, r in tokens]
    return plain_tokens, [c and vault.decrypt(c) for c in creds]


def test_rotation_re_encrypts_everything_under_the_new_key_in_batches(engine):
    _store_secrets(engine, TokenVault.from_keys(OLD))
    before = _decrypt_all(engine, TokenVault.from_keys(OLD))

    report = rotate_stored_secrets(engine, TokenVault.from_keys(f"{NEW},{OLD}"), batch_size=2)

    assert report.rewritten == {"oauth_tokens": 7, "clients": 4}
    assert report.already_current == {"oauth_tokens": 0, "clients": 1}  # the client without credentials
    assert _decrypt_all(engine, TokenVault.from_keys(NEW)) == before
    with pytest.raises(VaultDecryptError):
        _decrypt_all(engine, TokenVault.from_keys(OLD))

    again = rotate_stored_secrets(engine, TokenVault.from_keys(f"{NEW},{OLD}"), batch_size=3)
    assert again.rewritten == {"oauth_tokens": 0, "clients": 0}
    assert again.already_current == {"oauth_tokens": 7, "clients": 5}
    assert _decrypt_all(engine, TokenVault.from_keys(NEW)) == before


def test_undecryptable_row_aborts_naming_table_and_id_and_keeps_earlier_batches(engine):
    _store_secrets(engine, TokenVault.from_keys(OLD), users=6, clients=0)
    stranger_ciphertext = TokenVault.from_keys(STRANGER).encrypt("from another system")
    with engine.begin() as conn:
        ids = conn.execute(sa.select(t.oauth_tokens.c.id).order_by(t.oauth_tokens.c.id)).scalars().all()
        bad_id = ids[3]  # second row of the second batch of two
        conn.execute(
            sa.update(t.oauth_tokens).where(t.oauth_tokens.c.id == bad_id).values(access_token_encrypted=stranger_ciphertext)
        )
    vault = TokenVault.from_keys(f"{NEW},{OLD}")

    with pytest.raises(VaultDecryptError) as info:
        rotate_stored_secrets(engine, vault, batch_size=2)

    message = str(info.value)
    assert f"oauth_tokens.access_token_encrypted of row id {bad_id}:" in message
    assert stranger_ciphertext not in message and "from another system" not in message
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(t.oauth_tokens.c.id, t.oauth_tokens.c.access_token_encrypted)).all())
    # The first batch is committed; the failing batch rolled back as a whole.
    assert [vault.is_current(rows[i]) for i in ids] == [True, True, False, False, False, False]

    with engine.begin() as conn:
        conn.execute(sa.delete(t.oauth_tokens).where(t.oauth_tokens.c.id == bad_id))
    resumed = rotate_stored_secrets(engine, vault, batch_size=2)
    assert resumed.rewritten["oauth_tokens"] == 3 and resumed.already_current["oauth_tokens"] == 2


def test_rotation_keeps_a_secret_refreshed_meanwhile(engine):
    """Compare-and-set: a row changed between the batch read and the write is not overwritten."""
    _store_secrets(engine, TokenVault.from_keys(OLD), users=1, clients=0)
    vault = TokenVault.from_keys(f"{NEW},{OLD}")
    refreshed = vault.encrypt("refreshed-access")
    original_rotate = vault.rotate

    def rotate_while_a_run_refreshes(ciphertext):
        with engine.begin() as conn:
            conn.execute(sa.update(t.oauth_tokens).values(access_token_encrypted=refreshed))
        return original_rotate(ciphertext)

    object.__setattr__(vault, "rotate", rotate_while_a_run_refreshes)
    report = rotate_stored_secrets(engine, vault)
    assert report.rewritten["oauth_tokens"] == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.oauth_tokens.c.access_token_encrypted)).scalar_one() == refreshed


# --- `repazoo keys rotate` --------------------------------------------------------------------


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    for name in (*PRODUCTION_REQUIRED, "REPAZOO_ENV", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPAZOO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("repazoo: error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_keys_rotate_cli_locally(local_env):
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    key_file = local_key_file(local_env)
    engine = create_engine(f"sqlite:///{local_env / 'app.db'}")
    _store_secrets(engine, TokenVault.from_key_file(key_file), users=3, clients=2)
    old_key = key_file.read_text().strip()
    key_file.write_text(f"{NEW}\n{old_key}\n")

    result = runner.invoke(main, ["keys", "rotate", "--batch-size", "2"])

    assert result.exit_code == 0, result.output
    assert "oauth_tokens            3 rows rewritten,        0 already under the newest key" in result.output
    assert "clients                 1 rows rewritten,        1 already under the newest key" in result.output
    assert NEW not in result.output and old_key not in result.output
    _decrypt_all(engine, TokenVault.from_keys(NEW))
    verified = runner.invoke(main, ["audit", "verify"])
    assert verified.output.strip() == "audit log: 1 rows checked, chain OK"
    engine.dispose()


def test_keys_rotate_cli_errors_are_one_line(local_env, monkeypatch):
    runner = CliRunner()
    assert "run `repazoo db upgrade` first" in _error_line(runner.invoke(main, ["keys", "rotate"]))

    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    engine = create_engine(f"sqlite:///{local_env / 'app.db'}")
    _store_secrets(engine, TokenVault.from_keys(STRANGER), users=1, clients=0)
    line = _error_line(runner.invoke(main, ["keys", "rotate"]))
    assert line.startswith("repazoo: error: keys rotate: oauth_tokens.access_token_encrypted of row id 1: not valid")

    local_key_file(local_env).write_text("not-a-key\n")
    line = _error_line(runner.invoke(main, ["keys", "rotate"]))
    assert "key 1 of 1 is not a valid Fernet key" in line and "not-a-key\n" not in line
    engine.dispose()
