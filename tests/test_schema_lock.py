"""First runs of several stores into one empty target migrate it once, not in a race.

Each store's run lock excludes only that store, so without the schema lock the first
runs of a fleet created the same tables at once and all but one failed (a unique
violation on PostgreSQL's type catalogue, "table already exists" elsewhere)."""

from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.synchronize import Barrier

import sqlalchemy as sa

from magsync.load.sql_store import SqlTarget
from tests.test_migrations import _diffs

STORES = 4


def _first_run(url: str, store: str, start: Barrier, errors: multiprocessing.Queue) -> None:
    """One store's first run, as far as the schema: its own process, as in a fleet (and
    Alembic keeps its state in module globals, so threads would race in Alembic itself)."""
    target = SqlTarget(url, source=store)
    start.wait()
    try:
        target.migrate()
    except Exception:  # noqa: BLE001 - reported to the test, which asserts on it
        errors.put(traceback.format_exc(limit=1))
    finally:
        target.engine.dispose()


def test_stores_migrating_an_empty_target_at_once_all_succeed(target_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    start, errors = ctx.Barrier(STORES), ctx.Queue()
    runs = [ctx.Process(target=_first_run, args=(target_url, f"store{i}", start, errors))
            for i in range(STORES)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(120)
    assert [run.exitcode for run in runs] == [0] * STORES
    failures = [errors.get() for _ in range(errors.qsize())]
    assert failures == []
    assert _diffs(target_url) == []
    engine = sa.create_engine(target_url)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM magsync_schema_version"))
        assert len(versions.all()) == 1
    engine.dispose()
