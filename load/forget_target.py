"""Erasure in the databases: the target's rows, faults and run summaries (with the
suppression row, in one transaction) and the migration id maps. SQLite files are written
with `secure_delete` and then VACUUMed: no freed page keeps a deleted byte."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from magsync.load import forget_files as ff
from magsync.load import suppression
from magsync.load.sql_store import KEY_CHUNK, SqlTarget
from magsync.load.tables import FAULTS, RUNS, TABLES

CUSTOMERS, ADDRESSES = TABLES["customer"], TABLES["address"]


def erase_target(target: SqlTarget, subject: ff.Subject, customer_id: int | None,
                 run_id: str, pii_key: bytes | None, *, dry_run: bool) -> dict[str, int]:
    """Suppresses the customer and hard-deletes its rows, its addresses and its faults,
    and scrubs the run summaries that name it, in one transaction; returns the counts."""
    if not target.is_initialised():
        return {}
    pattern = ff.needle_pattern(subject.strong())  # a name alone may be someone else's
    with target.engine.connect() as conn:
        if target.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
            conn.commit()
        with conn.begin():
            counts = _delete_rows(conn, target.source, subject, pattern, dry_run=dry_run)
            if not dry_run:
                emails = {(w, e) for w in subject.websites for e in subject.emails
                          if "@" in e and len(e) != 64}
                counts["suppression_rows"] = suppression.suppress(
                    conn, target.source, run_id, pii_key, emails=emails,
                    ids=subject.ids | ({customer_id} if customer_id is not None else set()))
        if target.dialect == "sqlite" and not dry_run:
            conn.exec_driver_sql("VACUUM")  # a new file: no freed page keeps old bytes
            conn.commit()
    return counts


def _delete_rows(conn: Connection, source: str, subject: ff.Subject,
                 pattern: Any, *, dry_run: bool) -> dict[str, int]:
    """Deletes (or, in a dry run, counts) the subject's rows, faults and summaries."""
    counts = {}
    for name, table, keys in (("customers", CUSTOMERS, subject.customer_keys),
                              ("addresses", ADDRESSES, subject.address_keys)):
        n = 0
        ordered = sorted(keys)
        for start in range(0, len(ordered), KEY_CHUNK):
            chunk = ordered[start:start + KEY_CHUNK]
            where = sa.or_(table.c.record_key.in_(chunk),
                           *([table.c.customer_key.in_(chunk)] if name == "addresses" else []))
            where = sa.and_(table.c.source == source, where)
            n += int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)
                                  ).scalar_one()) if dry_run else \
                int(conn.execute(sa.delete(table).where(where)).rowcount)
        counts[name] = n
    ids = [r.id for r in conn.execute(sa.select(
        FAULTS.c.id, FAULTS.c.entity, FAULTS.c.record_key, FAULTS.c.value, FAULTS.c.message
    ).where(FAULTS.c.source == source)) if _fault_is_theirs(r, subject, pattern)]
    for start in range(0, 0 if dry_run else len(ids), KEY_CHUNK):
        conn.execute(sa.delete(FAULTS).where(FAULTS.c.id.in_(ids[start:start + KEY_CHUNK])))
    counts["faults"] = len(ids)
    counts["run_summaries"] = 0
    if pattern is not None:
        for run_id, summary in conn.execute(sa.select(RUNS.c.run_id, RUNS.c.summary).where(
                RUNS.c.source == source)).all():
            if not summary or not pattern.search(summary):
                continue
            counts["run_summaries"] += 1
            if not dry_run:
                conn.execute(sa.update(RUNS).where(RUNS.c.run_id == run_id).values(
                    summary=pattern.sub(ff.SCRUBBED, summary)))
    return counts


def _fault_is_theirs(row: Any, subject: ff.Subject, pattern: Any) -> bool:
    key = row.record_key
    if key is not None and key in subject.keys_of(str(row.entity)):
        return True
    texts = [t for t in (key, row.value, row.message) if t]
    return bool(pattern and any(pattern.search(t) for t in texts))


def erase_id_maps(output_dir: Path, subject: ff.Subject, skip: set[Path], *,
                  dry_run: bool) -> tuple[int, list[str]]:
    """Removes the customer's entries from every migration id map in the output folder
    (secure_delete, then VACUUM); returns the entries and the files."""
    total, files = 0, []
    keys = sorted(subject.customer_keys)
    for path in (p for p in ff.walk(output_dir, skip) if p.suffix == ".sqlite"
                 and "staging" not in p.relative_to(output_dir).parts):
        conn = sqlite3.connect(path)
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'idmap'").fetchone():
                continue
            conn.execute("PRAGMA secure_delete = ON")
            marks = ",".join("?" * len(keys))
            where = (f"(entity = 'customer' AND (source_key IN ({marks}) OR lower(email) IN "
                     f"({','.join('?' * len(subject.emails))}))) OR (entity = 'address' AND "
                     f"(parent_key IN ({marks}) OR source_key IN "
                     f"({','.join('?' * len(subject.address_keys))})))")
            args = [*keys, *sorted(subject.emails), *keys, *sorted(subject.address_keys)]
            n = conn.execute(f"SELECT count(*) FROM idmap WHERE {where}", args).fetchone()[0]
            if n and not dry_run:
                with conn:
                    conn.execute(f"DELETE FROM idmap WHERE {where}", args)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("VACUUM")
            if n:
                total += n
                files.append(str(path.relative_to(output_dir)))
        finally:
            conn.close()
    return total, files
