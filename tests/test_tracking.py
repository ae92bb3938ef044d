"""Tracked only when someone is watching: a run is a Prefect flow run when Prefect's
settings resolve an API URL, else the same steps run in-process with no server at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.launcher import Launcher
from tests.prefect_server import PrefectServer, api_client, quiet_env
from tests.synchelp import REPORTS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"

# Runs the console script's `main` and records, at exit, the modules loaded and every
# attempt to start a process (audit events fire even for children that exit at once).
WATCHED = """
import atexit, json, sys
spawned = []
def hook(event, args):
    if event in ("os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.system",
                 "subprocess.Popen", "os.spawn"):
        spawned.append(event)
sys.addaudithook(hook)
probe = sys.argv[1]
def dump():
    with open(probe, "w") as f:
        json.dump({"modules": sorted(sys.modules), "spawned": spawned}, f)
atexit.register(dump)
from magsync.flows.cli import main
sys.argv = ["magsync", *sys.argv[2:]]
sys.exit(main())
"""


def watched(env: dict[str, str], probe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`magsync ARGS` in a subprocess that records modules and spawns in `probe`."""
    return subprocess.run([sys.executable, "-c", WATCHED, str(probe), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def sample_sync(out: Path) -> list[str]:
    return ["sync", "--input", str(SAMPLE), "--full", "--output-dir", str(out)]


def test_untracked_run_starts_no_server(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    env = quiet_env(home)  # no PREFECT_API_URL, a fresh PREFECT_HOME without profiles
    probe = tmp_path / "probe.json"
    run = watched(env, probe, *sample_sync(tmp_path / "out"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.startswith("untracked run: no Prefect API configured"), run.stderr
    assert "customer" in run.stdout
    seen = json.loads(probe.read_text())
    assert seen["spawned"] == []
    assert not [m for m in seen["modules"] if m == "prefect" or m.startswith("prefect.")]
    assert not (home / "prefect.db").exists()
    # The sample's faulty rows were validated, without running scipy.stats's module code
    assert "great_expectations" in seen["modules"]
    assert "scipy.stats._stats_py" not in seen["modules"]


@pytest.mark.parametrize("args", [["--help"], ["sync", "--help"], ["runs", "--help"]])
def test_help_loads_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    probe = tmp_path / "probe.json"
    run = watched(quiet_env(tmp_path / "home"), probe, *args)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "usage: magsync" in run.stdout
    heavy = ("prefect", "pandas", "pyarrow", "sqlalchemy", "great_expectations", "zeep")
    assert [m for m in json.loads(probe.read_text())["modules"]
            if m.split(".")[0] in heavy] == []


def flow_runs(server: PrefectServer, out: Path) -> list[dict[str, Any]]:
    """The server's flow runs of `out` (by their output_dir parameter) with task runs."""
    found = []
    with api_client(server) as client:
        for fr in client.read_flow_runs():
            if (fr.parameters.get("overrides") or {}).get("output_dir") != str(out):
                continue
            tasks = client.read_task_runs()
            found.append({"flow": client.read_flow(fr.flow_id).name,
                          "state": fr.state_type.value,
                          "tasks": sorted([t.name.rsplit("-", 1)[0], t.state_type.value]
                                          for t in tasks if t.flow_run_id == fr.id)})
    return found


def records(out: Path) -> tuple[list[tuple], dict[str, Any]]:
    """A run's records as sorted rows without the run id, and its counts."""
    (report,) = (out / REPORTS).iterdir()
    table = pq.read_table(report / "records.parquet").drop(["run_id"])
    rows = sorted(tuple(map(repr, row.values())) for row in table.to_pylist())
    return rows, json.loads((report / "summary.json").read_text())["counts"]


def test_tracked_and_untracked_runs_agree(prefect_server: PrefectServer,
                                          cli_launcher: Launcher, tmp_path: Path) -> None:
    tracked_out, untracked_out = tmp_path / "tracked", tmp_path / "untracked"
    run = watched(prefect_server.env, tmp_path / "probe.json", *sample_sync(tracked_out))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "untracked run" not in run.stderr
    assert "prefect.server" not in json.loads((tmp_path / "probe.json").read_text())["modules"]
    (found,) = flow_runs(prefect_server, tracked_out)
    assert found["flow"] == "magsync-sync" and found["state"] == "COMPLETED"
    assert found["tasks"] == [["export", "COMPLETED"], ["guards", "COMPLETED"],
                              ["merge", "COMPLETED"], ["stage", "COMPLETED"]]

    # Untracked, forked from the CLI launcher (no Prefect API; test_untracked_run_starts_no_
    # server proves what an untracked process does and does not start).
    done = cli_launcher.run(*sample_sync(untracked_out), logs=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.startswith("untracked run: no Prefect API configured"), done.stderr
    assert flow_runs(prefect_server, untracked_out) == []
    assert records(tracked_out) == records(untracked_out)


def test_api_key_block_needs_an_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from magsync.flows.cli import EXIT_CONFIG, main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MAGSYNC_SOURCE__API_KEY", raising=False)
    monkeypatch.setenv("MAGSYNC_SOURCE__API_KEY_BLOCK", "magento-key")
    code = main(["sync", "--source", "soap", "--url", "http://127.0.0.1:9/", "--api-user",
                 "u", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG
    lines = [line for line in err.splitlines() if line.startswith("magsync:")]
    assert lines == ["magsync: source.api_key_block needs a Prefect API and none is "
                     "configured: set PREFECT_API_URL, or give the key in "
                     "MAGSYNC_SOURCE__API_KEY"]


RESOLVE = """
import json, os, sys
from magsync.flows.tracking import prefect_api_url
ours = prefect_api_url()
from prefect.settings.models.root import Settings
print(json.dumps([ours, Settings().api.url]))
"""


@pytest.mark.parametrize("case", ["none", "env", "active-profile", "other-profile",
                                  "named-profile", "prefect-toml"])
def test_api_url_resolves_as_prefect_resolves_it(tmp_path: Path, case: str) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = quiet_env(home)
    url = "http://127.0.0.1:4999/api"
    profiles = (f'active = "watched"\n[profiles.watched]\nPREFECT_API_URL = "{url}"\n'
                '[profiles.plain]\nPREFECT_SERVER_EPHEMERAL_ENABLED = "true"\n')
    if case == "env":
        env["PREFECT_API_URL"] = url
    if case in ("active-profile", "other-profile", "named-profile"):
        active = "plain" if case == "other-profile" else "watched"
        (home / "profiles.toml").write_text(profiles.replace('"watched"', f'"{active}"', 1))
    if case == "named-profile":
        env["PREFECT_PROFILE"] = "plain"
    if case == "prefect-toml":
        (cwd / "prefect.toml").write_text(f'[api]\nurl = "{url}"\n')
    done = subprocess.run([sys.executable, "-c", RESOLVE], cwd=cwd,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120, check=True)
    ours, prefects = json.loads(done.stdout.splitlines()[-1])
    assert ours == prefects
    assert (ours is not None) == (case in ("env", "active-profile", "prefect-toml"))
