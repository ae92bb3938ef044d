"""The exports' PII policy end to end: real syncs into SQLite, then every Parquet and Arrow
file under exports/ decoded (values, key-value metadata, row-group statistics) and searched
for the sentinel values planted in the input."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from magsync.flows.crash import CRASH_ENV
from magsync.flows.messages import settings_error
from magsync.flows.settings import load_settings
from magsync.load import history
from magsync.transform.schema import ADDRESS, CUSTOMER, KEY_COL
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.scan import decoded_texts
from tests.synchelp import EXPORTS, db, sync
from tests.test_crash import forked
from tests.test_history_sync import as_of_arrow, as_of_pandas, exported, rows

KEY = "k" * 16 + "-first-pii-key"
OTHER_KEY = "o" * 16 + "-other-pii-key"
POLICY = {"customer": {"email": "hash", "firstname": "mask", "dob": "drop",
                       KEY_COL: "hash"},
          "address": {"telephone": "mask", "customer_key": "hash", KEY_COL: "hash"}}
N = 12


def email(i: int) -> str:
    return f"Zentinel.Mail{i}@Sentinel-Domain.test"


def sentinels(i: int) -> list[str]:
    """The raw values a covered column holds for customer `i` (email as stored: lower)."""
    return [email(i).lower(), f"Zentinelfirst{i}", f"+44 7000 9{i:05d}", f"1971-03-{i:02d}"]


def input_csv(path: Path, *, renamed: int | None = None, without: int | None = None) -> Path:
    out = []
    for i in range(1, N + 1):
        if i == without:
            continue
        first = "Zentinelrenamed" if i == renamed else f"Zentinelfirst{i}"
        out.append(customer_row(email(i), first=first, dob=f"1971-03-{i:02d} 00:00:00",
                                **address_fields(city=f"City{i}", phone=f"+44 7000 9{i:05d}")))
        if i % 3 == 0:
            out.append(continuation(city=f"Second{i}", phone=f"+44 7000 9{i:05d}"))
    return write_csv(path, out)


def decoded(exports: Path) -> list[str]:
    """Every value, key-value metadata entry and row-group statistic of every Parquet and
    Arrow file under `exports`, as text."""
    files = sorted(exports.rglob("*.parquet")) + sorted(exports.rglob("*.arrow"))
    assert files
    return [text for path in files for text in decoded_texts(path)]


def leaks(exports: Path) -> set[str]:
    planted = {s for i in range(1, N + 1) for s in sentinels(i)}
    return {s for text in decoded(exports) for s in planted if s.lower() in text.lower()}


def hashed_emails(out: Path) -> set[str]:
    return set(exported(out / EXPORTS, CUSTOMER)["email"])


def test_covered_columns_leave_no_raw_value_in_any_export(tmp_path: Path) -> None:
    src = input_csv(tmp_path / "in.csv")
    plain = tmp_path / "plain"
    assert sync(src, plain, full=True)[1]["status"] == "done"
    assert len(leaks(plain / EXPORTS)) == 4 * N, "the search finds every planted value"

    out = tmp_path / "out"
    _, report = sync(src, out, full=True, exports={"pii": POLICY, "pii_key": KEY})
    assert report["status"] == "done", report
    assert leaks(out / EXPORTS) == set()
    with db(out) as conn:  # the SQL target keeps the values
        assert conn.execute("SELECT count(*) FROM customers WHERE email = ?",
                            (email(1).lower(),)).fetchone() == (1,)

    customers = exported(out / EXPORTS, CUSTOMER)
    assert "dob" not in customers.columns
    want = hmac.new(KEY.encode(), email(1).lower().encode(), hashlib.sha256).hexdigest()
    assert want in set(customers["email"])
    assert sorted(customers["firstname"]) == ["Z***"] * N
    phones = exported(out / EXPORTS, ADDRESS)["telephone"]
    assert {f"***{i:02d}" for i in range(1, N + 1)} == set(phones)
    # the hashed keys still join: each address's customer_key is its customer's record_key
    customer_keys = set(history.read_history(out / EXPORTS, CUSTOMER)[KEY_COL].to_pylist())
    assert set(exported(out / EXPORTS, ADDRESS)["customer_key"]) <= customer_keys
    assert len(customer_keys) == N


def test_hashes_stable_across_runs_and_keyed(tmp_path: Path) -> None:
    src = input_csv(tmp_path / "in.csv")
    runs = {}
    for name, key in (("a", KEY), ("b", KEY), ("c", OTHER_KEY)):
        _, report = sync(src, tmp_path / name, full=True,
                         exports={"pii": POLICY, "pii_key": key})
        assert report["status"] == "done", report
        runs[name] = hashed_emails(tmp_path / name)
    assert runs["a"] == runs["b"] and len(runs["a"]) == N
    assert not runs["a"] & runs["c"]


def test_a_policy_change_rewrites_the_exports_once(tmp_path: Path) -> None:
    src, out = input_csv(tmp_path / "in.csv"), tmp_path / "out"
    settings: dict[str, Any] = {"exports": {"pii": POLICY, "pii_key": KEY}}
    sync(src, out, full=True, **settings)
    files = {p: p.stat().st_mtime_ns for p in (out / EXPORTS).glob("*.parquet")}
    _, same = sync(src, out, full=True, **settings)  # hashed keys still match: untouched
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert not [n for n in same["notes"] if "PII policy" in n]

    changed = {**POLICY, "customer": {**POLICY["customer"], "firstname": "hash"}}
    _, report = sync(src, out, full=True, exports={"pii": changed, "pii_key": KEY})
    assert "customer export rewritten: the PII policy changed" in report["notes"]
    assert not [n for n in report["notes"] if n.startswith("address export rewritten")]
    assert all(len(v) == 64 for v in exported(out / EXPORTS, CUSTOMER)["firstname"])
    _, again = sync(src, out, full=True, exports={"pii": changed, "pii_key": KEY})
    assert not [n for n in again["notes"] if "PII policy" in n]

    _, rekeyed = sync(src, out, full=True, exports={"pii": changed, "pii_key": OTHER_KEY})
    assert "address export rewritten: the PII policy changed" in rekeyed["notes"]
    assert leaks(out / EXPORTS) == set()


def test_history_rebuilds_every_run_under_the_policy(tmp_path: Path) -> None:
    out, snaps = tmp_path / "out", tmp_path / "snapshots"
    first = input_csv(tmp_path / "v1.csv")
    edits = input_csv(tmp_path / "v2.csv", renamed=2, without=6)
    runs = []
    for name, path in (("first", first), ("edits", edits), ("restores", first)):
        _, report = sync(path, out, full=True, allow_mass_delete=True,
                         exports={"pii": POLICY, "pii_key": KEY})
        assert report["status"] == "done", report
        shutil.copytree(out / EXPORTS, snaps / name, ignore=shutil.ignore_patterns("history"))
        runs.append((name, datetime.fromisoformat(report["started_at"])))
    versions = history.read_history(out / EXPORTS, ADDRESS).to_pandas()
    assert "deleted" in set(versions["action"]), "customer 6's address went with it"
    for name, at in runs:
        for entity in (CUSTOMER, ADDRESS):
            columns = list(exported(snaps / name, entity).columns)
            want = rows(exported(snaps / name, entity), columns)
            assert rows(as_of_arrow(out, entity, at), columns) == want, (name, entity.name)
            assert rows(as_of_pandas(out, entity, at), columns) == want, (name, entity.name)
    assert leaks(out / EXPORTS) == set()


def test_a_policy_set_later_rewrites_the_history_written_before(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = input_csv(tmp_path / "v1.csv")
    sync(first, out, full=True)
    assert leaks(out / EXPORTS)
    edits = input_csv(tmp_path / "v2.csv", renamed=2, without=6)
    _, report = sync(edits, out, full=True, allow_mass_delete=True,
                     exports={"pii": POLICY, "pii_key": KEY})
    assert report["status"] == "done", report
    assert "customer history: 1 file(s) rewritten under the changed PII policy" \
        in report["notes"]
    assert leaks(out / EXPORTS) == set()
    at = datetime.fromisoformat(report["started_at"])
    for entity in (CUSTOMER, ADDRESS):  # versions still line up under the hashed keys
        columns = list(exported(out / EXPORTS, entity).columns)
        assert rows(as_of_arrow(out, entity, at), columns) == \
            rows(exported(out / EXPORTS, entity), columns), entity.name
    actions = history.read_history(out / EXPORTS, CUSTOMER).to_pandas()["action"]
    assert sorted(actions) == ["created"] * N + ["deleted", "updated"]
    _, again = sync(edits, out, full=True, exports={"pii": POLICY, "pii_key": KEY})
    assert not [n for n in again["notes"] if "PII policy" in n]
    assert history.compact(out / EXPORTS, CUSTOMER)[0] == 2
    assert leaks(out / EXPORTS) == set()


@pytest.mark.parametrize(("exports", "message"), [
    ({"pii": {"cart": {"email": "hash"}}, "pii_key": KEY}, "unknown entity 'cart'"),
    ({"pii": {"customer": {"shoe_size": "drop"}}}, "unknown or unexported column"),
    ({"pii": {"customer": {"email": "hash"}}}, "MAGSYNC_EXPORTS__PII_KEY"),
    ({"pii": {"customer": {"dob": "mask"}}}, "customer.dob is not text"),
    ({"pii": {"address": {"customer_key": "drop"}}}, "can only be kept or hashed"),
])
def test_policy_errors_are_settings_errors(exports: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        load_settings(exports=exports)
    assert message in settings_error(err.value)


@pytest.mark.parametrize("point", ["merge-transaction", "after-commit"])
def test_a_killed_run_settles_its_hashed_versions(tmp_path: Path, point: str) -> None:
    """The rerun finds the killed run's pending versions in the target by their hashed
    keys: the ones its merge committed are published, the rest written again."""
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'magsync.sqlite'}"
    env = {"MAGSYNC_EXPORTS__PII": json.dumps(POLICY), "MAGSYNC_EXPORTS__PII_KEY": KEY}
    assert forked(input_csv(tmp_path / "v1.csv"), out, url, **env) == 0
    edits = input_csv(tmp_path / "v2.csv", renamed=2, without=6)
    assert forked(edits, out, url, **env, **{CRASH_ENV: point}) == -signal.SIGKILL
    assert forked(edits, out, url, **env) == 0
    now = datetime.now(UTC)
    for entity in (CUSTOMER, ADDRESS):
        table = history.read_history(out / EXPORTS, entity)
        columns = list(exported(out / EXPORTS, entity).columns)
        assert rows(history.as_of(table, now).to_pandas(), columns) \
            == rows(exported(out / EXPORTS, entity), columns), (point, entity.name)
    actions = history.read_history(out / EXPORTS, CUSTOMER).to_pandas()["action"]
    assert sorted(actions) == ["created"] * N + ["deleted", "updated"]
    assert not list((out / EXPORTS / "history").glob("*/_pending/*.parquet"))
    assert leaks(out / EXPORTS) == set()
