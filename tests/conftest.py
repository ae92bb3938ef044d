"""Shared fixtures: Prefect's test harness, output folders, CSV builders."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

for _name, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(autouse=True)
def restore_magsync_logger() -> Iterator[None]:
    """A test that runs main() sets up the `magsync` logger for a console (own handler, no
    propagation): put it back, else later tests' caplog misses magsync's log lines."""
    logger = logging.getLogger("magsync")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


@pytest.fixture(scope="session")
def prefect_harness(prefect_server: Any,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """In-process Prefect flow runs on the session's Prefect server (fixture prefect_server:
    one server, not a temporary one besides it), with a client home of their own."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}), \
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()):
        yield home


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real `prefect server start` on loopback, one for the whole session: under
    pytest-xdist the workers share it (started by the first that asks, stopped when the
    session ends, see pytest_sessionfinish)."""
    from tests.prefect_server import running_server, shared_server

    if os.environ.get("PYTEST_XDIST_WORKER"):
        yield shared_server(tmp_path_factory.getbasetemp().parent)
        return
    with running_server(tmp_path_factory.mktemp("prefect-server-home")) as server:
        yield server


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller of a pytest-xdist session stops the server its workers shared."""
    config = session.config
    if hasattr(config, "workerinput") or config.getoption("dist", "no") == "no":
        return
    from tests.prefect_server import stop_shared

    stop_shared(config._tmp_path_factory.getbasetemp())  # the workers' shared root


@pytest.fixture(scope="session")
def untracked(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The environment of an untracked `magsync` subprocess: no Prefect API at all."""
    from tests.prefect_server import no_server

    return no_server(tmp_path_factory.mktemp("untracked-home"))


@pytest.fixture(scope="session")
def cli_launcher(untracked: Any) -> Iterator[Any]:
    """Untracked `magsync` runs forked from one process that imported the CLI once
    (tests/launcher.py), for tests that need a run's exit code and output, not the console
    script's start-up; checks at the end that no run left a process behind."""
    from tests.launcher import Launcher

    runner = Launcher(untracked)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One target per dialect; server databases are created and dropped per test."""
    from tests.servers import target_for

    with target_for(request.param, str(tmp_path / "out")) as url:
        yield url
