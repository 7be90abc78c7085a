"""Which environment we run in, and the settings it needs.

One variable, `REPAZOO_ENV` (`local` by default, or `production`), decides. Local needs no
services and no keys: everything lives under the data folder (`REPAZOO_DATA_DIR`, default
`./.repazoo`). Production reads every service address and secret from the environment and
refuses to start when one is missing, naming it.

Dagster resources read secrets through `dg.EnvVar` (see `repazoo_assets/defs/resources.py`);
this module is the plain-Python side shared with the `repazoo` command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "production")

# Every variable production cannot run without, in the order an operator would set them.
PRODUCTION_REQUIRED = (
    "DATABASE_URL",
    "REDIS_URL",
    "RAW_S3_BUCKET",
    "PROCESSED_S3_BUCKET",
    "EXPORTS_S3_BUCKET",
    "ENCRYPTION_KEY",
    "PSEUDONYMIZATION_KEY",
    "ANTHROPIC_API_KEY",
    "TWITTER_CLIENT_ID",
    "TWITTER_CLIENT_SECRET",
    "SLACK_WEBHOOK_URL",
)

LOCAL_BUCKETS = {"raw": "repazoo-raw", "processed": "repazoo-processed", "exports": "repazoo-exports"}


class SettingsError(ValueError):
    """A setting is missing or wrong. The message names the setting and the problem, in one line,
    and never contains a secret value."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


@dataclass(frozen=True)
class Buckets:
    raw: str
    processed: str
    exports: str


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    database_url: str
    redis_url: str | None
    s3_endpoint_url: str | None
    buckets: Buckets

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def objects_dir(self) -> Path:
        """Root of the local object store (local environment only)."""
        return self.data_dir / "objects"

    @property
    def archives_dir(self) -> Path:
        """Synthetic Twitter account archives (`<twitter_user_id>/tweets.js`) used locally."""
        return self.data_dir / "archives"


def current_env(environ: Mapping[str, str] = os.environ) -> str:
    env = environ.get("REPAZOO_ENV", "local").strip().lower() or "local"
    if env not in ENVIRONMENTS:
        raise SettingsError("REPAZOO_ENV", f"unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)}")
    return env


def missing_production_settings(environ: Mapping[str, str] = os.environ) -> list[str]:
    return [name for name in PRODUCTION_REQUIRED if not environ.get(name, "").strip()]


def require_production_settings(environ: Mapping[str, str] = os.environ) -> None:
    missing = missing_production_settings(environ)
    if missing:
        raise SettingsError(
            missing[0] if len(missing) == 1 else ", ".join(missing),
            "required when REPAZOO_ENV=production but not set",
        )


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("REPAZOO_DATA_DIR") or ".repazoo").expanduser().resolve()


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read and check the settings of the current environment."""
    from repazoo_assets.lib.db.engine import normalize_database_url

    env = current_env(environ)
    folder = data_dir(environ)
    if env == "production":
        require_production_settings(environ)
        buckets = Buckets(environ["RAW_S3_BUCKET"], environ["PROCESSED_S3_BUCKET"], environ["EXPORTS_S3_BUCKET"])
        database_url = environ["DATABASE_URL"]
    else:
        buckets = Buckets(**LOCAL_BUCKETS)
        database_url = environ.get("DATABASE_URL") or f"sqlite:///{folder / 'app.db'}"
    return Settings(
        env=env,
        data_dir=folder,
        database_url=normalize_database_url(database_url, setting="DATABASE_URL"),
        redis_url=environ.get("REDIS_URL") or None,
        s3_endpoint_url=environ.get("S3_ENDPOINT_URL") or None,
        buckets=buckets,
    )
