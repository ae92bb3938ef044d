"""Alembic environment: runs on the connection magsync hands over, never from a URL."""

from alembic import context

VERSION_TABLE = "magsync_schema_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
