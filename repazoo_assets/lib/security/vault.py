"""Token vault: OAuth tokens and client credentials encrypted with MultiFernet.

`ENCRYPTION_KEY` holds comma-separated Fernet keys, newest first. The newest key encrypts; every
key decrypts, so a new key can be put in front and the stored secrets re-encrypted at leisure
(`rotate_stored_secrets`, `repazoo keys rotate`); once that has run, the old key can be dropped.
Locally the keys live in a file in the data folder, created on first use.

No message raised here contains a key, a plaintext or a ciphertext: they name the setting, the
key's position, or the table and row id.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.settings import SettingsError

SETTING = "ENCRYPTION_KEY"
LOCAL_KEY_FILE = Path("secrets") / "encryption.key"

# Which columns hold vault ciphertext, per table. Rotation walks exactly these.
ENCRYPTED_COLUMNS: dict[sa.Table, tuple[str, ...]] = {
    t.oauth_tokens: ("access_token_encrypted", "refresh_token_encrypted"),
    t.clients: ("credentials_encrypted",),
}


class VaultError(ValueError):
    """Base of the vault's errors."""


class VaultKeyError(VaultError, SettingsError):
    """The key setting is empty or a key in it is malformed. Also a SettingsError, so the CLI
    reports it as one line naming the setting."""

    def __init__(self, problem: str, setting: str = SETTING):
        SettingsError.__init__(self, setting, problem)


class VaultDecryptError(VaultError):
    """A ciphertext is not valid under any configured key."""

    MESSAGE = "not valid under any configured key — wrong or missing ENCRYPTION_KEY?"

    def __init__(self, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {self.MESSAGE}" if where else self.MESSAGE)


def _parse_keys(keys: str, setting: str) -> list[Fernet]:
    parts = [part.strip() for part in re.split(r"[,\n]", keys.strip())] if keys and keys.strip() else []
    if not parts:
        raise VaultKeyError("is empty; expected comma-separated Fernet keys, newest first", setting)
    fernets = []
    for position, part in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(part.encode()))
        except ValueError:
            # The position, never the value: the value is a secret even when malformed.
            raise VaultKeyError(
                f"key {position} of {len(parts)} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `repazoo keys generate`)",
                setting,
            ) from None
    return fernets


@dataclass(frozen=True, repr=False)
class TokenVault:
    """Encrypts with the newest key, decrypts with any. `repr` shows only the key count."""

    _fernets: tuple[Fernet, ...]
    _multi: MultiFernet = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_multi", MultiFernet(list(self._fernets)))

    def __repr__(self) -> str:
        return f"TokenVault(keys={len(self._fernets)})"

    @classmethod
    def from_keys(cls, keys: str, *, setting: str = SETTING) -> TokenVault:
        """From `ENCRYPTION_KEY`'s format: comma-separated Fernet keys, newest first."""
        return cls(tuple(_parse_keys(keys, setting)))

    @classmethod
    def from_key_file(cls, path: str | Path) -> TokenVault:
        """From a key file (local environment), creating it with a fresh key on first use."""
        path = Path(path)
        if not path.exists():
            _create_key_file(path)
        return cls.from_keys(path.read_text(), setting=f"key file {path}")

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._multi.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultDecryptError() from None

    def rotate(self, ciphertext: str) -> str:
        """The same secret encrypted with the newest key."""
        try:
            return self._multi.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultDecryptError() from None

    def is_current(self, ciphertext: str) -> bool:
        """Whether the newest key already decrypts it (so rotation can leave it alone)."""
        try:
            self._fernets[0].decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True


def _create_key_file(path: Path) -> None:
    """Write a fresh key to `path`, mode 0600, atomically and only if no one else did first.

    The key is written to a private temporary file, then hard-linked into place: the link
    fails if the file exists, so two processes starting together agree on one key, and
    readers never see a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: its key is the key
    finally:
        os.unlink(tmp)


def local_key_file(data_dir: Path) -> Path:
    return data_dir / LOCAL_KEY_FILE


@dataclass
class RotationReport:
    """Per table: rows rewritten under the newest key, and rows already under it."""

    rewritten: dict[str, int] = field(default_factory=dict)
    already_current: dict[str, int] = field(default_factory=dict)

    @property
    def total_rewritten(self) -> int:
        return sum(self.rewritten.values())


def rotate_stored_secrets(engine: Engine, vault: TokenVault, batch_size: int = 500) -> RotationReport:
    """Re-encrypt every stored secret with the vault's newest key.

    Batches of `batch_size` rows by primary key (keyset pagination), each committed on its own,
    so memory and lock time stay bounded. A ciphertext no key decrypts raises VaultDecryptError
    naming the table and row id; batches committed before stay, and rerunning is safe because
    rows already under the newest key are left alone.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport()
    for table, columns in ENCRYPTED_COLUMNS.items():
        rewritten = current = 0
        last_id = None
        while True:
            with engine.begin() as conn:
                rows = _next_batch(conn, table, columns, last_id, batch_size)
                for row in rows:
                    changed = _rotate_row(conn, vault, table, columns, row)
                    rewritten += changed
                    current += not changed
            if len(rows) < batch_size:
                break
            last_id = rows[-1][0]
        report.rewritten[table.name] = rewritten
        report.already_current[table.name] = current
    return report


def _next_batch(conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], last_id, batch_size: int):
    pk = table.c.id
    query = sa.select(pk, *(table.c[c] for c in columns)).order_by(pk).limit(batch_size)
    if last_id is not None:
        query = query.where(pk > last_id)
    return conn.execute(query).all()


def _rotate_row(conn: sa.Connection, vault: TokenVault, table: sa.Table, columns: tuple[str, ...], row) -> bool:
    """Rewrite one row's secrets under the newest key; False when they already were."""
    row_id, values = row[0], dict(zip(columns, row[1:], strict=True))
    new_values = {}
    for column, value in values.items():
        if value is None or vault.is_current(value):
            continue
        try:
            new_values[column] = vault.rotate(value)
        except VaultDecryptError:
            raise VaultDecryptError(f"{table.name}.{column} of row id {row_id}") from None
    if not new_values:
        return False
    # Compare-and-set: a secret refreshed by a run since we read it is newer than ours; keep it.
    unchanged = [table.c[c].is_not_distinct_from(values[c]) for c in new_values]
    result = conn.execute(sa.update(table).where(table.c.id == row_id, *unchanged).values(**new_values))
    return result.rowcount == 1
