"""Bulk upserts through the database driver: the fast paths under SqlTarget.upsert.

SQLAlchemy's executemany processes every parameter of every row in Python (construct_params
and bind processors cost about three times SQLite's own insert). Here the values are
converted column-wise with Arrow into what SQLAlchemy would have bound (timestamps as
naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff`, dates as `YYYY-MM-DD`), then handed to the
driver in bounded chunks: tuples to `executemany` (SQLite; MySQL/MariaDB, whose drivers
turn it into multi-row VALUES statements), CSV text to `COPY` into a temporary table
followed by one `INSERT ... SELECT ... ON CONFLICT` (PostgreSQL with psycopg 3).

A load into an empty SQLite table takes a faster road (`sqlite_bulk_insert`): the ADBC
SQLite driver writes the staged Arrow parts into a scratch database in C, and SQLite
copies them into the target with one sorted `INSERT ... SELECT`.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, DropIndex

from magsync.transform.errors import ConfigError

CHUNK_ROWS = 20_000  # rows converted to Python objects at a time: bounds memory
KEYS = ("source", "record_key")


def as_bound_text(data: pa.Table) -> pa.Table:
    """Timestamps (UTC) as naive UTC text and dates as text, the forms SQLAlchemy binds."""
    for i, fld in enumerate(data.schema):
        if pa.types.is_timestamp(fld.type):
            naive = data.column(i).cast(pa.timestamp("us"))  # the target keeps naive UTC
            data = data.set_column(i, fld.name, pc.cast(naive, pa.string()))
        elif pa.types.is_date(fld.type):
            data = data.set_column(i, fld.name, pc.cast(data.column(i), pa.string()))
    return data


def naive_utc(data: pa.Table) -> pa.Table:
    """Timestamps (UTC) as naive UTC timestamps."""
    for i, fld in enumerate(data.schema):
        if pa.types.is_timestamp(fld.type) and fld.type.tz is not None:
            data = data.set_column(i, fld.name, data.column(i).cast(pa.timestamp("us")))
    return data


def bulk_upsert(conn: Connection, table: sa.Table, data: pa.Table,
                constants: dict[str, Any]) -> None:
    """Inserts or updates `data` (columns named as `table`'s) plus `constants` (the same
    value on every row) by (source, record_key), in the caller's transaction."""
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy_upsert(conn, quote, table, data, constants)
        return
    names = [*data.column_names, *constants]
    fixed = {name: _bound(value) for name, value in constants.items()}
    head = f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) VALUES "
    tail = _on_conflict(dialect.name, quote, names)
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for chunk in _in_key_order(data):
            batch = as_bound_text(chunk)
            bound = _bound_columns(dialect, batch, fixed)
            marks = [param_marker(dialect) if n in bound else "NULL" for n in names]
            params = [batch.column(n).to_pylist() if n in batch.column_names
                      else repeat(fixed[n], batch.num_rows) for n in bound]
            cur.executemany(f"{head}({', '.join(marks)}) {tail}", zip(*params, strict=True))
    finally:
        cur.close()


def _bound_columns(dialect: sa.Dialect, batch: pa.Table, fixed: dict[str, Any]) -> list[str]:
    """The columns passed as parameters. SQLite binds each parameter of each row in
    Python, so a column null in every row of the chunk is written as a NULL literal
    instead (a quarter of the insert time on a typical export). MySQL drivers turn
    executemany into multi-row statements only when every value is a parameter."""
    names = [*batch.column_names, *fixed]
    if dialect.name != "sqlite":
        return names
    return [n for n in batch.column_names if batch.column(n).null_count < batch.num_rows] \
        + [n for n, value in fixed.items() if value is not None]


def _in_key_order(data: pa.Table) -> Iterator[pa.Table]:
    """`data` sorted by record_key, CHUNK_ROWS rows at a time (never a sorted copy of it
    all). In key order, index inserts are appends rather than random B-tree writes
    (SQLite: a third less time); the sort is stable, so a repeated key keeps its order."""
    order = pc.sort_indices(data, [("record_key", "ascending")])
    for start in range(0, data.num_rows, CHUNK_ROWS):
        yield data.take(order.slice(start, CHUNK_ROWS))


def param_marker(dialect: sa.Dialect) -> str:
    """The positional parameter marker of the dialect's driver."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def streaming_cursor(conn: Connection) -> Any:
    """A driver cursor that streams a result instead of buffering all of it."""
    dbapi = conn.connection.driver_connection
    if conn.dialect.driver == "psycopg":
        return dbapi.cursor(name="magsync_stream")  # type: ignore[union-attr]  # server-side
    if conn.dialect.driver == "pymysql":
        from pymysql.cursors import SSCursor  # type: ignore[import-untyped]

        return dbapi.cursor(SSCursor)  # type: ignore[union-attr]
    return dbapi.cursor()  # type: ignore[union-attr]  # SQLite steps as rows are fetched


def _bound(value: Any) -> Any:
    """A constant as SQLAlchemy binds it: a datetime as naive text with microseconds."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def _on_conflict(dialect: str, quote: Any, names: list[str]) -> str:
    updates = [quote(n) for n in names if n not in KEYS]
    if dialect in ("mysql", "mariadb"):
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{n} = VALUES({n})" for n in updates)
    if dialect in ("sqlite", "postgresql"):
        return (f"ON CONFLICT ({', '.join(map(quote, KEYS))}) DO UPDATE SET "
                + ", ".join(f"{n} = excluded.{n}" for n in updates))
    raise ConfigError(f"unsupported target database: {dialect}")


def _copy_upsert(conn: Connection, quote: Any, table: sa.Table, data: pa.Table,
                 constants: dict[str, Any]) -> None:
    """COPY into a temporary table, then one INSERT ... SELECT ... ON CONFLICT."""
    target = quote(table.name)
    stage = quote(f"_magsync_stage_{table.name}")
    cols = ", ".join(map(quote, data.column_names))
    names = [*data.column_names, *constants]
    options = pacsv.WriteOptions(include_header=False)  # strings quoted: "" is not NULL
    with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS "
                    f"SELECT {cols} FROM {target} WITH NO DATA")
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            for batch in _in_key_order(data):
                buf = io.BytesIO()
                pacsv.write_csv(naive_utc(batch), buf, options)
                copy.write(buf.getvalue().decode("utf-8"))  # str: any client encoding
        marks = ", ".join(["%s"] * len(constants))
        cur.execute(f"INSERT INTO {target} ({', '.join(map(quote, names))}) "
                    f"SELECT {cols}, {marks} FROM {stage} "
                    f"{_on_conflict('postgresql', quote, names)}", list(constants.values()))
        cur.execute(f"DROP TABLE {stage}")


def sqlite_bulk_insert(conn: Connection, table: sa.Table, parts: Iterable[pa.Table],
                       scratch: Path, constants: dict[str, Any],
                       before_commit: Callable[[], None]) -> int:
    """Loads `parts` (columns named as `table`'s) plus `constants` into an empty SQLite
    table, in one transaction of `conn`; returns the rows loaded.

    Python's sqlite3 binds each value of each row in Python (three quarters of an
    executemany), so the parts go first, through the ADBC SQLite driver (C, from Arrow),
    into a scratch database of their own. Then, on `conn`: ATTACH the scratch file, drop
    the table's secondary indexes, one INSERT ... SELECT in key order (the primary key
    grows by appends; the input order breaks ties, so a repeated key keeps its last row),
    rebuild the indexes, commit. The target file is only ever opened by Python's sqlite3:
    two SQLite libraries holding the same file open in one process can lose each other's
    POSIX locks. DDL is transactional in SQLite, so a crash anywhere before the commit
    leaves the table empty with its indexes, and a rerun starts over.
    """
    scratch.unlink(missing_ok=True)
    names = _ingest(parts, scratch)
    if not names:
        return 0
    quote = conn.dialect.identifier_preparer.quote
    cols = ", ".join(map(quote, names))
    fixed = ", ".join(map(quote, constants))
    upsert = _on_conflict("sqlite", quote, [*names, *constants])
    indexes = list(table.indexes)
    drops = [str(DropIndex(i).compile(dialect=conn.dialect)) for i in indexes]
    creates = [str(CreateIndex(i).compile(dialect=conn.dialect)) for i in indexes]
    raw = conn.connection.driver_connection
    raw.execute("ATTACH DATABASE ? AS magsync_scratch", (str(scratch),))  # type: ignore[union-attr]
    try:
        raw.execute("BEGIN")  # type: ignore[union-attr]  # DDL too: pysqlite begins only for DML
        for sql in drops:
            raw.execute(sql)  # type: ignore[union-attr]
        cur = raw.execute(  # type: ignore[union-attr]
            f"INSERT INTO main.{quote(table.name)} ({cols}, {fixed}) "
            f"SELECT {cols}, {', '.join('?' * len(constants))} FROM magsync_scratch.part "
            f"WHERE true ORDER BY record_key, rowid {upsert}",  # WHERE: upsert after SELECT
            [_bound(v) for v in constants.values()])
        loaded = int(cur.rowcount)
        cur.close()
        for sql in creates:
            raw.execute(sql)  # type: ignore[union-attr]
        before_commit()
        raw.commit()  # type: ignore[union-attr]
    except BaseException:
        raw.rollback()  # type: ignore[union-attr]
        raise
    finally:
        raw.execute("DETACH DATABASE magsync_scratch")  # type: ignore[union-attr]
        scratch.unlink(missing_ok=True)
    return loaded


def _ingest(parts: Iterable[pa.Table], scratch: Path) -> list[str]:
    """Appends every part to the table `part` of a new scratch database (ADBC); returns
    its columns (none when there was no row)."""
    names: list[str] = []
    with adbc_sqlite.connect(str(scratch)) as adbc, adbc.cursor() as cur:
        for part in parts:
            if part.num_rows:
                cur.adbc_ingest("part", as_bound_text(part), mode="append" if names else "create")
                names = part.column_names
        adbc.commit()
    return names


def sqlite_select_arrow(conn: Connection, sql: str, params: tuple[Any, ...],
                        scratch_dir: Path | None = None) -> pa.Table:
    """The result of a SQLite query as an Arrow table, without a Python object per value.

    SQLite copies the result into a scratch database in `scratch_dir` (default: the
    system's temporary folder) with `CREATE TABLE ... AS`, in C; the ADBC driver reads it
    back as Arrow once Python's sqlite3 has let go of it (the target file itself is never
    opened by a second SQLite library: see sqlite_bulk_insert)."""
    raw = conn.connection.driver_connection
    with tempfile.TemporaryDirectory(prefix="magsync-", dir=scratch_dir) as folder:
        scratch = Path(folder) / "select.sqlite"
        raw.execute("ATTACH DATABASE ? AS magsync_scratch", (str(scratch),))  # type: ignore[union-attr]
        try:
            raw.execute(f"CREATE TABLE magsync_scratch.result AS {sql}", params)  # type: ignore[union-attr]
            raw.commit()  # type: ignore[union-attr]
        finally:
            raw.execute("DETACH DATABASE magsync_scratch")  # type: ignore[union-attr]
        with adbc_sqlite.connect(str(scratch)) as adbc, adbc.cursor() as cur:
            cur.execute("SELECT * FROM result")
            return cur.fetch_arrow_table()


def refresh_column(conn: Connection, table: sa.Table, source: str, rows: pa.Table) -> int:
    """Sets `raw_digest` of the rows of `source` named by `rows` (record_key, row_hash,
    raw_digest; the last of a repeated key counts) whose row hash is still the given one,
    in the caller's transaction: the rows go into a temporary table, then one UPDATE
    joins it (an UPDATE per row would cost a round trip per row on MySQL/MariaDB)."""
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    frame = rows.select(["record_key", "row_hash", "raw_digest"]).to_pandas()
    frame = frame.drop_duplicates("record_key", keep="last")
    stage, target, mark = quote(f"_magsync_refresh_{table.name}"), quote(table.name), \
        param_marker(dialect)
    key = "VARCHAR(512)"
    if dialect.name in ("mysql", "mariadb"):
        key += " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"  # as the target's keys
    suffix = " ON COMMIT DROP" if dialect.name == "postgresql" else ""
    create = "CREATE TEMP TABLE" if dialect.name == "sqlite" else "CREATE TEMPORARY TABLE"
    if dialect.name in ("mysql", "mariadb"):
        update = (f"UPDATE {target} JOIN {stage} AS s ON {target}.record_key = s.record_key "
                  f"AND {target}.row_hash = s.row_hash SET {target}.raw_digest = s.raw_digest "
                  f"WHERE {target}.source = {mark}")
    else:
        update = (f"UPDATE {target} SET raw_digest = s.raw_digest FROM {stage} AS s "
                  f"WHERE {target}.source = {mark} AND {target}.record_key = s.record_key "
                  f"AND {target}.row_hash = s.row_hash")
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(f"{create} {stage} (record_key {key} PRIMARY KEY, row_hash BIGINT, "
                    f"raw_digest BIGINT){suffix}")
        values = list(zip(frame["record_key"].tolist(), frame["row_hash"].tolist(),
                          frame["raw_digest"].tolist(), strict=True))
        for start in range(0, len(values), CHUNK_ROWS):
            cur.executemany(f"INSERT INTO {stage} VALUES ({mark}, {mark}, {mark})",
                            values[start:start + CHUNK_ROWS])
        cur.execute(update, (source,))
        count = int(cur.rowcount)
        mysql = dialect.name in ("mysql", "mariadb")
        cur.execute(f"DROP {'TEMPORARY ' if mysql else ''}TABLE {stage}")
    finally:
        cur.close()
    return count
