"""Security: the token vault (MultiFernet, key rotation) and the hash-chained audit log."""

from repazoo_assets.lib.security.vault import (
    RotationReport,
    TokenVault,
    VaultDecryptError,
    VaultError,
    VaultKeyError,
    rotate_stored_secrets,
)

__all__ = [
    "RotationReport",
    "TokenVault",
    "VaultDecryptError",
    "VaultError",
    "VaultKeyError",
    "rotate_stored_secrets",
]
