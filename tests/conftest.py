"""Shared fixtures: Prefect's test harness, output folders, CSV builders."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

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
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One temporary Prefect server for the whole session, with its own home."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield home


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real `prefect server start` on loopback for subprocess tests."""
    from tests.prefect_server import running_server

    with running_server(tmp_path_factory.mktemp("prefect-server-home")) as server:
        yield server


@pytest.fixture(scope="session")
def untracked(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The environment of an untracked `magsync` subprocess: no Prefect API at all."""
    from tests.prefect_server import no_server

    return no_server(tmp_path_factory.mktemp("untracked-home"))


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One target per dialect; server databases are created and dropped per test."""
    from tests.servers import target_for

    with target_for(request.param, str(tmp_path / "out")) as url:
        yield url
