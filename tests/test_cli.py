"""The `magsync` command in a subprocess, against a real Prefect server on loopback."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.csvbuild import address_fields, customer_row, write_csv
from tests.prefect_server import BIN, PrefectServer, group_alive

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def magsync(server: PrefectServer, *args: str, env: dict[str, str] | None = None,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([str(BIN / "magsync"), *args], cwd=cwd, text=True,
                            env={**server.env, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out, err = proc.communicate(timeout=300)
    assert not group_alive(proc.pid), "the sync left a process behind"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sample_run_then_rerun_unchanged(prefect_server: PrefectServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = magsync(prefect_server, "sync", "--source", "csv", "--input", "data/sample",
                    "--full", "--output-dir", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "customer" in first.stdout and "report:" in first.stdout
    summary = json.loads(next((out / "reports").glob("*/summary.json")).read_text())
    counts = summary["counts"]["customer"]
    assert counts["created"] + counts["faulted"] == 1000
    assert counts["faulted"] >= 4
    second = magsync(prefect_server, "sync", "--source", "csv", "--input", "data/sample",
                     "--full", "--output-dir", str(out))
    assert second.returncode == 0, second.stderr[-3000:]
    run_ids = sorted(p.name for p in (out / "reports").iterdir())
    again = json.loads((out / "reports" / run_ids[-1] / "summary.json").read_text())
    for entity, counts in again["counts"].items():
        assert set(counts) <= {"unchanged", "faulted"}, (entity, counts)


def test_sentinel_secrets_leave_no_trace(prefect_server: PrefectServer, tmp_path: Path) -> None:
    sentinels = {"password_hash": "SENTINELHASH0001:salt", "password": "SENTINELPLAIN0002",
                 "rp_token": "SENTINELTOKEN0003", "confirmation": "SENTINELCONF0004"}
    rows = [customer_row(f"s{i}@example.com", **sentinels, **address_fields())
            for i in range(3)]
    rows.append(customer_row("bad@example.com", dob="nope", **sentinels))
    src = write_csv(tmp_path / "secrets.csv", rows)
    out = tmp_path / "out"
    for extra in ([], ["--full"]):
        run = magsync(prefect_server, "sync", "--input", str(src), "--output-dir", str(out),
                      "--log-level", "DEBUG", "--max-fault-ratio", "0.9", *extra)
        assert run.returncode == 0, run.stderr[-3000:]
        for value in sentinels.values():
            assert value not in run.stdout + run.stderr
    for folder in (out, prefect_server.home):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for value in sentinels.values():
                    assert value.encode() not in data, f"{value} found in {path}"


def test_bad_input_is_one_line_and_exit_2(prefect_server: PrefectServer, tmp_path: Path) -> None:
    run = magsync(prefect_server, "sync", "--input", str(tmp_path / "missing.csv"),
                  "--output-dir", str(tmp_path / "out"))
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("magsync:")]
    assert lines == [f"magsync: input not found: {tmp_path / 'missing.csv'}"]
    assert "Traceback" not in run.stderr


def test_prefect_yaml_deploys_with_cron(prefect_server: PrefectServer, tmp_path: Path) -> None:
    env = {**prefect_server.env, "MAGSYNC_PROJECT_DIR": str(ROOT)}
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", "magsync", "--type",
                    "process"], env=env, check=True, capture_output=True, timeout=120)
    deploy = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
                            cwd=ROOT, check=False, env=env, capture_output=True, text=True,
                            timeout=300)
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
    script = (
        "import asyncio, json\n"
        "from prefect.client.orchestration import get_client\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        "        out = {}\n"
        "        for d in await c.read_deployments():\n"
        "            out[d.name] = [s.schedule.cron for s in d.schedules]\n"
        "        print(json.dumps(out))\n"
        "asyncio.run(main())\n")
    found = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=120, check=True)
    schedules = json.loads(found.stdout.strip().splitlines()[-1])
    assert schedules["nightly"] == ["30 2 * * *"]
    assert schedules["weekly-full"] == ["30 3 * * 0"]


def test_records_csv_is_readable(prefect_server: PrefectServer, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "one.csv", [customer_row("one@example.com", dob="bad")])
    out = tmp_path / "out"
    run = magsync(prefect_server, "sync", "--input", str(src), "--output-dir", str(out),
                  "--max-fault-ratio", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    with next((out / "reports").glob("*/records.csv")).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["action"], r["rule"], r["source_line"]) for r in rows] == [
        ("faulted", "bad_date", "2")]
    assert os.path.isabs(json.loads(next((out / "reports").glob("*/summary.json"))
                                    .read_text())["output_dir"])
