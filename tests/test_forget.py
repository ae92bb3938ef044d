"""Erasure on request end to end: a sentinel customer synced through several runs (history
versions, faults, report records, Data Docs, a killed run's staging), then `magsync forget`;
afterwards every file of the output folder (raw bytes, and each Parquet and Arrow file
decoded: values, key-value metadata, column statistics) and the target are searched for
the sentinel's email, names and phone. Later syncs skip it (`suppressed`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from magsync.flows.cli import main
from magsync.flows.crash import CRASH_ENV
from magsync.load import history, suppression
from magsync.load.forget import customer_key
from magsync.load.idmap import Entry, IdMap
from magsync.transform.batch import RawBatch
from magsync.transform.schema import ADDRESS, CUSTOMER, KEY_COL
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.scan import decoded_texts
from tests.servers import fresh_database
from tests.synchelp import EXPORTS, db, sync
from tests.test_crash import forked

EMAIL, FIRST, LAST, PHONE = ("Zorblax.Quintessa@Erasure-Sentinel.test", "Quorvindel",
                             "Zyxwaltham", "+44 7999 314159")
SENTINELS = (EMAIL.lower(), FIRST.lower(), LAST.lower(), "7999 314159")
N = 8
KEY = "s" * 16 + "-forget-pii-key"
MINE = {"_address_firstname": FIRST, "_address_lastname": LAST}


def input_csv(path: Path, *, city: str = "Sentinelcity", faults: bool = False,
              other_city: str = "City") -> Path:
    rows = [customer_row(f"other{i}@example.com", first=f"Other{i}", last=f"Person{i}",
                         **address_fields(city=f"{other_city}{i}", phone=f"+44 100 200 {i}"))
            for i in range(1, N + 1)]
    rows.append(customer_row(EMAIL, first=FIRST, last=LAST,
                             **address_fields(city=city, phone=PHONE, **MINE)))
    rows.append(continuation(city="Second", phone=PHONE, **MINE))
    if faults:  # an unknown country (a fault keyed by the sentinel), a mistyped email
        rows.append(continuation(city="Third", phone=PHONE, country="XX", **MINE))
        rows.append(customer_row(f"{EMAIL} typo", first=FIRST, last=LAST))
    return write_csv(path, rows)


def texts_of(path: Path) -> list[str]:
    """The file's raw bytes, and decoded, every value, key-value metadata entry and column
    statistic of a Parquet or Arrow file."""
    return [path.read_bytes().decode("latin-1"), *decoded_texts(path)]


def leaks(out: Path, needles: tuple[str, ...] = SENTINELS) -> set[tuple[str, str]]:
    """(file, sentinel) for every sentinel value found anywhere under `out`."""
    found = set()
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = "\n".join(texts_of(path)).lower()
        found |= {(str(path.relative_to(out)), s) for s in needles if s in text}
    return found


def others(out: Path) -> dict[str, Any]:
    """Everything of the other customers: target rows, exports and history."""
    mine = EMAIL.lower()
    with db(out) as conn:
        snap: dict[str, Any] = {t: sorted(r for r in conn.execute(f"SELECT * FROM {t}")
                                          if mine not in repr(r).lower())
                                for t in ("customers", "customer_addresses", "customer_groups")}
    for entity in (CUSTOMER, ADDRESS):
        exported = pq.read_table(out / EXPORTS / f"{entity.table}.parquet").to_pylist()
        snap[entity.table] = sorted(repr(r) for r in exported if mine not in repr(r).lower())
        versions = history.read_history(out / EXPORTS, entity).to_pylist()
        snap[f"history {entity.table}"] = sorted(repr(r) for r in versions
                                                 if mine not in repr(r).lower())
    return snap


def synced(tmp_path: Path, **settings: Any) -> Path:
    """Three runs with the sentinel (created; updated with faults; a run killed in its
    merge, leaving staging and a partial report) into a SQLite target."""
    out = tmp_path / "out"
    for name, src in (("v1", input_csv(tmp_path / "v1.csv")),
                      ("v2", input_csv(tmp_path / "v2.csv", city="Moved", faults=True))):
        _, report = sync(src, out, full=True, max_fault_ratio=0.5, **settings)
        assert report["status"] == "done", (name, report)
    url = f"sqlite:///{out / 'magsync.sqlite'}"
    env = {"MAGSYNC_EXPORTS__PII_KEY": settings["exports"]["pii_key"],
           "MAGSYNC_EXPORTS__PII": json.dumps(settings["exports"]["pii"])} \
        if "exports" in settings else {}
    v3 = input_csv(tmp_path / "v3.csv", city="Crashcity", other_city="Town")
    assert forked(v3, out, url, **env, **{CRASH_ENV: "merge-transaction"}) == -signal.SIGKILL
    return out


def forget(out: Path, *args: str) -> int:
    return main(["forget", "--email", EMAIL, "--website", "base", "--output-dir", str(out),
                 *args])


@pytest.mark.parametrize("key", [b"short", b"k" * 64, b"long" * 40])
def test_suppression_digests_are_hmac_sha256(key: bytes) -> None:
    """The sync's matcher (precomputed HMAC pads) agrees with the hmac module, which
    `forget` writes with; raw values are trimmed and lower-cased as the pipeline does."""
    emails = suppression.email_digest(key, 1, EMAIL)
    assert emails == hmac.new(key, b"magsync.suppress.email\x1f1\x1f" + EMAIL.lower().encode(),
                              hashlib.sha256).hexdigest()
    matcher = suppression.Matcher([key], {emails, suppression.id_digest(key, 42)}, 0)
    frame = pd.DataFrame({"customer_id": ["42", None, "7", None],
                          "website_id": ["2", "1", "1", " 1 "],
                          "email": [None, "someone@else.test", EMAIL, f"  {EMAIL.upper()} "]},
                         dtype="str")
    assert matcher.hits(RawBatch(CUSTOMER, frame)).tolist() == [True, False, True, True]
    addresses = pd.DataFrame({"customer_key": ['[42]', '[1,"a@b.c"]', f'[1,"{EMAIL.lower()}"]']},
                             dtype="str")
    assert matcher.hits(RawBatch(ADDRESS, addresses)).tolist() == [True, False, True]


def test_forget_leaves_no_byte_of_the_customer(tmp_path: Path) -> None:
    out = synced(tmp_path)
    with db(out) as conn:  # what a hard delete leaves where SQLite lacks SECURE_DELETE
        conn.execute("PRAGMA secure_delete = OFF")
        conn.execute("INSERT INTO customers (source, record_key, email, firstname, lastname, "
                     "row_hash, run_id, loaded_at, deleted_at) VALUES ('default', '[9]', ?, ?, "
                     "?, 0, 'r', '2020-01-01', '2020-01-01')", (EMAIL.lower(), FIRST, LAST))
        conn.execute("DELETE FROM customers WHERE record_key = '[9]'")
    mine = customer_key(1, EMAIL.lower())
    idmap = IdMap(out / "migrate-state.sqlite", "default\x1fhttps://new.example/")
    idmap.put("customer", [Entry(mine, "done", 77, 1, EMAIL.lower()),
                           Entry('[1,"other1@example.com"]', "done", 78, 1, "other1@example.com")],
              "r1")
    idmap.put("address", [Entry(f"[{mine},1]", "done", 90, 77, None, mine)], "r1")
    idmap.close()
    before = leaks(out)
    where = {f.split("/")[0] for f, _ in before}
    assert {"magsync.sqlite", "exports", "reports", "staging", "migrate-state.sqlite"} <= where
    assert any(f.startswith(f"{EXPORTS}/history/") for f, _ in before)
    assert any("data_docs" in f for f, _ in before), "the mistyped email's Data Docs"
    assert {s for _, s in before} == set(SENTINELS)
    kept = others(out)

    # the real console script, in its own process
    done = subprocess.run([sys.executable, "-m", "magsync.flows.cli", "forget", "--email",
                           EMAIL.upper(), "--website", "1", "--output-dir", str(out),
                           "--json"], capture_output=True, text=True, env=os.environ,
                          check=False)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert leaks(out) == set()
    assert others(out) == kept
    assert record["identifier"] == "email+website"
    assert record["counts"]["customers"] == 1 and record["counts"]["addresses"] == 2
    assert record["counts"]["faults"] >= 2 and record["counts"]["suppression_rows"] == 1
    assert record["counts"]["id_map_entries"] == 2
    with sqlite3.connect(out / "migrate-state.sqlite") as conn:
        assert conn.execute("SELECT source_key FROM idmap").fetchall() == \
            [('[1,"other1@example.com"]',)]
    assert f"{EXPORTS}/customers.parquet" in record["files"]["rewritten"]
    assert any(f.startswith("staging/") for f in record["files"]["rewritten"])
    summary = json.loads((Path(record["report"]) / "summary.json").read_text())
    assert summary["erasure"]["files"] == record["files"]
    assert (Path(record["report"]) / "index.html").is_file()
    with db(out) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT kind, key_id FROM magsync_suppression").fetchall()
    assert [r[0] for r in rows] == ["email"] and rows[0][1].startswith("target:")


def test_dry_run_changes_nothing_and_lists_the_files(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = synced(tmp_path)
    with db(out) as conn:  # any reader rolls back the killed run's hot journal first
        conn.execute("SELECT count(*) FROM customers").fetchone()

    def hashes() -> dict[str, str]:
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*")) if p.is_file()}
    before = hashes()
    capsys.readouterr()
    assert forget(out, "--dry-run", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert hashes() == before
    files = record["files"]["rewritten"]
    target_files = {f for f, _ in leaks(out) if f.startswith("magsync.sqlite")}
    assert {f for f, _ in leaks(out)} - target_files <= \
        set(files) | set(record["files"]["removed"])
    assert record["counts"]["customers"] == 1 and "suppression_rows" not in record["counts"]


def test_a_full_sync_afterwards_skips_the_customer(tmp_path: Path) -> None:
    out = synced(tmp_path)
    assert forget(out) == 0
    kept = others(out)
    _, report = sync(input_csv(tmp_path / "v1.csv"), out, full=True, max_fault_ratio=0.5)
    assert report["status"] == "done", report
    assert report["counts"]["customer"].get("suppressed") == 1
    assert report["counts"]["address"].get("suppressed") == 2
    assert "deleted" not in report["counts"]["customer"]
    assert "deleted" not in report["counts"]["address"]
    assert report["conservation"] == "ok"
    assert leaks(out) == set()
    after = others(out)  # the killed run's other changes are undone: its input is gone
    for table in ("customers", "customer_addresses"):
        assert len(after[table]) == len(kept[table]) == N
    # an incremental run with the typo'd record fixed: still suppressed
    _, again = sync(input_csv(tmp_path / "v2.csv", city="Again"), out, max_fault_ratio=0.5)
    assert again["counts"]["customer"].get("suppressed") == 1
    assert leaks(out) == set()


def test_forget_under_a_pii_key_and_a_hashing_policy(tmp_path: Path) -> None:
    """Exports that hash the email and the keys: the rows go by their hashed forms, and
    the suppression digest is keyed with the PII key."""
    policy = {"customer": {"email": "hash", KEY_COL: "hash"},
              "address": {"customer_key": "hash", KEY_COL: "hash"}}
    exports = {"pii": policy, "pii_key": KEY}
    out = synced(tmp_path, exports=exports)
    hashed = hmac.new(KEY.encode(), EMAIL.lower().encode(), hashlib.sha256).hexdigest()
    assert ((f"{EXPORTS}/customers.parquet", hashed)) in leaks(out, (hashed,))
    env = {"MAGSYNC_EXPORTS__PII_KEY": KEY, "MAGSYNC_EXPORTS__PII": json.dumps(policy)}
    os.environ.update(env)
    try:
        assert forget(out) == 0
    finally:
        for name in env:
            os.environ.pop(name)
    assert leaks(out, (*SENTINELS, hashed)) == set()
    with db(out) as conn:
        assert conn.execute("SELECT key_id FROM magsync_suppression").fetchone()[0] \
            .startswith("pii:")
    _, report = sync(input_csv(tmp_path / "v1.csv"), out, full=True, exports=exports)
    assert report["counts"]["customer"].get("suppressed") == 1
    assert leaks(out, (*SENTINELS, hashed)) == set()


def test_forget_on_postgresql(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with fresh_database("postgresql") as url:
        for src in (input_csv(tmp_path / "v1.csv"),
                    input_csv(tmp_path / "v2.csv", city="Moved", faults=True)):
            _, report = sync(src, out, full=True, max_fault_ratio=0.5,
                             target={"url": url})
            assert report["status"] == "done", report

        def in_target() -> set[str]:
            engine = sa.create_engine(url)
            found = set()
            with engine.connect() as conn:
                tables = conn.execute(sa.text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public'")).scalars().all()
                for table in tables:
                    for (text,) in conn.execute(sa.text(f'SELECT t::text FROM "{table}" t')):
                        found |= {s for s in SENTINELS if s in text.lower()}
            engine.dispose()
            return found
        assert in_target() == set(SENTINELS)
        assert main(["forget", "--customer-id", "1", "--output-dir", str(out), "--target",
                     url]) == 0, "no customer 1 in a CSV store: nothing goes"
        assert in_target() == set(SENTINELS)
        assert forget(out, "--target", url) == 0
        assert in_target() == set()
        assert leaks(out) == set()
        _, report = sync(input_csv(tmp_path / "v1.csv"), out, full=True, target={"url": url})
        assert report["counts"]["customer"].get("suppressed") == 1
        assert in_target() == set()
