"""A tracked run's Prefect artifacts, read back from a real server: the counts (with the
report page's link), the faults by rule, the progress bar; and Prefect's own INFO lines
kept off a plain command line."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from magsync.load.report import RecordsWriter
from magsync.load.report_digest import fault_rows, md, summary_markdown
from magsync.transform.faults import REDACTED, Fault, Stage
from tests.csvbuild import address_fields, customer_row, write_csv
from tests.prefect_server import BIN, PrefectServer, api_client
from tests.synchelp import REPORTS

ROOT = Path(__file__).resolve().parent.parent
PREFECT_INFO = ("Beginning flow run", "View at", "Finished in state")

def planted(folder: Path) -> Path:
    """A small CE export: good customers with addresses, and planted faults."""
    folder.mkdir()
    rows = [customer_row(f"good{i}@example.com", **address_fields()) for i in range(30)]
    rows += [customer_row("bad-date@example.com", dob="1985-13-45 00:00:00"),
             customer_row("bad-gender@example.com", gender="Divers"),
             customer_row("bad-gender2@example.com", gender="Unknown"),
             customer_row("no-at-sign.example.com")]
    write_csv(folder / "customers.csv", rows)
    return folder


def run_magsync(server: PrefectServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "magsync"), *args], cwd=ROOT, env=server.env,
                          capture_output=True, text=True, timeout=300, check=False)


def artifacts(server: PrefectServer, out: Path) -> list[dict[str, Any]]:
    """The artifacts of the flow run of `out` (by its output_dir parameter)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with api_client(server) as client:
        (run,) = [r for r in client.read_flow_runs()
                  if (r.parameters.get("overrides") or {}).get("output_dir") == str(out)]
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    return [{"type": a.type, "key": a.key, "data": a.data, "flow_run_id": str(a.flow_run_id)}
            for a in found]


def markdown_counts(markdown: str) -> dict[str, dict[str, int]]:
    """The counts table of the summary artifact, as summary.json's counts (zeros left out)."""
    rows = [line.strip("|").split("|") for line in markdown.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    head = [cell.strip() for cell in rows[0]]
    assert head[0] == "entity"
    counts: dict[str, dict[str, int]] = {}
    for cells in rows[1:]:
        entity, *values = (cell.strip() for cell in cells)
        counts[entity] = {a: int(v) for a, v in zip(head[1:], values, strict=True) if int(v)}
    return counts


def test_tracked_sync_publishes_its_report_as_artifacts(prefect_server: PrefectServer,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_magsync(prefect_server, "sync", "--input", str(planted(tmp_path / "in")),
                       "--full", "--output-dir", str(out), "--batch-size", "10",
                       "--max-fault-ratio", "0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    for line in PREFECT_INFO:  # no --verbose: Prefect's INFO lines stay off the console
        assert line not in done.stderr, done.stderr
    (report_dir,) = (out / REPORTS).iterdir()
    summary = json.loads((report_dir / "summary.json").read_text())
    found = {a["type"]: a for a in artifacts(prefect_server, out)}
    assert set(found) == {"markdown", "table", "progress"}
    assert len({a["flow_run_id"] for a in found.values()}) == 1

    markdown = found["markdown"]["data"]
    expected = {e: {a: n for a, n in c.items() if n} for e, c in summary["counts"].items()}
    assert markdown_counts(markdown) == expected
    assert summary["counts"]["customer"]["faulted"] >= 4
    assert (report_dir / "index.html").resolve().as_uri() in markdown

    table = json.loads(found["table"]["data"])
    by_rule: Counter[str] = Counter()
    for row in table:
        by_rule[row["rule"]] += row["records"]
        assert row["example keys"]
    records = pq.read_table(report_dir / "records.parquet")
    faulted = records.filter(pc.equal(records["action"], "faulted"))
    assert by_rule == Counter(faulted["rule"].to_pylist())
    assert {"bad_date", "unknown_gender"} <= set(by_rule)

    assert found["progress"]["data"] == 100
    assert found["progress"]["key"] == "magsync-sync-default-progress"


def test_verbose_shows_prefects_info_lines(prefect_server: PrefectServer,
                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_magsync(prefect_server, "--verbose", "sync", "--input",
                       str(planted(tmp_path / "in")), "--output-dir", str(out),
                       "--max-fault-ratio", "0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    for line in PREFECT_INFO:
        assert line in done.stderr, done.stderr


def test_fault_rows_redact_secret_values_and_group_by_rule_and_entity(tmp_path: Path) -> None:
    writer = RecordsWriter(tmp_path, "run-1")

    def fault(entity: str, key: str | None, rule: str, column: str, value: str) -> Fault:
        return Fault(entity=entity, stage=Stage.VALIDATE, key=key, rule=rule, column=column,
                     value=value, message=f"bad {value}", source="in.csv", source_line=7)

    writer.write_faults([fault("customer", "k1", "bad_hash", "password_hash", "s3cret-hash"),
                         fault("customer", "k2", "required", "email", ""),
                         fault("address", "a1", "required", "city", ""),
                         fault("address", None, "required", "city", ""),
                         fault("customer", "k3", "bad_email", "email",
                               "x@" + "y" * 200)])
    writer.close()
    rows = {(r["rule"], r["entity"]): r for r in fault_rows(tmp_path)}
    assert {k: r["records"] for k, r in rows.items()} == {
        ("bad_hash", "customer"): 1, ("required", "customer"): 1,
        ("required", "address"): 2, ("bad_email", "customer"): 1}
    assert rows[("bad_hash", "customer")]["example value"] == REDACTED
    assert "s3cret" not in json.dumps(list(rows.values()))
    assert rows[("required", "address")]["example keys"] == "a1, (no key: line 7)"
    assert len(rows[("bad_email", "customer")]["example value"]) == 80


def test_summary_markdown_escapes_what_the_run_wrote(tmp_path: Path) -> None:
    summary = {"run_id": "r1", "status": "failed", "counts": {"customer": {"created": 2}},
               "error": "target postgresql://u:pw@db/x refused | <b>", "notes": ["a_b *c*"]}
    text = summary_markdown(summary, tmp_path / "reports" / "r1")
    assert "pw" not in text
    assert "\\|" in text and "\\<b\\>" in text and "a\\_b \\*c\\*" in text
    assert markdown_counts(text) == {"customer": {"created": 2}}
    assert re.search(r"\(file:///\S+/reports/r1/index\.html\)", text)
    assert md("a\nb") == "a b"


@pytest.mark.parametrize("command", ["sync", "migrate"])
def test_quiet_is_an_option(command: str) -> None:
    from magsync.flows.cli import build_parser

    args = build_parser().parse_args([command, "--quiet"])
    assert args.quiet is True


def test_tracked_migration_publishes_its_report(prefect_harness: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from magsync.flows.migrate import migrate_flow
    from magsync.magento.emulator import run_emulator
    from tests.test_migrate import KEY, dataset, empty_store, write_export

    monkeypatch.setenv("MAGSYNC_TARGET__API_KEY", KEY)
    src = write_export(tmp_path / "src", dataset(12))
    out = tmp_path / "out"
    with run_emulator(empty_store(), users={"etl": KEY}) as target:
        overrides = {"source": {"kind": "csv", "input": str(src)}, "output_dir": str(out),
                     "target": {"url": target.url, "api_user": "etl"}, "progress": False}
        state = migrate_flow(overrides, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    with get_client(sync_client=True) as client:
        found = {a.type: a for a in client.read_artifacts(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))}
    assert set(found) == {"markdown", "table", "progress"}
    assert found["markdown"].key == "magsync-migrate-default-summary"
    expected = {e: {a: n for a, n in c.items() if n} for e, c in summary["counts"].items()}
    assert markdown_counts(str(found["markdown"].data)) == expected
    assert expected["customer"]["skipped"] == 1  # migrate's own actions get columns too
    assert found["progress"].data == 100
