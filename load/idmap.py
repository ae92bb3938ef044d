"""The id map of a store migration: source record keys to target ids, in local SQLite.

One file (default `<output_dir>/migrate-state.sqlite`) holds the map of every migration
scope (a source name and a target endpoint). A row is `pending` from just before its
create is sent until the store's answer is recorded, then `done` with the target id, the
hash of the payload written and a digest per field (never the values). A rerun therefore
updates instead of duplicating, and a pending row tells the next run that a create may
have reached the store: it is looked up there before anything is resent.

Which keys the current run has read lives in a temporary table, so a dry run can plan
deletions without writing the file. The file is locked (flock) for the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magsync.transform.errors import TargetLockedError

PENDING, DONE = "pending", "done"
ENTITIES = ("customer", "address")
_CHUNK = 500  # keys per IN (...) query: far below SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idmap (
    scope TEXT NOT NULL,
    entity TEXT NOT NULL,
    source_key TEXT NOT NULL,
    state TEXT NOT NULL,
    target_id INTEGER,
    parent_id INTEGER,       -- address: its target customer id; customer: its target website
    email TEXT,              -- customer: lower-case email, to find a pending create again
    parent_key TEXT,         -- address: its customer's source key
    payload_hash INTEGER,
    fields TEXT,             -- JSON {field: digest} of what was last written
    run_id TEXT,
    PRIMARY KEY (scope, entity, source_key)
);
CREATE INDEX IF NOT EXISTS idmap_target ON idmap (scope, entity, target_id);
CREATE INDEX IF NOT EXISTS idmap_parent ON idmap (scope, entity, parent_key);
"""
_COLUMNS = ("source_key", "state", "target_id", "parent_id", "email", "parent_key",
            "payload_hash", "fields")


@dataclass(frozen=True)
class Entry:
    """One mapped (or pending) record."""

    source_key: str
    state: str
    target_id: int | None = None
    parent_id: int | None = None
    email: str | None = None
    parent_key: str | None = None
    payload_hash: int | None = None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the store confirmed the write and gave the target id."""
        return self.state == DONE and self.target_id is not None


def _entry(row: Sequence[Any]) -> Entry:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["fields"] = json.loads(values["fields"]) if values["fields"] else {}
    return Entry(**values)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class IdMap:
    """The id map of one scope; `readonly` (dry runs) never writes the file."""

    def __init__(self, path: Path, scope: str, *, readonly: bool = False) -> None:
        self.path = path
        self.scope = scope
        self.readonly = readonly
        self._lock_fh: Any = None
        if readonly and not path.exists():
            self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        elif readonly:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                        check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        if not readonly or not path.exists():
            self.conn.executescript(_SCHEMA)
        self.conn.execute("CREATE TEMP TABLE seen (entity TEXT, source_key TEXT, "
                          "PRIMARY KEY (entity, source_key))")

    def lock(self) -> None:
        """Takes the file's lock (TargetLockedError while another migration holds it)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = lock_path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise TargetLockedError(f"the migration state {self.path} is locked by another "
                                    "run") from None
        self._lock_fh = fh

    def close(self) -> None:
        """Closes the database and releases the lock."""
        self.conn.close()
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # --- reads ----------------------------------------------------------------------------

    def get(self, entity: str, keys: Iterable[str]) -> dict[str, Entry]:
        """The entries of these source keys (missing keys are left out)."""
        out: dict[str, Entry] = {}
        wanted = list(dict.fromkeys(keys))
        for part in _chunks(wanted):
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM idmap WHERE scope = ? AND entity = ? "
                f"AND source_key IN ({marks})", (self.scope, entity, *part))
            out.update((row[0], _entry(row)) for row in rows)
        return out

    def owners(self, entity: str, target_ids: Iterable[int]) -> dict[int, str]:
        """Target id -> the source key mapped to it, for ids some done entry holds."""
        out: dict[int, str] = {}
        for part in _chunks(list(dict.fromkeys(target_ids))):
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT target_id, source_key FROM idmap WHERE scope = ? AND entity = ? "
                f"AND state = '{DONE}' AND target_id IN ({marks})", (self.scope, entity, *part))
            out.update((int(tid), str(key)) for tid, key in rows)
        return out

    def count(self, entity: str) -> int:
        """Done entries of an entity."""
        row = self.conn.execute("SELECT count(*) FROM idmap WHERE scope = ? AND entity = ? "
                                f"AND state = '{DONE}'", (self.scope, entity)).fetchone()
        return int(row[0])

    def unseen(self, entity: str) -> list[Entry]:
        """Done entries whose key this run has not read (deletion candidates)."""
        rows = self.conn.execute(
            f"SELECT {', '.join('m.' + c for c in _COLUMNS)} FROM idmap m "
            "LEFT JOIN temp.seen s ON s.entity = m.entity AND s.source_key = m.source_key "
            f"WHERE m.scope = ? AND m.entity = ? AND m.state = '{DONE}' "
            "AND s.source_key IS NULL ORDER BY m.target_id", (self.scope, entity))
        return [_entry(row) for row in rows]

    def was_seen(self, entity: str, key: str) -> bool:
        """Whether this run has read the key."""
        row = self.conn.execute("SELECT 1 FROM temp.seen WHERE entity = ? AND source_key = ?",
                                (entity, key)).fetchone()
        return row is not None

    # --- writes ---------------------------------------------------------------------------

    def mark_seen(self, entity: str, keys: Iterable[str]) -> set[str]:
        """Notes keys this run read; returns those it had already read (in earlier batches)."""
        wanted = list(dict.fromkeys(keys))
        before: set[str] = set()
        for part in _chunks(wanted):
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(f"SELECT source_key FROM temp.seen WHERE entity = ? AND "
                                     f"source_key IN ({marks})", (entity, *part))
            before.update(str(r[0]) for r in rows)
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO temp.seen VALUES (?, ?)",
                                  [(entity, k) for k in wanted])
        return before

    def put(self, entity: str, entries: Iterable[Entry], run_id: str) -> None:
        """Inserts or replaces entries, in one transaction."""
        rows = [(self.scope, entity, e.source_key, e.state, e.target_id, e.parent_id, e.email,
                 e.parent_key, e.payload_hash,
                 json.dumps(e.fields, sort_keys=True) if e.fields else None, run_id)
                for e in entries]
        if self.readonly or not rows:
            return
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO idmap (scope, entity, source_key, state, target_id, "
                "parent_id, email, parent_key, payload_hash, fields, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def forget(self, entity: str, keys: Iterable[str]) -> None:
        """Removes entries (deleted on the target, or a create the store refused)."""
        wanted = list(dict.fromkeys(keys))
        if self.readonly or not wanted:
            return
        with self.conn:
            for part in _chunks(wanted):
                marks = ",".join("?" * len(part))
                self.conn.execute(f"DELETE FROM idmap WHERE scope = ? AND entity = ? AND "
                                  f"source_key IN ({marks})", (self.scope, entity, *part))

    def forget_children(self, parent_keys: Iterable[str]) -> None:
        """Removes the address entries of these customers (deleted with them)."""
        wanted = list(dict.fromkeys(parent_keys))
        if self.readonly or not wanted:
            return
        with self.conn:
            for part in _chunks(wanted):
                marks = ",".join("?" * len(part))
                self.conn.execute(f"DELETE FROM idmap WHERE scope = ? AND entity = 'address' "
                                  f"AND parent_key IN ({marks})", (self.scope, *part))
