"""The same syncs on SQLite, PostgreSQL and MariaDB give the same outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tests.servers import target_for
from tests.synchelp import EXPORTS, records, sync
from tests.test_sync import export_v1, export_v2

VOLATILE = {"run_id"}


def scenario(tmp: Path, url: str) -> list[Any]:
    """First load, an incremental run, a full run with deletes, a rerun that restores."""
    out = tmp / "out"
    v1, v2 = export_v1(tmp / "v1.csv"), export_v2(tmp / "v2.csv")
    steps = [(v1, {"full": True}), (v2, {}), (v2, {"full": True}), (v2, {"full": True}),
             (v1, {"full": True})]
    outcome: list[Any] = []
    for path, extra in steps:
        state, report = sync(path, out, target={"url": url}, allow_mass_delete=True,
                             batch_size=3, **extra)
        assert state.is_completed(), state.message
        rows = sorted((r["entity"], r["key"], r["action"], r["changed_fields"])
                      for r in records(report))
        outcome.append((report["counts"], rows))
    for name in ("customers", "customer_addresses", "customer_groups"):
        table = pq.read_table(out / EXPORTS / f"{name}.parquet")
        outcome.append((name, table.schema.to_string(),
                         sorted(table.to_pylist(), key=lambda r: repr(sorted(r.items())))))
    return outcome


@pytest.fixture(scope="module")
def on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The scenario's outcome on SQLite, the reference the server dialects must equal (run
    once per process, so each server dialect is a test of its own that can run beside the
    other)."""
    work = tmp_path_factory.mktemp("dialect-sqlite")
    with target_for("sqlite", str(work / "out")) as url:
        return scenario(work, url)


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_same_outcome_on_every_dialect(tmp_path: Path, on_sqlite: list[Any],
                                       dialect: str) -> None:
    with target_for(dialect, str(tmp_path / "out")) as url:
        outcome = scenario(tmp_path, url)
        _check_unicode_keys_are_distinct(url)
    assert outcome == on_sqlite


def _check_unicode_keys_are_distinct(url: str) -> None:
    """'José' and 'Jose', 'A@x' and 'a@x' must be different keys (binary collation)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO customer_groups (source, record_key, row_hash, run_id, "
                             "loaded_at) VALUES ('t', 'José', 1, 'r', '2020-01-01'), "
                             "('t', 'Jose', 2, 'r', '2020-01-01'), ('t', 'A@x', 3, 'r', "
                             "'2020-01-01'), ('t', 'a@x', 4, 'r', '2020-01-01')"))
        count = conn.execute(sa.text("SELECT count(*) FROM customer_groups WHERE source = 't'"))
        assert count.scalar_one() == 4
    engine.dispose()
