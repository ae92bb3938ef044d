"""A target URL's password (`--target` on the command line) shows nowhere but in the
connection: not in os.environ (a temporary Prefect server would inherit it), not in a
tracked run's flow parameters (the Prefect server records them), not in the report files,
not on the console. Real PostgreSQL (trust auth accepts any password) and, for the
tracked run, a real `prefect server start` on loopback."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.csvbuild import address_fields, customer_row, write_csv
from tests.prefect_server import BIN, PrefectServer
from tests.servers import fresh_database
from tests.synchelp import REPORTS

ROOT = Path(__file__).resolve().parent.parent

# The console script's `main`, dumping its os.environ at exit into the probe file.
WATCHED = """
import atexit, json, os, sys
probe = sys.argv[1]
atexit.register(lambda: open(probe, "w").write(json.dumps(dict(os.environ))))
from magsync.flows.cli import main
sys.argv = ["magsync", *sys.argv[2:]]
sys.exit(main())
"""

# The flow runs the server recorded, with their parameters as the API gives them back.
FLOW_RUNS = """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    print(json.dumps([{"flow": client.read_flow(fr.flow_id).name, "state": fr.state_type.value,
                       "parameters": fr.parameters} for fr in client.read_flow_runs()]))
"""


@pytest.fixture
def secret_target() -> Iterator[tuple[str, str, str]]:
    """A fresh PostgreSQL database as (URL with a password, the password, masked URL)."""
    password = f"s3cret-pw-{secrets.token_hex(6)}"
    with fresh_database("postgresql") as url:
        assert "postgres@" in url
        yield (url.replace("postgres@", f"postgres:{password}@"), password,
               url.replace("postgres@", "postgres:***@"))


def sync_args(src: Path, out: Path, url: str) -> list[str]:
    return ["sync", "--input", str(src), "--output-dir", str(out), "--target", url, "--full"]


def small_input(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "in.csv", [customer_row(f"c{i}@example.com",
                                                        **address_fields())
                                           for i in range(3)])


def assert_nowhere(password: str, folder: Path) -> None:
    """No file under `folder` holds the password."""
    for path in folder.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), f"password in {path}"


def customers_in(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM customers")).scalar_one())
    finally:
        engine.dispose()


def test_untracked_commands_keep_the_password_out_of_the_environment(
        secret_target: tuple[str, str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from magsync.flows.cli import main

    url, password, masked = secret_target
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("MAGSYNC_TARGET__URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))  # no profile: untracked
    out = tmp_path / "out"
    assert main(sync_args(small_input(tmp_path), out, url)) == 0
    run_id = next((out / REPORTS).iterdir()).name
    assert main(["runs", "--target", url, "--output-dir", str(out)]) == 0
    assert main(["faults", "--target", url, "--output-dir", str(out)]) == 0
    assert main(["report", run_id, "--target", url, "--output-dir", str(out)]) == 0
    shown = capsys.readouterr()
    assert customers_in(url) == 3  # the real URL reached the database
    assert run_id in shown.out
    assert [name for name, value in os.environ.items() if password in value] == []
    assert password not in shown.out + shown.err
    summary = json.loads((out / REPORTS / run_id / "summary.json").read_text())
    assert summary["target"] == masked
    assert_nowhere(password, out)


def flow_runs(server: PrefectServer, out: Path) -> list[dict[str, Any]]:
    """The server's flow runs whose overrides name `out` as their output folder."""
    done = subprocess.run([str(BIN / "python"), "-c", FLOW_RUNS], env=server.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    runs: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return [r for r in runs
            if (r["parameters"].get("overrides") or {}).get("output_dir") == str(out)]


def test_tracked_run_records_the_masked_url(secret_target: tuple[str, str, str],
                                            prefect_server: PrefectServer,
                                            tmp_path: Path) -> None:
    url, password, masked = secret_target
    out, probe = tmp_path / "out", tmp_path / "environ.json"
    run = subprocess.run([sys.executable, "-c", WATCHED, str(probe),
                          *sync_args(small_input(tmp_path), out, url)],
                         cwd=ROOT, env=prefect_server.env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "untracked run" not in run.stderr  # a flow run on the server
    assert customers_in(url) == 3
    environ = json.loads(probe.read_text())
    assert [name for name, value in environ.items() if password in value] == []
    (found,) = flow_runs(prefect_server, out)
    assert found["flow"] == "magsync-sync" and found["state"] == "COMPLETED"
    assert found["parameters"]["overrides"]["target"] == {"url": masked}
    assert password not in json.dumps(found["parameters"])
    assert password not in run.stdout + run.stderr
    assert_nowhere(password, out)
    assert_nowhere(password, prefect_server.home)  # the server's database and logs
