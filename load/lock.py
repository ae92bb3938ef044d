"""One run at a time per target and source.

The lock lives in something the operating system or the database server releases when
the holder dies: a PostgreSQL advisory lock or a MariaDB/MySQL named lock (both tied to
a connection), or an flock on a file next to a SQLite database. So a run killed with
`kill -9` never blocks the next one. Who holds it (run, pid, host, since) is written
beside it, for the message the blocked run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from magsync.load.tables import LOCK
from magsync.transform.errors import TargetLockedError

POLL_S = 0.5


def _holder(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")}


def _message(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "target locked by another run"
    return (f"target locked by run {holder.get('run_id')} (pid {holder.get('pid')}, "
            f"host {holder.get('host')}, since {holder.get('since')})")


class RunLock:
    """Acquire with `acquire(wait_s)`; release with `release()` (or let the process die)."""

    def __init__(self, engine: Engine, source: str, run_id: str) -> None:
        self.engine = engine
        self.source = source
        self.run_id = run_id
        self.dialect = engine.dialect.name
        # MariaDB's named locks are server-wide: the database is part of the name (hashed,
        # as names are limited to 64 characters).
        scope = f"{engine.url.database or ''}\x1f{source}"
        self.name = "magsync:" + hashlib.blake2b(scope.encode(), digest_size=20).hexdigest()
        digest = hashlib.blake2b(scope.encode(), digest_size=8).digest()
        self.key = int.from_bytes(digest, "big", signed=True)
        database = engine.url.database if self.dialect == "sqlite" else None
        tag = hashlib.blake2b(source.encode(), digest_size=4).hexdigest()
        self.lock_path = (Path(f"{database}.{tag}.magsync-lock")
                          if database and database != ":memory:" else None)
        self._conn: Connection | None = None
        self._fh: Any = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Takes the lock, waiting up to `wait_s`; TargetLockedError when it stays taken."""
        deadline = time.monotonic() + max(0.0, wait_s)
        while not self._try():
            if time.monotonic() >= deadline:
                raise TargetLockedError(_message(self._read_holder()))
            time.sleep(POLL_S)

    def record_holder(self) -> None:
        """Writes who holds the lock (call once the tables exist)."""
        holder = _holder(self.run_id)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(LOCK).where(LOCK.c.source == self.source))
            conn.execute(sa.insert(LOCK).values(source=self.source, **holder))

    def _try(self) -> bool:
        if self.dialect == "sqlite":
            return self._try_file()
        if self._conn is None:
            self._conn = self.engine.connect()
        if self.dialect == "postgresql":
            query = sa.text("SELECT pg_try_advisory_lock(:k)").bindparams(k=self.key)
        elif self.dialect in ("mysql", "mariadb"):
            query = sa.text("SELECT GET_LOCK(:n, 0)").bindparams(n=self.name)
        else:
            return True  # no lock primitive known: run unlocked
        got = bool(self._conn.execute(query).scalar())
        self._conn.commit()
        return got

    def _try_file(self) -> bool:
        if self.lock_path is None:
            return True  # an in-memory database cannot be shared
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.lock_path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def _read_holder(self) -> dict[str, Any] | None:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(LOCK).where(LOCK.c.source == self.source)).first()
        except sa.exc.SQLAlchemyError:
            return None  # tables not created yet
        return dict(row._mapping) if row else None

    def release(self) -> None:
        """Gives the lock back."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        if self._conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                if self.dialect == "postgresql":
                    self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)")
                                       .bindparams(k=self.key))
                elif self.dialect in ("mysql", "mariadb"):
                    self._conn.execute(sa.text("SELECT RELEASE_LOCK(:n)").bindparams(n=self.name))
            self._conn.close()
            self._conn = None


SCHEMA_WAIT_S = 600  # a migration of a large store may rebuild an index


@contextlib.contextmanager
def schema_lock(conn: Connection) -> Iterator[None]:
    """Holds the target's one schema lock while `conn` migrates it.

    The run lock is per store, so the first runs of several stores into one empty
    database would otherwise create the same tables at once and all but one fail. On
    PostgreSQL the lock ends with `conn`'s transaction (its DDL is transactional); on
    MariaDB/MySQL, whose DDL commits on its own, a named lock is held until released; on
    SQLite, an flock on a file beside the database."""
    dialect = conn.engine.dialect.name
    scope = f"{conn.engine.url.database or ''}\x1fschema"
    if dialect == "postgresql":
        key = int.from_bytes(hashlib.blake2b(scope.encode(), digest_size=8).digest(),
                             "big", signed=True)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=key))
        yield
    elif dialect in ("mysql", "mariadb"):
        name = "magsync:" + hashlib.blake2b(scope.encode(), digest_size=20).hexdigest()
        got = conn.execute(sa.text("SELECT GET_LOCK(:n, :s)")
                           .bindparams(n=name, s=SCHEMA_WAIT_S)).scalar()
        if not got:
            raise TargetLockedError(f"the target's schema stayed locked {SCHEMA_WAIT_S} s "
                                    "by another run migrating it")
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:n)").bindparams(n=name))
    elif dialect == "sqlite" and conn.engine.url.database not in (None, "", ":memory:"):
        # pysqlite begins no transaction before DDL, so the file's own lock does not
        # cover a migration: an flock beside the database does, released at exit or death.
        with Path(f"{conn.engine.url.database}.magsync-schema-lock").open("a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield
    else:
        yield
