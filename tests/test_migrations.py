"""Alembic migrations: the migrated schema matches the table objects; old stores upgrade."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from magsync.load.sql_store import SqlTarget
from magsync.load.tables import metadata
from tests.synchelp import sync

FIXTURE = Path(__file__).parent / "fixtures" / "stores" / "spine-0.1.0-sample.sqlite"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def _diffs(url: str) -> list[object]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = compare_metadata(ctx, metadata)
    engine.dispose()
    ignorable = {"magsync_schema_version"}
    return [d for d in diffs if not (isinstance(d, tuple) and d[0] == "remove_table"
                                     and d[1].name in ignorable)]


def test_migrated_schema_matches_table_objects(target_url: str) -> None:
    SqlTarget(target_url, source="t").migrate()
    assert _diffs(target_url) == []


def test_store_from_the_spine_release_upgrades_and_is_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(FIXTURE, out / "magsync.sqlite")
    engine = sa.create_engine(f"sqlite:///{out / 'magsync.sqlite'}")
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM magsync_schema_version"))
        assert version.scalar_one() == "0001"
    state, report = sync(SAMPLE, out, full=True)
    assert state.is_completed(), state.message
    for entity, counts in report["counts"].items():
        assert set(counts) <= {"unchanged", "faulted"}, (entity, counts)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM magsync_schema_version"))
        assert version.scalar_one() == "0007"
        assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar_one() == 996
    engine.dispose()


def test_0004_adds_a_null_raw_digest_to_the_entity_tables(tmp_path: Path) -> None:
    """A store from the spine release gains raw_digest, null everywhere (its rows are typed
    once more by the next run, which fills it in: tests/test_skip_unchanged.py); 0003 is
    reachable again by a downgrade."""
    from alembic import command
    from alembic.config import Config

    from magsync.load.sql_store import MIGRATIONS

    path = tmp_path / "magsync.sqlite"
    shutil.copy(FIXTURE, path)
    SqlTarget(f"sqlite:///{path}", source="default").migrate()
    engine = sa.create_engine(f"sqlite:///{path}")
    tables = ("customers", "customer_addresses", "customer_groups")
    inspector = sa.inspect(engine)
    for table in tables:
        column = {c["name"]: c for c in inspector.get_columns(table)}["raw_digest"]
        assert column["nullable"] and isinstance(column["type"], sa.BigInteger)
    with engine.connect() as conn:
        for table in tables:
            rows, digests = conn.execute(
                sa.text(f"SELECT count(*), count(raw_digest) FROM {table}")).one()
            assert rows > 0 and digests == 0, table
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert all("raw_digest" not in {c["name"] for c in sa.inspect(engine).get_columns(t)}
               for t in tables)
    engine.dispose()


def test_0007_adds_null_digests_to_the_fault_table(tmp_path: Path) -> None:
    """A store from the spine release gains the faults' raw and suite digests, null on
    its old faults (their records are validated once more: load/refault.py); 0006 is
    reachable again by a downgrade."""
    from alembic import command
    from alembic.config import Config

    from magsync.load.sql_store import MIGRATIONS

    path = tmp_path / "magsync.sqlite"
    shutil.copy(FIXTURE, path)
    SqlTarget(f"sqlite:///{path}", source="default").migrate()
    engine = sa.create_engine(f"sqlite:///{path}")
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("magsync_faults")}
    assert columns["raw_digest"]["nullable"] and columns["suite_digest"]["nullable"]
    with engine.connect() as conn:
        rows, digests = conn.execute(sa.text(
            "SELECT count(*), count(raw_digest) + count(suite_digest) FROM magsync_faults")).one()
        assert rows > 0 and digests == 0
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    names = {c["name"] for c in sa.inspect(engine).get_columns("magsync_faults")}
    assert not names & {"raw_digest", "suite_digest"}
    engine.dispose()
