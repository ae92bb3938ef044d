"""Exports are patched from the previous export and the run's writes: they must still equal
the target's active rows after every kind of run, on every dialect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from magsync.load.parquet_export import STATE_DIR, export_schema, fingerprint
from magsync.load.sql_store import SqlTarget
from magsync.transform.schema import LOAD_ORDER
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.servers import target_for
from tests.synchelp import EXPORTS, sync
from tests.test_sync import export_v1, export_v2


def export_v3(path: Path) -> Path:
    """v2 less c9, with an address row above every customer: no delete detection for
    addresses, so c9's addresses go only because their customer does."""
    rows = [continuation(city="Orphan")]
    for i in [*range(1, 7), *range(10, 22)]:
        rows.append(customer_row(f"c{i}@example.com", first="Renamed" if i == 2 else f"F{i}",
                                 **address_fields(city="Moved" if i == 5 else f"City{i}")))
        if i % 3 == 0:
            rows.append(continuation(city=f"Second{i}"))
    return write_csv(path, rows)


def rows_of(batches: Any, entity: Any) -> list[dict[str, Any]]:
    names = export_schema(entity).names
    out = [r for b in batches for r in b.select(names).to_pylist()]
    return sorted(out, key=lambda r: repr(sorted(r.items())))


def assert_export_is_target(out: Path, url: str) -> None:
    target = SqlTarget(url, source="default")
    try:
        for entity in LOAD_ORDER:
            exported = pq.read_table(out / EXPORTS / f"{entity.table}.parquet")
            assert exported.schema == export_schema(entity)
            stored = rows_of(target.iter_active(entity, 7), entity)
            assert rows_of(exported.to_batches(), entity) == stored, entity.name
    finally:
        target.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_patched_exports_equal_the_target(tmp_path: Path, dialect: str) -> None:
    out = tmp_path / "out"
    v1, v2, v3 = (f(tmp_path / f"{f.__name__}.csv") for f in (export_v1, export_v2, export_v3))
    steps: list[tuple[Path, dict[str, Any]]] = [
        (v1, {"full": True}), (v2, {}), (v2, {"full": True}), (v3, {"full": True}),
        (v1, {"full": True}), (v3, {"full": True, "hard_delete": True})]
    with target_for(dialect, str(out)) as url:
        for path, extra in steps:
            state, _ = sync(path, out, target={"url": url}, allow_mass_delete=True,
                            batch_size=4, **extra)
            assert state.is_completed(), state.message
            assert_export_is_target(out, url)
        exports = {p: p.stat().st_mtime_ns for p in (out / EXPORTS).glob("*.parquet")}
        sync(v3, out, target={"url": url}, full=True)  # nothing changed: nothing rewritten
        assert {p: p.stat().st_mtime_ns for p in exports} == exports
        for path in exports:  # a copy of the output folder (new mtimes) is still patched
            path.write_bytes(path.read_bytes())
        state, _ = sync(v2, out, target={"url": url}, full=True, allow_mass_delete=True)
        assert state.is_completed(), state.message
        assert_export_is_target(out, url)
        for manifest in (out / EXPORTS / STATE_DIR).glob("*.json"):
            manifest.unlink()  # no trusted previous export: rewritten from the target
        state, _ = sync(v1, out, target={"url": url}, full=True, allow_mass_delete=True)
        assert state.is_completed(), state.message
        assert_export_is_target(out, url)


def test_a_replaced_export_is_not_patched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    v1, v2 = export_v1(tmp_path / "v1.csv"), export_v2(tmp_path / "v2.csv")
    sync(v1, out, full=True)
    customers = out / EXPORTS / "customers.parquet"
    pq.write_table(pq.read_table(customers).slice(0, 3), customers)  # someone's edit
    state, _ = sync(v2, out, full=True, allow_mass_delete=True)
    assert state.is_completed(), state.message
    assert_export_is_target(out, f"sqlite:///{out}/magsync.sqlite")


def test_an_export_of_other_columns_is_rewritten(tmp_path: Path) -> None:
    """An export an older release wrote (other columns), with a manifest that vouches for
    it, is rewritten from the target rather than patched."""
    out = tmp_path / "out"
    v1, v2 = export_v1(tmp_path / "v1.csv"), export_v2(tmp_path / "v2.csv")
    sync(v1, out, full=True)
    customers = out / EXPORTS / "customers.parquet"
    pq.write_table(pq.read_table(customers).drop_columns(["taxvat"]), customers)
    manifest = out / EXPORTS / STATE_DIR / "customers.json"
    manifest.write_text(json.dumps({"rows": pq.read_metadata(customers).num_rows,
                                    "fingerprint": fingerprint(customers)}))
    state, _ = sync(v2, out, full=True, allow_mass_delete=True)
    assert state.is_completed(), state.message
    assert_export_is_target(out, f"sqlite:///{out}/magsync.sqlite")
