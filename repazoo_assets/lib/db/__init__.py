"""The app database: tables (SQLAlchemy Core), engines, migrations, idempotent writes."""

from repazoo_assets.lib.db.engine import check_connection, create_engine, normalize_database_url, safe_url
from repazoo_assets.lib.db.migrate import current_revision, head_revision, is_up_to_date, upgrade
from repazoo_assets.lib.db.upsert import upsert

__all__ = [
    "check_connection",
    "create_engine",
    "current_revision",
    "head_revision",
    "is_up_to_date",
    "normalize_database_url",
    "safe_url",
    "upgrade",
    "upsert",
]
