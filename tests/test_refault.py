"""A re-sync re-reports the records still faulted as before from the fault table, without
typing or validating them, and ends exactly as a run that validates everything
(`revalidate`); with no row left to validate, Great Expectations is never imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from magsync.load.refault import still_faulted
from magsync.transform.validate import BUNDLED_SUITES
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.servers import target_for
from tests.synchelp import records, sync

ROOT = Path(__file__).resolve().parent.parent
NOTE = "record(s) still faulted (unchanged since the last run, not revalidated"


def _customer(i: int, *, country: str = "GB", **more: str) -> list[list[str]]:
    rows = [customer_row(f"c{i}@example.com", first=f"F{i}",
                         **address_fields(city=f"City{i}", country=country), **more)]
    if i % 2 == 0:
        rows.append(continuation(city=f"Second{i}"))
    return rows


def stable_faults() -> list[list[str]]:
    """Customers c1 to c9; faults that depend on the record alone: c2 without a
    last name and c3 with a bad email (validation), c4 with a bad date (typing), and an
    address of c6 in no known country (validation)."""
    faults: dict[int, dict[str, str]] = {2: {"last": ""}, 4: {"dob": "1985-13-45 00:00:00"},
                                         6: {"country": "XX"}}
    rows: list[list[str]] = []
    for i in range(1, 10):
        if i == 3:
            rows.append(customer_row("c3@nodot", first="F3", **address_fields()))
        else:
            rows += _customer(i, **faults.get(i, {}))
    return rows


def timely_faults() -> list[list[str]]:
    """stable_faults and c10 born in the future: `run_started` moves, so it is validated
    every run."""
    return [*stable_faults(), *_customer(10, dob="2999-01-01 00:00:00")]


def mixed_faults() -> list[list[str]]:
    """timely_faults and a fault that another record causes: c11 twice (the first loses
    as a duplicate, the second lacks a last name)."""
    return [*timely_faults(), *_customer(11), *_customer(11, last="")]


REFERENCES: dict[str, dict[str, Any]] = {
    "again": {},
    # the road every record took before: every record typed, new and changed ones validated
    "road": {"skip_unchanged": False},
    "revalidate": {"revalidate": True},  # every record typed and validated
}


@contextmanager
def targets(dialect: str, tmp: Path) -> Iterator[dict[str, tuple[Path, str]]]:
    """An empty target of the dialect per road: re-reporting, and the references."""
    with ExitStack() as stack:
        out: dict[str, tuple[Path, str]] = {}
        for name in REFERENCES:
            (tmp / name).mkdir()
            folder = tmp / name / "out"
            out[name] = (folder, stack.enter_context(target_for(dialect, str(folder))))
        yield out


def run(path: Path, out: Path, url: str, **extra: Any) -> dict[str, Any]:
    state, report = sync(path, out, target={"url": url}, full=True, max_fault_ratio=0.9,
                         **extra)
    assert state.is_completed(), state.message
    return report


def fault_table(url: str) -> list[tuple[Any, ...]]:
    """The fault table less ids, run ids and times; cleared as whether it is."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        result = conn.execute(sa.text("SELECT * FROM magsync_faults"))
        names = list(result.keys())
        rows = [tuple((n, v is not None) if n == "cleared_run_id" else (n, v)
                      for n, v in zip(names, row, strict=True)
                      if n not in {"id", "run_id", "created_at"})
                for row in result]
    engine.dispose()
    return sorted(rows, key=repr)


def outcome(report: dict[str, Any], url: str) -> dict[str, Any]:
    listed = sorted((tuple(sorted((k, v) for k, v in r.items() if k != "run_id"))
                     for r in records(report)), key=repr)
    return {"counts": report["counts"], "received": report["received"],
            "conservation": report["conservation"], "records": listed,
            "faults": fault_table(url)}


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_rerun_ends_as_without_re_reporting(dialect: str, tmp_path: Path) -> None:
    """The same records synced twice, the second time a line further down in another
    file (the faults' places move): re-reporting ends as either reference."""
    first = write_csv(tmp_path / "v1.csv", mixed_faults())
    moved = write_csv(tmp_path / "v2.csv", [*_customer(0), *mixed_faults()])
    with targets(dialect, tmp_path) as found:
        reports = {}
        for name, (out, url) in found.items():
            run(first, out, url)
            reports[name] = run(moved, out, url, **REFERENCES[name])
        outcomes = {name: outcome(reports[name], url) for name, (_, url) in found.items()}
    assert outcomes["again"] == outcomes["road"] == outcomes["revalidate"]
    again = reports.pop("again")
    # c2, c3 (validation) and c4 (typing) and c6's address, not c10 (the clock), nor
    # c11 (its first record's fault is the other's doing), nor c3's address (integrity)
    assert again["refaulted_unvalidated"] == {"customer": 3, "address": 1}
    assert any(f"4 {NOTE}" in n for n in again["notes"]), again["notes"]
    for other in reports.values():
        assert other["refaulted_unvalidated"] == {}
        assert not any(NOTE in n for n in other["notes"])
    lines = {(r["key"], r["rule"]): r["source_line"] for r in records(again)
             if r["action"] == "faulted"}
    assert lines[('[1,"c2@example.com"]', "lastname_required")] == 5
    assert lines[('[1,"c4@example.com"]', "bad_date")] == 8
    assert ('[1,"c10@example.com"]', "dob_not_future") in lines  # validated again
    assert ('[1,"c11@example.com"]', "lastname_required") in lines


def test_an_edited_suite_or_revalidate_validates_the_faulted_again(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", stable_faults())
    out = tmp_path / "out"
    url = f"sqlite:///{out}/magsync.sqlite"
    run(path, out, url)
    assert run(path, out, url)["refaulted_unvalidated"] == {"customer": 3, "address": 1}
    assert run(path, out, url, revalidate=True)["refaulted_unvalidated"] == {}
    suites = tmp_path / "suites"
    shutil.copytree(BUNDLED_SUITES, suites)
    customer = json.loads((suites / "customer.json").read_text())
    customer["meta"] = {**customer.get("meta", {}), "edited": True}
    (suites / "customer.json").write_text(json.dumps(customer))
    edited = run(path, out, url, expectations_dir=str(suites))
    assert edited["refaulted_unvalidated"] == {}
    assert edited["counts"]["customer"]["faulted"] == 3
    # and under the edited suites, the next run re-reports again
    assert run(path, out, url, expectations_dir=str(suites))["refaulted_unvalidated"] == {
        "customer": 3, "address": 1}


CHILD = textwrap.dedent("""
    import json, sys
    from magsync.flows.sync_steps import sync_outcome
    report, error = sync_outcome(json.loads(sys.argv[1]), None)
    print(json.dumps({"error": error, "report": report,
                      "gx": "great_expectations" in sys.modules}))
""")


def child_run(path: Path, out: Path, **extra: Any) -> dict[str, Any]:
    """A sync in a fresh interpreter: its report, and whether it imported GX."""
    return child_sync({"source": {"kind": "csv", "input": str(path)}, "output_dir": str(out),
                       "full": True, "max_fault_ratio": 0.9, **extra})


def child_sync(overrides: dict[str, Any]) -> dict[str, Any]:
    """A sync of these settings in a fresh interpreter: its report, and whether it
    imported GX."""
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(overrides)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] is None, result["error"]
    return result


def test_an_unchanged_rerun_never_imports_great_expectations(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", stable_faults())
    out = tmp_path / "out"
    first = run(path, out, f"sqlite:///{out}/magsync.sqlite")  # in-process: imports GX
    assert first["counts"]["customer"]["faulted"] == 3
    second = child_run(path, out)
    assert not second["gx"]
    assert second["report"]["counts"] == {
        entity: {"unchanged": c["created"], **({"faulted": c["faulted"]} if "faulted" in c
                                                else {})}
        for entity, c in first["counts"].items()}
    assert second["report"]["refaulted_unvalidated"] == {"customer": 3, "address": 1}


def test_an_unchanged_soap_resync_never_imports_great_expectations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network source loads Great Expectations while it waits, but only once a row
    needs validating."""
    from magsync.flows.sync_steps import sync_outcome
    from magsync.magento.emulator import run_emulator
    from tests.test_soap_sync import KEY, SOAP, simple_store

    monkeypatch.setenv("MAGSYNC_SOURCE__API_KEY", KEY)
    store = simple_store([1, 3])
    store.put_customer({"customer_id": 2, "email": "c2@example.com", "website_id": 1,
                        "store_id": 1, "group_id": 1, "firstname": "Ann",
                        "lastname": ""})  # faults its validation
    with run_emulator(store, users={"etl": KEY}) as emu:
        overrides = {"source": {**SOAP, "url": emu.url}, "output_dir": str(tmp_path / "out"),
                     "full": True, "max_fault_ratio": 0.9}
        first, error = sync_outcome(overrides, None)
        assert error is None, error
        second = child_sync(overrides)
    assert first["counts"]["customer"] == {"created": 2, "faulted": 1}
    assert not second["gx"]
    assert second["report"]["counts"]["customer"] == {"unchanged": 2, "faulted": 1}
    assert second["report"]["refaulted_unvalidated"] == {"customer": 1}


def _row(stage: str = "validate", rule: str = "email_syntax", column: str | None = "email",
         key: str = "k1", digest: int | None = 7, suite: str = "s") -> dict[str, Any]:
    return {"entity": "customer", "record_key": key, "stage": stage, "rule": rule,
            "column_name": column, "value": "x", "message": "m", "raw_digest": digest,
            "suite_digest": suite}


def _stable(entity: str) -> frozenset[tuple[str, str | None]]:
    return frozenset({("email_syntax", "email")})


@pytest.mark.parametrize(("rows", "kept"), [
    ([_row()], True),
    ([_row(stage="normalise", rule="bad_date", column="dob")], True),
    ([_row(), _row(stage="normalise", rule="bad_date", column="dob")], True),
    ([_row(rule="dob_not_future", column="dob")], False),  # not a stable rule
    ([_row(stage="integrity", rule="duplicate_key", column=None)], False),
    ([_row(), _row(stage="integrity", rule="duplicate_key", column=None, digest=8)], False),
    ([_row(), _row(digest=8)], False),  # two records of the key faulted
    ([_row(digest=None)], False),  # stored before digests
    ([_row(suite="other")], False),  # another suite judged it
    ([_row(), _row(key="k2")], False),  # two keys for one digest: neither
])
def test_which_stored_faults_may_be_re_reported(rows: list[dict[str, Any]],
                                                kept: bool) -> None:
    found = still_faulted(rows, "s", _stable)
    assert (7 in found.get("customer", {})) is kept
