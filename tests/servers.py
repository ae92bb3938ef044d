"""The database servers of the development and CI machines, one fresh database per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                   "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306/",
                "mysql+pymysql://root@127.0.0.1:3306/{db}?charset=utf8mb4"),
}


def require_servers() -> bool:
    """CI sets MAGSYNC_REQUIRE_SERVERS=1: a missing server is then a failure, not a skip."""
    return os.environ.get("MAGSYNC_REQUIRE_SERVERS") == "1"


@contextmanager
def fresh_database(dialect: str) -> Iterator[str]:
    """A new, empty database on the dialect's server; dropped afterwards."""
    admin_url, template = SERVERS[dialect]
    name = f"magsync_test_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as err:
        engine.dispose()
        if require_servers():
            pytest.fail(f"{dialect} server unreachable and MAGSYNC_REQUIRE_SERVERS=1: {err}")
        pytest.skip(f"{dialect} server unreachable: {err.orig}")
    try:
        yield template.format(db=name)
    finally:
        with engine.connect() as conn:
            if dialect == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@contextmanager
def target_for(dialect: str, out_dir: str) -> Iterator[str]:
    """A target URL of the dialect: SQLite under out_dir, or a fresh server database."""
    if dialect == "sqlite":
        yield f"sqlite:///{out_dir}/magsync.sqlite"
        return
    with fresh_database(dialect) as url:
        yield url
