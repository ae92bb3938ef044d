"""The run lock itself, on every dialect: exclusive per target and source, nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from magsync.load.lock import RunLock
from magsync.load.sql_store import SqlTarget
from magsync.transform.errors import TargetLockedError
from tests.servers import target_for


def test_lock_is_per_target_and_source(target_url: str, tmp_path: Path) -> None:
    dialect = sa.make_url(target_url).get_backend_name()
    dialect = "mariadb" if dialect == "mysql" else dialect
    SqlTarget(target_url, source="s").migrate()
    first = RunLock(sa.create_engine(target_url), "s", "run-1")
    first.acquire()
    first.record_holder()
    with pytest.raises(TargetLockedError, match=r"locked by run run-1 \(pid \d+, host .+, "
                                                r"since .+\)"):
        RunLock(sa.create_engine(target_url), "s", "run-2").acquire()
    other_source = RunLock(sa.create_engine(target_url), "other", "run-3")
    other_source.acquire()  # another store sharing the target is not blocked
    other_source.release()
    with target_for(dialect, str(tmp_path / "second")) as second_url:
        other_target = RunLock(sa.create_engine(second_url), "s", "run-4")
        other_target.acquire()  # the same source name on another database is not blocked
        other_target.release()
    first.release()
    again = RunLock(sa.create_engine(target_url), "s", "run-5")
    again.acquire()
    again.release()
