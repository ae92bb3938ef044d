"""The SQL target: SQLite, PostgreSQL or MariaDB/MySQL through SQLAlchemy."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from magsync.load.lock import schema_lock
from magsync.load.parquet_export import keyed_schema
from magsync.load.sql_bulk import (
    bulk_upsert,
    param_marker,
    refresh_column,
    sqlite_bulk_insert,
    sqlite_select_arrow,
    streaming_cursor,
)
from magsync.load.tables import FAULTS, RUNS, STATE, TABLES
from magsync.transform.diff import KeyIndex
from magsync.transform.errors import ConfigError
from magsync.transform.faults import Fault
from magsync.transform.schema import (
    EXTRA_COL,
    HASH_COL,
    KEY_COL,
    LINE_COL,
    RAW_DIGEST_COL,
    SOURCE_COL,
    Entity,
    Kind,
)

log = logging.getLogger("magsync.load")
MIGRATIONS = Path(__file__).parent / "migrations"
KEY_CHUNK = 500  # keys per IN (...) query: under every dialect's parameter limit
KEY_INDEX_CHUNK = 100_000  # rows per fetch when reading the key index


def utc_now() -> datetime:
    """Now, as the naive UTC datetime the target stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def masked_url(url: str) -> str:
    """The target URL with any password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable url>"


def _connect_reason(err: sa.exc.DBAPIError, password: str | None) -> str:
    """The driver's reason for a failed connection, on one line, never the password."""
    orig = err.orig
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # PyMySQL: (code, message); psycopg and sqlite3: the message.
    text = str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(orig)
    text = " ".join(text.split())
    return text.replace(password, "***") if password else text


class SqlTarget:
    """Entity tables, runs, state and faults in one SQL database."""

    def __init__(self, url: str, *, source: str, store_secrets: bool = False) -> None:
        self.url = url
        self.source = source
        self.store_secrets = store_secrets
        try:
            self.engine: Engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise ConfigError(f"bad target URL {masked_url(url)}: {err}") from None
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            self._prepare_sqlite(url)
        else:
            self._check_connection()

    def describe(self) -> str:
        """The target for logs and reports, password masked."""
        return masked_url(self.url)

    def _check_connection(self) -> None:
        """Connects once (the pool keeps it), so that an unreachable server, a wrong
        password or a missing database is a ConfigError naming the target, not a failed
        run. SQLite is not probed: connecting would create the file (a dry run must not)."""
        try:
            with self.engine.connect():
                pass
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
            reason = _connect_reason(err, self.engine.url.password)
            self.engine.dispose()
            # from None: the driver's exception may hold the connection parameters.
            raise ConfigError(f"cannot connect to the target {self.describe()}: {reason}"
                              ) from None

    def _prepare_sqlite(self, url: str) -> None:
        database = sa.make_url(url).database
        if database and database != ":memory:":
            folder = Path(database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(f"cannot create the folder of the target {self.describe()}: "
                                  f"{err.strerror or type(err).__name__}") from None

        @sa.event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.close()

    # -- schema ---------------------------------------------------------------------
    def migrate(self) -> None:
        """Brings the tables to the newest revision (Alembic, `magsync_schema_version`)."""
        with self.engine.begin() as conn, schema_lock(conn):
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def is_initialised(self) -> bool:
        """Whether the entity tables exist (a dry run never creates them)."""
        if self.dialect == "sqlite":
            database = self.engine.url.database
            if database and database != ":memory:" and not Path(database).exists():
                return False
        return sa.inspect(self.engine).has_table(TABLES["customer"].name)

    # -- reads ----------------------------------------------------------------------
    def key_index(self, entity: Entity) -> KeyIndex:
        """Every stored key of `entity` with its row hash, soft-delete flag and raw digest
        (null in a store not migrated to 0004 yet: a dry run does not migrate)."""
        if not self.is_initialised():
            return KeyIndex.empty()
        quote = self.engine.dialect.identifier_preparer.quote
        table = TABLES[entity.name].name
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns(table)}
        raw = "raw_digest" if "raw_digest" in columns else "NULL"
        sql = (f"SELECT record_key, row_hash, deleted_at IS NOT NULL, {raw} "
               f"FROM {quote(table)} "
               f"WHERE source = {param_marker(self.engine.dialect)}")
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                database = self.engine.url.database  # scratch beside it: same disk, room
                folder = Path(database).parent if database and database != ":memory:" \
                    else None
                return _key_index(sqlite_select_arrow(conn, sql, (self.source,), folder))
            keys, hashes, deleted, raws = [], [], [], []
            cur = streaming_cursor(conn)  # raw rows: no per-value result processing
            try:
                cur.execute(sql, (self.source,))
                while rows := cur.fetchmany(KEY_INDEX_CHUNK):
                    k, h, d, r = zip(*rows, strict=True)
                    keys.append(pa.array(k, pa.string()))
                    hashes.append(np.fromiter(h, np.int64, len(rows)))
                    deleted.append(np.fromiter(d, bool, len(rows)))
                    raws.append(pa.array(r, pa.int64()))
            finally:
                cur.close()
        if not keys:
            return KeyIndex.empty()
        raw_digests = pa.chunked_array(raws, pa.int64())
        return KeyIndex(pa.chunked_array(keys), np.concatenate(hashes),
                        np.concatenate(deleted), *_raw_arrays(raw_digests))

    def fetch_rows(self, entity: Entity, keys: Sequence[str], *,
                   with_secrets: bool = False) -> pd.DataFrame:
        """Stored public columns of the given keys, indexed by record_key (and the secret
        ones, when asked and the target stores them)."""
        table = TABLES[entity.name]
        secrets = [table.c[name] for name in entity.secret_names
                   if with_secrets and self.store_secrets]
        cols = [table.c.record_key, *(table.c[c.name] for c in entity.public_columns),
                table.c.extra, *secrets]
        frames = []
        with self.engine.connect() as conn:
            for start in range(0, len(keys), KEY_CHUNK):
                chunk = list(keys[start:start + KEY_CHUNK])
                query = sa.select(*cols).where(table.c.source == self.source,
                                               table.c.record_key.in_(chunk))
                frames.append(pd.DataFrame(conn.execute(query).all(),
                                           columns=[c.name for c in cols]))
        frame = pd.concat(frames) if frames else pd.DataFrame(columns=[c.name for c in cols])
        return _typed(entity, frame).set_index(KEY_COL)

    def active_counts(self) -> dict[str, int]:
        """Active (not soft-deleted) rows per entity."""
        if not self.is_initialised():
            return dict.fromkeys(TABLES, 0)
        out = {}
        with self.engine.connect() as conn:
            for name, table in TABLES.items():
                query = sa.select(sa.func.count()).select_from(table).where(
                    table.c.source == self.source, table.c.deleted_at.is_(None))
                out[name] = int(conn.execute(query).scalar_one())
        return out

    def iter_active(self, entity: Entity, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Active rows of `entity` as Arrow batches of record_key, row_hash and the public
        columns plus `extra` (for exports), in no particular order."""
        schema = keyed_schema(entity)
        quote = self.engine.dialect.identifier_preparer.quote
        sql = (f"SELECT {', '.join(map(quote, schema.names))} "
               f"FROM {quote(TABLES[entity.name].name)} "
               f"WHERE source = {param_marker(self.engine.dialect)} AND deleted_at IS NULL")
        with self.engine.connect() as conn:
            # The driver's own cursor: SQLAlchemy's per-value result processing costs
            # more than the read itself.
            cur = streaming_cursor(conn)
            try:
                cur.execute(sql, (self.source,))
                while rows := cur.fetchmany(batch_rows):
                    yield _arrow_batch(rows, schema)
            finally:
                cur.close()

    def cursor(self, entity: Entity) -> str | None:
        """The saved cursor of `entity`, if any."""
        if not self.is_initialised():
            return None
        query = sa.select(STATE.c.cursor_value).where(STATE.c.source == self.source,
                                                      STATE.c.entity == entity.name)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    # -- writes ---------------------------------------------------------------------
    def begin(self) -> Any:
        """A transaction: `with target.begin() as conn:`."""
        return self.engine.begin()

    def is_empty(self, entity: Entity) -> bool:
        """Whether the entity's table holds no row at all (of any source)."""
        table = TABLES[entity.name]
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() \
                is None

    def can_bulk_load(self, entity: Entity) -> bool:
        """Whether `bulk_load` applies: a SQLite target whose entity table is empty."""
        return self.dialect == "sqlite" and self.is_empty(entity)

    def bulk_load(self, entity: Entity, parts: Iterable[pa.Table], scratch: Path,
                  run_id: str, now: datetime, before_commit: Callable[[], None]) -> int:
        """Loads staged parts into an empty SQLite table in one transaction (see
        load/sql_bulk.py::sqlite_bulk_insert); returns the rows loaded."""
        with self.engine.connect() as conn:
            return sqlite_bulk_insert(
                conn, TABLES[entity.name], (self._rows(entity, p) for p in parts), scratch,
                {"source": self.source, "run_id": run_id, "loaded_at": now}, before_commit)

    def upsert(self, conn: Connection, entity: Entity, staged: pa.Table, run_id: str,
               now: datetime) -> int:
        """Inserts or updates staged rows by (source, record_key), through the driver."""
        if staged.num_rows == 0:
            return 0
        constants = {"source": self.source, "run_id": run_id, "loaded_at": now,
                     "deleted_at": None}
        bulk_upsert(conn, TABLES[entity.name], self._rows(entity, staged), constants)
        return int(staged.num_rows)

    def _rows(self, entity: Entity, staged: pa.Table) -> pa.Table:
        """The staged columns the target stores, named as its columns."""
        keep = [c.name for c in entity.columns if self.store_secrets or not c.secret]
        names = [KEY_COL, *keep, HASH_COL, RAW_DIGEST_COL, EXTRA_COL, SOURCE_COL, LINE_COL]
        return staged.select(names).rename_columns(
            [*names[:-2], "source_ref", "source_line"])

    def refresh_raw_digests(self, conn: Connection, entity: Entity, rows: pa.Table) -> int:
        """Sets the raw digest of stored rows (record_key, row_hash, raw_digest) whose row
        hash is still the one given: rows a run found unchanged, whose raw digest was
        null (stored before 0004) or made under another context. Nothing else changes:
        neither run_id nor loaded_at, so no export, history or count sees it."""
        if rows.num_rows == 0:
            return 0
        return refresh_column(conn, TABLES[entity.name], self.source, rows)

    def delete(self, conn: Connection, entity: Entity, keys: Sequence[str], run_id: str,
               now: datetime, *, hard: bool) -> int:
        """Soft-deletes (or hard-deletes) keys; a customer's addresses go with it."""
        table = TABLES[entity.name]
        count = 0
        for start in range(0, len(keys), KEY_CHUNK):
            chunk = list(keys[start:start + KEY_CHUNK])
            where = sa.and_(table.c.source == self.source, table.c.record_key.in_(chunk))
            count += self._delete_where(conn, table, where, run_id, now, hard=hard)
            for child_name, child in TABLES.items():
                if child_name == "address" and entity.name == "customer":
                    child_where = sa.and_(child.c.source == self.source,
                                          child.c.customer_key.in_(chunk))
                    self._delete_where(conn, child, child_where, run_id, now, hard=hard)
        return count

    @staticmethod
    def _delete_where(conn: Connection, table: sa.Table, where: Any, run_id: str,
                      now: datetime, *, hard: bool) -> int:
        if hard:
            return int(conn.execute(sa.delete(table).where(where)).rowcount)
        stmt = (sa.update(table).where(where, table.c.deleted_at.is_(None))
                .values(deleted_at=now, run_id=run_id, loaded_at=now))
        return int(conn.execute(stmt).rowcount)

    def write_faults(self, conn: Connection, faults: Sequence[Fault], run_id: str,
                     now: datetime, suite_digest: str | None = None) -> None:
        """Appends faults to the fault table, with the suites' digest that judged them."""
        if not faults:
            return
        rows = [{"run_id": run_id, "source": self.source, "entity": f.entity,
                 "record_key": f.key, "stage": str(f.stage), "rule": f.rule,
                 "column_name": f.column, "value": f.value, "message": f.message,
                 "source_ref": f.source, "source_line": f.source_line, "created_at": now,
                 "raw_digest": f.raw_digest, "suite_digest": suite_digest}
                for f in faults]
        conn.execute(sa.insert(FAULTS), rows)

    def open_keyed_faults(self) -> list[dict[str, Any]]:
        """This source's open faults that name their record, in the order written; none
        where the fault digests are not there yet (a new target, or one a dry run did not
        migrate to 0007): those faults are validated again, as before."""
        if not self.is_initialised() or "suite_digest" not in {
                c["name"] for c in sa.inspect(self.engine).get_columns(FAULTS.name)}:
            return []
        columns = [FAULTS.c[n] for n in ("entity", "record_key", "stage", "rule",
                                         "column_name", "value", "message", "raw_digest",
                                         "suite_digest")]
        query = sa.select(*columns).where(
            FAULTS.c.source == self.source, FAULTS.c.cleared_run_id.is_(None),
            FAULTS.c.record_key.is_not(None)).order_by(FAULTS.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def open_faults(self, conn: Connection,
                    before_run: str) -> dict[str, list[tuple[int, str | None]]]:
        """Uncleared faults of earlier runs, per entity: (fault id, record_key or None)."""
        query = sa.select(FAULTS.c.id, FAULTS.c.entity, FAULTS.c.record_key).where(
            FAULTS.c.source == self.source, FAULTS.c.cleared_run_id.is_(None),
            FAULTS.c.run_id != before_run)
        out: dict[str, list[tuple[int, str | None]]] = {}
        for row in conn.execute(query):
            key = None if row.record_key is None else str(row.record_key)
            out.setdefault(str(row.entity), []).append((int(row.id), key))
        return out

    def list_faults(self, *, run_id: str | None = None,
                    include_cleared: bool = False) -> list[dict[str, Any]]:
        """Faults of this source, oldest first: open ones, or those of one run."""
        query = sa.select(FAULTS).where(FAULTS.c.source == self.source)
        if run_id is not None:
            query = query.where(FAULTS.c.run_id == run_id)
        if not include_cleared:
            query = query.where(FAULTS.c.cleared_run_id.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(FAULTS.c.id))]

    def clear_faults(self, conn: Connection, ids: Sequence[int], run_id: str) -> int:
        """Marks faults as cleared by this run."""
        for start in range(0, len(ids), KEY_CHUNK):
            chunk = list(ids[start:start + KEY_CHUNK])
            conn.execute(sa.update(FAULTS).where(FAULTS.c.id.in_(chunk))
                         .values(cleared_run_id=run_id))
        return len(ids)

    def save_state(self, conn: Connection, entity: Entity, cursor: str | None, run_id: str,
                   now: datetime) -> None:
        """Saves an entity's cursor, in the caller's transaction."""
        conn.execute(sa.delete(STATE).where(STATE.c.source == self.source,
                                            STATE.c.entity == entity.name))
        conn.execute(sa.insert(STATE).values(source=self.source, entity=entity.name,
                                             cursor_value=cursor, run_id=run_id,
                                             updated_at=now))

    def record_run(self, conn: Connection, run_id: str, status: str, started: datetime,
                   finished: datetime | None, summary: dict[str, Any] | None) -> None:
        """Inserts or replaces this run's row in the runs table."""
        conn.execute(sa.delete(RUNS).where(RUNS.c.run_id == run_id))
        conn.execute(sa.insert(RUNS).values(
            run_id=run_id, source=self.source, status=status, started_at=started,
            finished_at=finished, summary=None if summary is None else json.dumps(summary)))

    def list_runs(self, limit: int, run_id: str | None = None) -> list[dict[str, Any]]:
        """This source's newest runs (or the one `run_id`), newest first; `summary`
        parsed from its JSON."""
        query = sa.select(RUNS).where(RUNS.c.source == self.source)
        if run_id is not None:
            query = query.where(RUNS.c.run_id == run_id)
        query = query.order_by(RUNS.c.started_at.desc(), RUNS.c.run_id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["summary"] = json.loads(row["summary"]) if row["summary"] else None
        return rows

    def dispose(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()


def _typed(entity: Entity, frame: pd.DataFrame) -> pd.DataFrame:
    """Stored values converted to the pandas dtypes the pipeline compares against."""
    from magsync.transform.schema import PANDAS_DTYPES

    out = frame.copy()
    for col in entity.public_columns:
        if col.name not in out.columns:
            continue
        if col.kind is Kind.TIMESTAMP:
            out[col.name] = pd.to_datetime(out[col.name], utc=True).astype(
                "datetime64[us, UTC]")
        elif col.kind is Kind.DATE:
            out[col.name] = pd.to_datetime(out[col.name]).astype("datetime64[s]")
        else:
            out[col.name] = out[col.name].astype(PANDAS_DTYPES[col.kind])  # type: ignore[call-overload]
    out[EXTRA_COL] = out[EXTRA_COL].astype("str")
    return out


def _key_index(table: pa.Table) -> KeyIndex:
    """A KeyIndex from (record_key, row_hash, deleted, raw_digest) columns."""
    if table.num_rows == 0:
        return KeyIndex.empty()
    keys, hashes, deleted, raw = table.columns
    return KeyIndex(keys.cast(pa.string()),
                    hashes.cast(pa.int64()).to_numpy(),
                    deleted.cast(pa.bool_()).to_numpy(), *_raw_arrays(raw))


def _raw_arrays(raw: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Stored raw digests as int64 (0 where null) and whether each is known."""
    raw = raw.cast(pa.int64())
    known = pc.is_valid(raw).to_numpy()
    return pc.fill_null(raw, 0).to_numpy(), np.asarray(known, bool)


def _arrow_batch(rows: Sequence[Any], schema: pa.Schema) -> pa.RecordBatch:
    """Driver rows as a batch of `schema`, built column by column. Each driver returns its
    own types (SQLite: timestamps and dates as text, booleans as 0/1; the others:
    datetime, date, bool): Arrow infers them, then casts."""
    columns = zip(*rows, strict=True)
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        arr = pa.array(values)
        if pa.types.is_timestamp(field.type) and not pa.types.is_timestamp(arr.type):
            arr = arr.cast(pa.timestamp("us"))  # stored as naive UTC text
        arrays.append(arr.cast(field.type))  # naive UTC timestamps become UTC
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
