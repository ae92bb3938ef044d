"""Re-syncs skip the records whose raw values did not change, and end exactly as the full
road (skip_unchanged = false) ends: same target rows, exports, history and report."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from hashlib import blake2b
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from magsync.transform.normalise import NORMALISE_VERSION
from magsync.transform.rawdigest import context_digest, raw_digests
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.servers import target_for
from tests.synchelp import ENTITY_TABLES, EXPORTS, records, sync

FIXTURE = Path(__file__).parent / "fixtures" / "stores" / "spine-0.1.0-sample.sqlite"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
RUN_COLUMNS = {"run_id", "loaded_at"}
HISTORY_RUN_COLUMNS = {"valid_from", "valid_to", "run_id"}
OTHER_CODES = {"admin": 0, "base": 1, "other": 7}  # types nothing differently
OTHER_GENDERS = {"Male": 2, "Female": 1}  # every Female customer types differently


def _customer(i: int, first: str | None = None, city: str | None = None,
              **more: str) -> list[list[str]]:
    rows = [customer_row(f"c{i}@example.com", first=first or f"F{i}",
                         **address_fields(city=city or f"City{i}"), **more)]
    if i % 3 == 0:
        rows.append(continuation(city=f"Second{i}"))
    return rows


def export_v1(path: Path, without: tuple[int, ...] = ()) -> Path:
    return write_csv(path, [r for i in range(1, 21) if i not in without
                            for r in _customer(i)])


def export_v2(path: Path, *, settled: bool = False) -> Path:
    """c2 renamed, c5 moved, c7 and c8 gone, c21 new, c9 back as it was (restored), c4
    faulted, c10 twice (an edit, then as stored; `settled`: the edit alone), c12 twice as
    stored, c14 with a space that typing trims (unchanged, but not its raw digest)."""
    rows: list[list[str]] = []
    for i in [*range(1, 7), *range(9, 22)]:
        if i == 2:
            rows += _customer(i, first="Renamed")
        elif i == 4:
            rows += _customer(i, dob="1985-13-45 00:00:00")
        elif i == 5:
            rows += _customer(i, city="Moved")
        elif i == 10:
            rows += _customer(i, first="Changed10") + ([] if settled else _customer(i))
        elif i == 12:
            rows += _customer(i) + _customer(i)
        elif i == 14:
            rows += _customer(i, first="F14 ")
        else:
            rows += _customer(i)
    return write_csv(path, rows)


def _steps(tmp: Path) -> list[tuple[Path, dict[str, Any]]]:
    v1, v2 = export_v1(tmp / "v1.csv"), export_v2(tmp / "v2.csv")
    v2_settled = export_v2(tmp / "v2-settled.csv", settled=True)
    return [
        (v1, {}),
        (export_v1(tmp / "v1-without-c9.csv", without=(9,)), {}),  # c9 soft-deleted
        (v2, {}),
        # every raw digest changes, no typed value
        (v2_settled, {"website_codes": OTHER_CODES}),
        (v2_settled, {"website_codes": OTHER_CODES, "gender_labels": OTHER_GENDERS}),
        (v2_settled, {"website_codes": OTHER_CODES, "gender_labels": OTHER_GENDERS}),
    ]


def target_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every entity row, without run_id and loaded_at; deleted_at as whether it is set."""
    engine = sa.create_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in ENTITY_TABLES:
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            names = list(result.keys())
            rows = [tuple((n, v is not None) if n == "deleted_at" else (n, v)
                          for n, v in zip(names, row, strict=True) if n not in RUN_COLUMNS)
                    for row in result]
            out[table] = sorted(rows, key=repr)
    engine.dispose()
    return out


def exports(out: Path) -> dict[str, Any]:
    """The current exports, and every history version less its run's id and times."""
    found: dict[str, Any] = {}
    for name in ENTITY_TABLES:
        table = pq.read_table(out / EXPORTS / f"{name}.parquet")
        assert "raw_digest" not in table.schema.names  # never exported
        found[name] = (table.schema.names, sorted(table.to_pylist(), key=repr))
        versions = []
        for path in sorted((out / EXPORTS / "history" / name).glob("run_id=*.parquet")):
            rows = pq.read_table(path).to_pylist()
            assert not rows or "raw_digest" not in rows[0]
            versions.append(sorted(({k: v for k, v in r.items()
                                     if k not in HISTORY_RUN_COLUMNS} for r in rows),
                                   key=repr))
        found[f"{name} history"] = versions
    return found


def outcome(report: dict[str, Any], url: str, out: Path) -> dict[str, Any]:
    """What a run must leave the same with or without the skip."""
    listed = sorted((tuple(sorted((k, v) for k, v in r.items() if k != "run_id"))
                     for r in records(report)), key=repr)
    return {"counts": report["counts"], "received": report["received"],
            "conservation": report["conservation"], "records": listed,
            "rows": target_rows(url), "exports": exports(out)}


@contextmanager
def two_targets(dialect: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """Two empty targets of the dialect: one synced with the skip, one without."""
    with ExitStack() as stack:
        urls = []
        for name in ("skip", "full"):
            (tmp / name).mkdir()
            urls.append(stack.enter_context(target_for(dialect, str(tmp / name / "out"))))
        yield urls[0], urls[1]


def run(path: Path, out: Path, url: str, *, skip: bool, batch_size: int = 4,
        **extra: Any) -> dict[str, Any]:
    """A full sync; small batches by default, so records of one key cross batches."""
    state, report = sync(path, out, target={"url": url}, full=True, allow_mass_delete=True,
                         max_fault_ratio=0.5, batch_size=batch_size, skip_unchanged=skip,
                         **extra)
    assert state.is_completed(), state.message
    return report


def read(report: dict[str, Any]) -> dict[str, int]:
    """Records read from the input (groups here are derived from customers, not read)."""
    return {e: n for e, n in report["received"].items() if e != "group"}


def raw_column(url: str, table: str = "customers") -> dict[str, int | None]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT record_key, raw_digest FROM {table} "
                                    "WHERE deleted_at IS NULL")).all()
    engine.dispose()
    return dict(rows)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_resync_with_the_skip_ends_as_without_it(dialect: str, tmp_path: Path) -> None:
    steps = _steps(tmp_path)
    with two_targets(dialect, tmp_path) as (skip_url, full_url):
        digests_before_settings: dict[str, int | None] = {}
        digests_step2: dict[str, int | None] = {}
        history_at_3: dict[str, Any] = {}
        for n, (path, extra) in enumerate(steps, start=1):
            skipped = run(path, tmp_path / "skip" / "out", skip_url, skip=True, **extra)
            full = run(path, tmp_path / "full" / "out", full_url, skip=False, **extra)
            assert outcome(skipped, skip_url, tmp_path / "skip" / "out") == outcome(
                full, full_url, tmp_path / "full" / "out"), f"step {n}"
            assert full["skipped_unchanged"] == {}
            assert full["typed"] == read(full)
            if n == 2:
                digests_step2 = raw_column(skip_url)
            if n == 3:  # the scenario did what it says
                digests_before_settings = raw_column(skip_url)
                actions = {(r["key"], r["action"]) for r in records(skipped)}
                assert ('[1,"c9@example.com"]', "restored") in actions
                assert ('[1,"c2@example.com"]', "updated") in actions
                assert ('[1,"c21@example.com"]', "created") in actions
                assert ('[1,"c7@example.com"]', "deleted") in actions
                assert ('[1,"c10@example.com"]', "updated") in actions
                assert ('[1,"c14@example.com"]', "updated") not in actions
                # c14's raw digest is refreshed (a space typing trims), c1's is kept
                assert digests_before_settings['[1,"c14@example.com"]'] != \
                    digests_step2['[1,"c14@example.com"]']
                assert digests_before_settings['[1,"c1@example.com"]'] == \
                    digests_step2['[1,"c1@example.com"]']
                assert skipped["skipped_unchanged"]["customer"] > 0
                history_at_3 = exports(tmp_path / "skip" / "out")
            if n == 4:  # re-typed everything, changed nothing but the raw digests
                assert skipped["typed"] == read(skipped)
                assert skipped["skipped_unchanged"] == {}
                assert set(skipped["counts"]["customer"]) == {"unchanged", "faulted"}
                after = raw_column(skip_url)
                assert after.keys() == digests_before_settings.keys()
                kept = {k for k in after if after[k] == digests_before_settings[k]}
                assert kept == {'[1,"c4@example.com"]'}  # its record faults: not re-stored
                assert None not in after.values()
                # and wrote no history version: a raw digest is no change
                assert exports(tmp_path / "skip" / "out") == history_at_3
            if n == 5:
                assert skipped["counts"]["customer"].get("updated", 0) >= 15, skipped["counts"]
            if n == 6:  # as stored: typed again, only c12's second record; c4 still
                # faults, re-reported from the fault table (load/refault.py)
                assert skipped["typed"]["customer"] == 1
                assert skipped["refaulted_unvalidated"] == {"customer": 1}
                assert skipped["skipped_unchanged"]["customer"] == \
                    skipped["counts"]["customer"]["unchanged"] - 1
        assert raw_column(skip_url) == raw_column(full_url)


def test_unchanged_records_are_not_typed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    url = f"sqlite:///{out}/magsync.sqlite"
    v1, v2 = export_v1(tmp_path / "v1.csv"), export_v2(tmp_path / "v2.csv", settled=True)
    run(v1, out, url, skip=True)
    run(v2, out, url, skip=True)
    again = run(v2, out, url, skip=True)
    counts, received = again["counts"], again["received"]
    skipped, typed = again["skipped_unchanged"], again["typed"]
    refaulted = again["refaulted_unvalidated"]  # still faulted as before (load/refault.py)
    # every record is read and accounted for, and only the faulted ones and the repeats
    # (a duplicate's second record, the batch whose repeat lost to the stored record)
    # are typed again
    assert counts["customer"]["unchanged"] >= 15
    assert skipped["customer"] >= 15
    assert typed["customer"] + skipped["customer"] + refaulted.get("customer", 0) >= \
        received["customer"]
    assert typed["customer"] <= 6
    assert typed["address"] <= 8
    assert skipped["address"] + typed["address"] + refaulted.get("address", 0) >= \
        received["address"]
    assert "updated" not in counts["customer"] and "created" not in counts["customer"]
    # switched off: the same run types everything
    full = run(v2, out, url, skip=False)
    assert full["typed"] == read(full)
    assert full["counts"] == counts


def test_spine_store_upgrades_fills_raw_digests_then_skips(tmp_path: Path) -> None:
    outs = {}
    for name in ("skip", "full"):
        outs[name] = tmp_path / name / "out"
        outs[name].mkdir(parents=True)
        shutil.copy(FIXTURE, outs[name] / "magsync.sqlite")
    urls = {name: f"sqlite:///{out}/magsync.sqlite" for name, out in outs.items()}
    engine = sa.create_engine(urls["skip"])
    with engine.connect() as conn:
        stored_runs = conn.execute(sa.text("SELECT record_key, run_id FROM customers")).all()
    engine.dispose()
    reports = {name: run(SAMPLE, outs[name], urls[name], skip=name == "skip", batch_size=500)
               for name in outs}
    assert outcome(reports["skip"], urls["skip"], outs["skip"]) == outcome(
        reports["full"], urls["full"], outs["full"])
    report = reports["skip"]
    for counts in report["counts"].values():
        assert set(counts) <= {"unchanged", "faulted"}, counts
    assert report["skipped_unchanged"] == {}  # nothing to compare with: typed as before
    engine = sa.create_engine(urls["skip"])
    with engine.connect() as conn:
        for table in ENTITY_TABLES:
            missing = conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE raw_digest "
                                           "IS NULL AND deleted_at IS NULL")).scalar_one()
            assert missing == 0, table
        # the digests were set alone: the rows still name the run that wrote them
        assert conn.execute(sa.text("SELECT record_key, run_id FROM customers")).all() \
            == stored_runs
    engine.dispose()
    again = run(SAMPLE, outs["skip"], urls["skip"], skip=True, batch_size=500)
    assert again["counts"] == report["counts"]
    assert again["skipped_unchanged"] == {e: c["unchanged"]
                                          for e, c in report["counts"].items()
                                          if "unchanged" in c}
    # only records that fault are typed again
    assert sum(again["typed"].values()) <= sum(c.get("faulted", 0)
                                               for c in report["counts"].values())


# -- the raw digest, as documented --------------------------------------------------------

def _reference_digest(text: str) -> int:
    """BLAKE2b-64 of the UTF-8 text, as a big-endian signed integer."""
    return int.from_bytes(blake2b(text.encode("utf-8"), digest_size=8).digest(), "big",
                          signed=True)


def test_raw_digest_is_the_documented_one() -> None:
    labels, codes = {"Male": 1, "Female": 2}, {"admin": 0, "base": 1}
    context = context_digest(labels, codes)
    text = ('{"gender_labels":{"Female":2,"Male":1},"normalise_version":'
            f'{NORMALISE_VERSION},"store_codes":{{"admin":0}},'
            '"website_codes":{"admin":0,"base":1}}')
    assert context == blake2b(text.encode(), digest_size=8).hexdigest()
    frame = pd.DataFrame({"email": pd.Series(["ann@example.com", None, ""], dtype="str"),
                          "firstname": pd.Series(["Zoë", "Bo", None], dtype="str"),
                          "_line": [2, 3, 4], "_source": ["a.csv"] * 3})
    got = raw_digests(frame, context)
    us, rs = "\x1f", "\x1e"
    assert got.tolist() == [
        _reference_digest(f"{context}{us}email{rs}ann@example.com{us}firstname{rs}Zoë"),
        _reference_digest(f"{context}{us}firstname{rs}Bo"),
        _reference_digest(f"{context}{us}email{rs}")]
    # lineage is not part of it; a setting that types values is
    moved = frame.assign(_line=[7, 8, 9], _source="b.csv")
    assert raw_digests(moved, context).tolist() == got.tolist()
    other = raw_digests(frame, context_digest({"Male": 1, "Female": 3}, codes))
    assert not np.isin(other, got).any()
