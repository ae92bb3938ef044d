"""The `magsync` command in a subprocess: untracked (no Prefect API), and tracked against a
real Prefect server on loopback where the server matters (secrets, deployments, a failure)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest

from tests.csvbuild import address_fields, customer_row, write_csv
from tests.launcher import Launcher
from tests.prefect_server import BIN, PrefectServer, group_alive
from tests.servers import fresh_database
from tests.synchelp import REPORTS

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


def test_sample_run_then_rerun_unchanged(untracked: PrefectServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = magsync(untracked, "sync", "--source", "csv", "--input", "data/sample",
                    "--full", "--output-dir", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "customer" in first.stdout and "report:" in first.stdout
    summary = json.loads(next((out / REPORTS).glob("*/summary.json")).read_text())
    # data/sample/README.md: 7 groups, 1000 customers, 1879 addresses; exactly 4 planted
    # customer faults, and the 10 addresses that go with them fault too.
    assert summary["counts"] == {"group": {"created": 7},
                                 "customer": {"created": 996, "faulted": 4},
                                 "address": {"created": 1869, "faulted": 10}}
    records = next((out / REPORTS).glob("*/records.csv"))
    with records.open(encoding="utf-8-sig", newline="") as fh:
        faulted = {(r["entity"], int(r["source_line"]), r["rule"])
                   for r in csv.DictReader(fh) if r["action"] == "faulted"}
    assert {f for f in faulted if f[0] == "customer"} == {
        ("customer", 29, "bad_date"), ("customer", 60, "bad_timestamp"),
        ("customer", 97, "unknown_gender"), ("customer", 159, "field_count")}
    # An address faults with its customer's planted fault, or as the orphan it leaves.
    assert {f for f in faulted if f[0] == "address"} == {
        ("address", 159, "field_count"), ("address", 161, "orphan_address"),
        ("address", 162, "orphan_address"),
        *(("address", line, "customer_faulted") for line in (29, 60, 61, 62, 97, 99, 100))}
    second = magsync(untracked, "sync", "--source", "csv", "--input", "data/sample",
                     "--full", "--output-dir", str(out))
    assert second.returncode == 0, second.stderr[-3000:]
    run_ids = sorted(p.name for p in (out / REPORTS).iterdir())
    again = json.loads((out / REPORTS / run_ids[-1] / "summary.json").read_text())
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


def test_bad_input_is_one_line_and_exit_2(untracked: PrefectServer, tmp_path: Path) -> None:
    run = magsync(untracked, "sync", "--input", str(tmp_path / "missing.csv"),
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


def test_records_csv_is_readable(cli_launcher: Launcher, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "one.csv", [customer_row("one@example.com", dob="bad")])
    out = tmp_path / "out"
    run = forked(cli_launcher, tmp_path, "sync", "--input", str(src), "--output-dir", str(out),
                 "--max-fault-ratio", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    with next((out / REPORTS).glob("*/records.csv")).open(encoding="utf-8-sig",
                                                          newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["action"], r["rule"], r["source_line"]) for r in rows] == [
        ("faulted", "bad_date", "2")]
    assert os.path.isabs(json.loads(next((out / REPORTS).glob("*/summary.json"))
                                    .read_text())["output_dir"])


def forked(launcher: Launcher, logs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`magsync ARGS`, untracked, as a child forked from the session's launcher
    (tests/launcher.py): the same `sys.exit(cli.main())` in a process of its own, without
    the console script's start-up. This file keeps the installed script itself for each
    exit code (0, 1, 2), for --version and for runs on a Prefect server."""
    return launcher.run(*args, logs=logs)


def error_lines(run: subprocess.CompletedProcess[str]) -> list[str]:
    """The `magsync: ...` lines a run printed on stderr."""
    return [line for line in run.stderr.splitlines() if line.startswith("magsync:")]


def refused_input(tmp_path: Path) -> Path:
    """One good and one faulted customer (and their group): refused by --max-fault-ratio
    0.1."""
    return write_csv(tmp_path / "half.csv", [customer_row("ok@example.com"),
                                              customer_row("bad@example.com", dob="nope")])


def test_unreachable_postgresql_is_exit_2(cli_launcher: Launcher,
                                           tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:S3cretPw0rd@127.0.0.1:1/magsync"
    run = forked(cli_launcher, tmp_path, "sync", "--input", "data/sample", "--output-dir",
                 str(tmp_path / "out"), "--target", url)
    assert run.returncode == 2, run.stderr[-3000:]
    [line] = error_lines(run)
    assert line.startswith("magsync: cannot connect to the target "
                           "postgresql+psycopg://postgres:***@127.0.0.1:1/magsync: ")
    assert "Connection refused" in line
    assert "S3cretPw0rd" not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(("dialect", "password", "reason"), [
    ("mariadb", "Wr0ngPassw0rd", "Access denied for user 'root'"),
    ("postgresql", "", "does not exist"),  # trust auth: the wrong thing is the database
])
def test_refused_database_login_is_exit_2(cli_launcher: Launcher, tmp_path: Path,
                                          dialect: str, password: str, reason: str) -> None:
    with fresh_database(dialect) as url:
        user = "root" if dialect == "mariadb" else "postgres"
        bad = url.replace(f"{user}@", f"{user}:{password}@") if password else url + "_gone"
        run = forked(cli_launcher, tmp_path, "sync", "--input", "data/sample", "--output-dir",
                     str(tmp_path / "out"), "--target", bad)
    assert run.returncode == 2, run.stderr[-3000:]
    [line] = error_lines(run)
    assert line.startswith("magsync: cannot connect to the target ") and reason in line
    assert "127.0.0.1" in line and "magsync_test_" in line  # names host and database
    if password:
        assert password not in run.stdout + run.stderr and f"{user}:***@" in line
    assert "Traceback" not in run.stderr


def test_unwritable_output_folder_is_exit_2(cli_launcher: Launcher,
                                             tmp_path: Path) -> None:
    # Root writes through chmod: a folder under a regular file is honestly unwritable.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    out = blocker / "out"
    run = forked(cli_launcher, tmp_path, "sync", "--input", "data/sample", "--output-dir", str(out))
    assert run.returncode == 2, run.stderr[-3000:]
    assert error_lines(run) == [f"magsync: output folder {out} is not writable: "
                                "Not a directory"]
    assert "Traceback" not in run.stderr


def test_guard_refusal_is_one_line_without_traceback(prefect_server: PrefectServer,
                                                     tmp_path: Path) -> None:
    run = magsync(prefect_server, "sync", "--input", str(refused_input(tmp_path)),
                  "--output-dir", str(tmp_path / "out"), "--max-fault-ratio", "0.1")
    assert run.returncode == 1, run.stderr[-3000:]
    assert error_lines(run) == ["magsync: fault ratio 33.3% (1 of 3 records) exceeds "
                                "max_fault_ratio 10.0%: nothing was written"]
    assert "Traceback" not in run.stderr
    assert "run " in run.stdout and ": refused" in run.stdout  # the report table still


def test_verbose_shows_the_traceback(cli_launcher: Launcher, tmp_path: Path) -> None:
    run = forked(cli_launcher, tmp_path, "--verbose", "sync", "--input",
                 str(refused_input(tmp_path)), "--output-dir", str(tmp_path / "out"),
                 "--max-fault-ratio", "0.1")
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback (most recent call last)" in run.stderr
    assert "GuardRefusedError" in run.stderr
    assert len(error_lines(run)) == 1


def test_internal_error_is_one_line_with_a_hint(cli_launcher: Launcher,
                                                tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database, " * 100)
    target = f"sqlite:///{garbage}"
    run = forked(cli_launcher, tmp_path, "faults", "--target", target)
    assert run.returncode == 1
    [line] = error_lines(run)
    assert line.startswith("magsync: internal error: DatabaseError: ")
    assert line.endswith("(rerun with --verbose for the traceback)")
    assert "Traceback" not in run.stderr
    verbose = forked(cli_launcher, tmp_path, "faults", "--target", target, "--verbose")
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert error_lines(verbose) == [line]


def test_settings_errors_name_the_setting(cli_launcher: Launcher,
                                          tmp_path: Path) -> None:
    run = forked(cli_launcher, tmp_path, "sync", "--input", "data/sample", "--max-fault-ratio", "2")
    assert run.returncode == 2
    assert error_lines(run) == ["magsync: invalid setting max_fault_ratio: Input should be "
                                "less than or equal to 1"]
    missing = tmp_path / "missing.toml"
    run = forked(cli_launcher, tmp_path, "sync", "--input", "data/sample", "--config", str(missing))
    assert (run.returncode, error_lines(run)) == (2, [f"magsync: settings file not found: "
                                                      f"{missing}"])
    broken = tmp_path / "broken.toml"
    broken.write_text("max_fault_ratio = [\n")
    run = forked(cli_launcher, tmp_path, "sync", "--input", "data/sample", "--config", str(broken))
    assert run.returncode == 2
    assert error_lines(run)[0].startswith(f"magsync: settings file {broken} is not valid TOML")
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("abbreviation", ["--ful", "--dry"])
def test_abbreviated_options_are_refused(cli_launcher: Launcher, tmp_path: Path,
                                         abbreviation: str) -> None:
    run = forked(cli_launcher, tmp_path, "sync", "--input", "data/sample", abbreviation)
    assert run.returncode == 2
    assert error_lines(run) == [f"magsync: error: unrecognized arguments: {abbreviation}"]


def test_version(untracked: PrefectServer) -> None:
    run = magsync(untracked, "--version")
    assert (run.returncode, run.stdout) == (0, f"magsync {version('magsync')}\n")


# What the console script runs, then, at exit, how many objects it left frozen.
FROZEN_AT_EXIT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count(), file=sys.stderr))
from magsync.flows.cli import script
sys.argv = ["magsync", "--version"]
sys.exit(script())
"""


def test_console_script_freezes_its_objects_before_exit() -> None:
    """The interpreter's last collections skip what `script` froze (flows/cli.py)."""
    (entry,) = entry_points(group="console_scripts", name="magsync")
    assert entry.value == "magsync.flows.cli:script"
    run = subprocess.run([sys.executable, "-c", FROZEN_AT_EXIT], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert (run.returncode, run.stdout) == (0, f"magsync {version('magsync')}\n"), run.stderr
    frozen = int(run.stderr.split("frozen ")[1])
    assert frozen > 10_000, run.stderr  # the imports' objects, not a handful
