"""Stores' first runs on one fresh database migrate it at the same moment (a fleet's do)."""

from __future__ import annotations

import threading

import pytest

from magsync.load.sql_store import SqlTarget
from tests.servers import fresh_database


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_concurrent_first_migrations_of_one_database(dialect: str) -> None:
    with fresh_database(dialect) as url:
        targets = [SqlTarget(url, source=f"store{n}") for n in range(4)]
        start, errors = threading.Barrier(len(targets)), []

        def migrate(target: SqlTarget) -> None:
            start.wait()
            try:
                target.migrate()
            except Exception as err:  # noqa: BLE001 - collected for the assertion
                errors.append(err)

        threads = [threading.Thread(target=migrate, args=(t,)) for t in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        initialised = all(t.is_initialised() for t in targets)
        for target in targets:
            target.dispose()
    assert not errors, errors
    assert initialised
