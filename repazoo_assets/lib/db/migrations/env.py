"""Alembic environment: runs against the engine handed over by repazoo_assets.lib.db.migrate."""

from alembic import context

from repazoo_assets.lib.db.migrate import VERSION_TABLE
from repazoo_assets.lib.db.tables import metadata

engine = context.config.attributes.get("engine")
if engine is None:
    raise RuntimeError("run migrations through `repazoo db upgrade`, which supplies the database engine")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
