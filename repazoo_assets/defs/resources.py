"""Resources for the active environment (`REPAZOO_ENV=local|production`).

Local runs need no services and no keys: a SQLite app database and a directory object store under
the data folder, in-memory rate limits, the bundled synthetic Twitter archives. Production reads
every address and secret through `dg.EnvVar`, so values never appear in run config or the UI, and
fails at load, naming the variable, when one is missing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from repazoo_assets.lib import settings as cfg
from repazoo_assets.lib.db import create_engine, normalize_database_url
from repazoo_assets.lib.security.vault import TokenVault, VaultKeyError
from repazoo_assets.lib.storage.base import ObjectStore
from repazoo_assets.lib.storage.local import LocalObjectStore

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource
    from limits.storage import Storage
    from limits.strategies import MovingWindowRateLimiter


class AppDatabase(dg.ConfigurableResource):
    """The app database (users, tweets, analyses, events, audit log) as a SQLAlchemy engine."""

    url: str

    _engine: Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> Engine:
        # Created on first use and kept for the life of the step: one pool per process.
        if self._engine is None:
            self._engine = create_engine(normalize_database_url(self.url))
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()


class ObjectStoreResource(dg.ConfigurableResource):
    """Where raw, processed and export objects live. Subclasses pick the backend."""

    raw_bucket: str
    processed_bucket: str
    exports_bucket: str

    def store(self) -> ObjectStore:
        raise NotImplementedError

    @property
    def buckets(self) -> cfg.Buckets:
        return cfg.Buckets(self.raw_bucket, self.processed_bucket, self.exports_bucket)


class LocalObjectStoreResource(ObjectStoreResource):
    """A local directory laid out as `<root>/<bucket>/<key>`: the embedded default."""

    root: str

    def store(self) -> ObjectStore:
        store = LocalObjectStore(Path(self.root))
        # Local buckets are just folders: create them so a fresh data folder works at once.
        for bucket in (self.raw_bucket, self.processed_bucket, self.exports_bucket):
            store.ensure_bucket(bucket)
        return store


def _define_s3_object_store_resource() -> type[ObjectStoreResource]:
    # dagster-aws costs about a second to import (its package imports every AWS component and
    # Dagster's test utilities), paid by every process that loads the code location. Only the
    # production environment uses S3, so the class is made on first use of the name
    # `S3ObjectStoreResource` (the module's __getattr__ below). It is made with type() because
    # the field's annotation must be the class itself, not the string this module's
    # `from __future__ import annotations` would leave in a class statement here.
    from dagster_aws.s3 import S3Resource

    from repazoo_assets.lib.storage.s3 import S3ObjectStore

    def store(self) -> ObjectStore:
        return S3ObjectStore(self.s3.get_client())

    return type(
        "S3ObjectStoreResource",
        (ObjectStoreResource,),
        {
            "__module__": __name__,
            "__qualname__": "S3ObjectStoreResource",
            "__doc__": "S3 or any S3-compatible endpoint, through dagster-aws's S3Resource (boto3).",
            "__annotations__": {"s3": S3Resource},
            "store": store,
        },
    )


def __getattr__(name: str):
    if name == "S3ObjectStoreResource":
        cls = globals()[name] = _define_s3_object_store_resource()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RateLimitResource(dg.ConfigurableResource):
    """Shared rate-limit state for the `limits` library: `memory://` in one local process,
    Redis in production so every worker and run sees the same windows."""

    storage_uri: str
    # Prefix of every key in Redis (limits' default when unset); tests give each run its own.
    key_prefix: str | None = None

    def storage(self) -> Storage:
        # limits is imported on use (~0.2 s with its storage backends), not at every load.
        from limits.storage import storage_from_string

        if self.key_prefix and not self.storage_uri.startswith("memory://"):
            return storage_from_string(self.storage_uri, key_prefix=self.key_prefix)
        return storage_from_string(self.storage_uri)

    def limiter(self) -> MovingWindowRateLimiter:
        from limits.strategies import MovingWindowRateLimiter

        return MovingWindowRateLimiter(self.storage())


class TwitterApiResource(dg.ConfigurableResource):
    """Twitter API v2 app credentials (OAuth2), or locally the synthetic account archives."""

    api_base_url: str = "https://api.twitter.com"
    client_id: str | None = None
    client_secret: str | None = None
    archives_dir: str | None = None


class AnthropicResource(dg.ConfigurableResource):
    """Claude access. Without an API key (local) analyses use the lexicon analyser instead."""

    api_key: str | None = None
    base_url: str | None = None


class SlackResource(dg.ConfigurableResource):
    """Slack incoming webhook for alerts; unset locally, where alerts go to the table and the log."""

    webhook_url: str | None = None


class TokenVaultResource(dg.ConfigurableResource):
    """Keys that encrypt OAuth tokens and client credentials: `ENCRYPTION_KEY` (comma-separated
    Fernet keys, newest first) in production; locally a key file in the data folder."""

    encryption_key: str | None = None
    key_file: str | None = None

    def vault(self) -> TokenVault:
        """The vault from ENCRYPTION_KEY when set, else from the key file (created on first use)."""
        if self.encryption_key:
            return TokenVault.from_keys(self.encryption_key)
        if self.key_file:
            return TokenVault.from_key_file(self.key_file)
        raise VaultKeyError("is not set and the resource has no key_file")


class PseudonymizationKeyResource(dg.ConfigurableResource):
    """The secret of the keyed pseudonyms (HMAC-SHA256) in GDPR and HIPAA deliveries:
    `PSEUDONYMIZATION_KEY` in production (at least 32 characters); locally a random key file in
    the data folder, created on first use. Changing it changes every pseudonym."""

    key: str | None = None
    key_file: str | None = None

    def key_bytes(self) -> bytes:
        if self.key:
            if len(self.key) < 32:
                raise ValueError("PSEUDONYMIZATION_KEY: must be at least 32 characters")
            return self.key.encode()
        if not self.key_file:
            raise ValueError("PSEUDONYMIZATION_KEY: is not set and the resource has no key_file")
        path = Path(self.key_file)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: use theirs
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def _env_or(name: str, default: str) -> str | dg.EnvVar:
    """Read `name` through dg.EnvVar when it is set (so its value stays out of the UI)."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def local_resources(settings: cfg.Settings) -> dict[str, dg.ConfigurableResource]:
    data = settings.data_dir
    return {
        "app_db": AppDatabase(url=_env_or("DATABASE_URL", settings.database_url)),
        "object_store": LocalObjectStoreResource(
            root=str(settings.objects_dir),
            raw_bucket=settings.buckets.raw,
            processed_bucket=settings.buckets.processed,
            exports_bucket=settings.buckets.exports,
        ),
        "rate_limits": RateLimitResource(storage_uri="memory://"),
        "twitter": TwitterApiResource(archives_dir=str(settings.archives_dir)),
        "anthropic": AnthropicResource(),
        "slack": SlackResource(),
        "token_vault": TokenVaultResource(key_file=str(data / "secrets" / "encryption.key")),
        "pseudonymization": PseudonymizationKeyResource(key_file=str(data / "secrets" / "pseudonymization.key")),
    }


def production_resources() -> dict[str, dg.ConfigurableResource]:
    # Checks presence and shape now, at load, although the values are read through EnvVar later.
    cfg.load_settings()
    from dagster_aws.s3 import S3Resource

    s3 = S3Resource(endpoint_url=dg.EnvVar("S3_ENDPOINT_URL")) if os.environ.get("S3_ENDPOINT_URL") else S3Resource()
    return {
        "app_db": AppDatabase(url=dg.EnvVar("DATABASE_URL")),
        "object_store": __getattr__("S3ObjectStoreResource")(
            s3=s3,
            raw_bucket=dg.EnvVar("RAW_S3_BUCKET"),
            processed_bucket=dg.EnvVar("PROCESSED_S3_BUCKET"),
            exports_bucket=dg.EnvVar("EXPORTS_S3_BUCKET"),
        ),
        "rate_limits": RateLimitResource(storage_uri=dg.EnvVar("REDIS_URL")),
        "twitter": TwitterApiResource(
            api_base_url=os.environ.get("TWITTER_API_BASE_URL", "https://api.twitter.com"),
            client_id=dg.EnvVar("TWITTER_CLIENT_ID"),
            client_secret=dg.EnvVar("TWITTER_CLIENT_SECRET"),
        ),
        "anthropic": AnthropicResource(
            api_key=dg.EnvVar("ANTHROPIC_API_KEY"),
            base_url=os.environ.get("ANTHROPIC_BASE_URL") or None,
        ),
        "slack": SlackResource(webhook_url=dg.EnvVar("SLACK_WEBHOOK_URL")),
        "token_vault": TokenVaultResource(encryption_key=dg.EnvVar("ENCRYPTION_KEY")),
        "pseudonymization": PseudonymizationKeyResource(key=dg.EnvVar("PSEUDONYMIZATION_KEY")),
    }


def resources_for_environment() -> dict[str, dg.ConfigurableResource]:
    """The resources of the environment named by REPAZOO_ENV; raises SettingsError naming
    what is wrong (unknown environment, missing or malformed variable)."""
    if cfg.current_env() == "production":
        return production_resources()
    return local_resources(cfg.load_settings())


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for_environment())
