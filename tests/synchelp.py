"""Running syncs in tests and reading what they left behind."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTITY_TABLES = ("customer_groups", "customers", "customer_addresses")


@dataclass
class Finished:
    """How an untracked sync ended, read as a flow run's final State is read."""

    report: dict[str, Any]
    message: str | None  # the error of a failed run

    def is_completed(self) -> bool:
        """Whether the run ended without an error."""
        return self.message is None

    def is_failed(self) -> bool:
        """Whether the run ended on an expected error (report carries its exit code)."""
        return self.message is not None

    def result(self, raise_on_failure: bool = True) -> dict[str, Any]:
        """The report, as State.result(raise_on_failure=False) returns it."""
        return self.report


def sync(input_path: Path, out: Path, *, tracked: bool = False,
         **settings: Any) -> tuple[Any, dict[str, Any]]:
    """One sync, its final state and report: the flow's steps in-process as an untracked
    `magsync sync` runs them, or (`tracked`, under the prefect_harness fixture) the real
    Prefect flow."""
    overrides = {"source": {"kind": "csv", "input": str(input_path)},
                 "output_dir": str(out), **settings}
    if tracked:
        from magsync.flows.sync import sync_flow

        state: Any = sync_flow(overrides, return_state=True)
        return state, state.result(raise_on_failure=False)
    from magsync.flows.sync_steps import sync_outcome

    report, error = sync_outcome(overrides, None)
    return Finished(report, error), report


def db(out: Path) -> sqlite3.Connection:
    """The default SQLite target of an output folder."""
    return sqlite3.connect(out / "magsync.sqlite")


def dump(out: Path, tables: tuple[str, ...] = ENTITY_TABLES) -> dict[str, list[tuple]]:
    """Every row of the given tables, sorted."""
    with db(out) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in tables}


def active(out: Path, table: str, column: str = "record_key") -> set[Any]:
    """A column's values over the active (not soft-deleted) rows."""
    with db(out) as conn:
        rows = conn.execute(f"SELECT {column} FROM {table} WHERE deleted_at IS NULL")
        return {r[0] for r in rows}


def records(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The records file of a run."""
    import pyarrow.parquet as pq

    path = (Path(report["output_dir"]) / "reports" / f"source={report['source']}"
            / report["run_id"] / "records.parquet")
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


VOLATILE_COLUMNS = {"run_id", "loaded_at", "deleted_at", "source_ref", "source_line"}


def dump_url(url: str) -> dict[str, list[tuple]]:
    """Every entity row of a target at a SQLAlchemy URL, without run-specific columns."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for table in ENTITY_TABLES:
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            keep = [i for i, c in enumerate(result.keys()) if c not in VOLATILE_COLUMNS]
            deleted = list(result.keys()).index("deleted_at")
            out[table] = sorted(((*(r[i] for i in keep), r[deleted] is None)
                                 for r in result), key=repr)
    engine.dispose()
    return out

# A single-store run's partitions of the output folder (load/layout.py).
EXPORTS = Path("exports") / "source=default"
REPORTS = Path("reports") / "source=default"
