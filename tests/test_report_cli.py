"""`magsync sync --json` in a subprocess against a real Prefect server on loopback, then
`magsync runs` and `magsync report` on its output, forked from the CLI launcher
(tests/launcher.py): they read files and the target, never Prefect."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from magsync.load.report import RecordsWriter, RunReport
from tests.csvbuild import address_fields, customer_row, write_csv
from tests.launcher import Launcher
from tests.prefect_server import BIN, PrefectServer, group_alive
from tests.synchelp import REPORTS

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def magsync(server: PrefectServer, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([str(BIN / "magsync"), *args], cwd=ROOT, text=True,
                            env={**server.env, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out, err = proc.communicate(timeout=300)
    assert not group_alive(proc.pid), "the command left a process behind"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def a_migration(out: Path) -> str:
    """A migration's report folder, as the migration flow's report writer leaves it."""
    run_id = "20200101T000000Z-abcdef"
    folder = out / REPORTS / run_id
    report = RunReport(run_id, "default", "old.csv", "https://shop.example/api", "1",
                       "migrate", False, datetime(2020, 1, 1, tzinfo=UTC),
                       finished_at=datetime(2020, 1, 1, 0, 1, tzinfo=UTC), status="done")
    report.count("customer", "created", 4)
    report.count("customer", "faulted", 1)
    RecordsWriter(folder, run_id).close()
    report.write_summary(folder)
    return run_id


def test_sync_json_runs_and_report(prefect_server: PrefectServer, cli_launcher: Launcher,
                                   tmp_path: Path) -> None:
    rows = [customer_row(f"c{i}@example.com", **address_fields()) for i in range(3)]
    rows.append(customer_row("bad@example.com", dob="nope"))
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out"
    synced = magsync(prefect_server, "sync", "--input", str(src), "--output-dir", str(out),
                     "--full", "--max-fault-ratio", "0.9", "--json")
    assert synced.returncode == 0, synced.stderr[-3000:]
    summary = json.loads(synced.stdout)
    run_id = summary["run_id"]
    folder = out / REPORTS / run_id
    assert summary == json.loads((folder / "summary.json").read_text())
    assert summary["counts"]["customer"] == {"created": 3, "faulted": 1}
    migration = a_migration(out)

    def forked(*args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
        logs = tmp_path / f"logs-{len(list(tmp_path.glob('logs-*')))}"
        logs.mkdir()
        return cli_launcher.run(*args, logs=logs, env=env)

    listed = forked("runs", "--output-dir", str(out))
    assert listed.returncode == 0, listed.stderr[-3000:]
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert lines[0] == ["run_id", "started", "status", "counts", "faults", "kind"]
    created = sum(c.get("created", 0) for c in summary["counts"].values())
    assert created >= 6  # 3 customers and their addresses (and any group)
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in lines[1:]] == [
        (run_id, "done", f"created {created}", "1", "sync"),
        (migration, "done", "created 4", "1", "migrate")]

    shown = forked("report", run_id, "--output-dir", str(out))
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.startswith(f"run {run_id}: done\n")
    assert f"page: {folder / 'index.html'}" in shown.stdout
    as_json = forked("report", run_id, "--json", "--output-dir", str(out))
    assert json.loads(as_json.stdout) == summary

    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(0o755)
    run = forked("report", run_id, "--open", "--output-dir", str(out),
                 env={"BROWSER": f"{browser} %s"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert opened.read_text() == (folder / "index.html").resolve().as_uri()

    missing = forked("report", "nope", "--output-dir", str(out))
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith(f"magsync: no run nope in {out / REPORTS} or "
                                           "the target")
