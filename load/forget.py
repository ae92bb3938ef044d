"""Erasure on request (`magsync forget`): one customer and its addresses, everywhere
magsync wrote them, and a suppression row so that later syncs skip it.

Order, so that an interrupted erasure is safe to run again: the suppression row and the
deletes in the target commit in one transaction (SQLite with `secure_delete`, then VACUUM,
so no deleted byte stays in the file), then the output folder is cleaned
(load/forget_files.py), then the migration id map; the erasure record (what kind of
identifier, when, counts, which files; never the erased values) is returned for the
report. A rerun finds the customer again by its identifier in whatever a crash left.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from magsync.load import forget_files as ff
from magsync.load import suppression
from magsync.load.forget_target import erase_id_maps, erase_target
from magsync.load.sql_store import SqlTarget
from magsync.load.tables import TABLES
from magsync.transform.schema import KEY_COL

NEEDLE_COLUMNS = {
    "customer": ("email", "prefix", "firstname", "middlename", "lastname", "suffix",
                 "taxvat"),
    "address": ("prefix", "firstname", "middlename", "lastname", "suffix", "company",
                "street", "telephone", "fax", "vat_id"),
}
CUSTOMERS, ADDRESSES = TABLES["customer"], TABLES["address"]


@dataclass(frozen=True)
class Identity:
    """Whom to forget: (website id, email) or a customer id."""

    email: str | None = None
    website_id: int | None = None
    customer_id: int | None = None

    @property
    def kind(self) -> str:
        """What kind of identifier was given (recorded; never its value)."""
        return "email+website" if self.email else "customer_id"


@dataclass
class Erasure:
    """The erasure record: counts and files, never a value."""

    identifier: str
    counts: dict[str, int] = field(default_factory=dict)
    files: ff.FileChanges = field(default_factory=ff.FileChanges)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"identifier": self.identifier, "counts": self.counts,
                "files": {"rewritten": self.files.rewritten, "removed": self.files.removed,
                          "unscrubbed": self.files.unscrubbed}, "notes": self.notes}


def _hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def customer_key(website_id: int, email: str) -> str:
    """The natural record key `[website_id,"email"]` (transform/keys.py)."""
    return f"[{website_id},{json.dumps(email, ensure_ascii=False)}]"


def start_subject(source: str, who: Identity, pii_key: bytes | None) -> ff.Subject:
    """The keys the identifier alone gives."""
    subject = ff.Subject(source)
    if who.email is not None and who.website_id is not None:
        email = suppression.clean_email(who.email)
        subject.customer_keys.add(customer_key(who.website_id, email))
        subject.emails.add(email)
        subject.websites.add(who.website_id)
        subject.needles.add(email)
    if who.customer_id is not None:
        subject.customer_keys.add(f"[{who.customer_id}]")
        subject.ids.add(who.customer_id)
    _hashed_forms(subject, pii_key)
    return subject


def _hashed_forms(subject: ff.Subject, pii_key: bytes | None) -> None:
    """Adds the forms the exports hash keys and emails into (under the PII key)."""
    if pii_key:
        subject.customer_keys |= {_hmac(pii_key, k) for k in list(subject.customer_keys)}
        subject.address_keys |= {_hmac(pii_key, k) for k in list(subject.address_keys)}
        subject.emails |= {_hmac(pii_key, e) for e in list(subject.emails) if "@" in e}


def _add_rows(subject: ff.Subject, entity: str, table: pa.Table) -> None:
    """Takes keys, ids, emails and identifying values from the subject's rows."""
    for row in table.to_pylist():
        key = row.get(KEY_COL)
        if key is not None:
            subject.keys_of(entity).add(str(key))
        if entity == "customer":
            if row.get("customer_id") is not None:
                subject.ids.add(int(row["customer_id"]))
            if row.get("email") and row.get("website_id") is not None:
                subject.emails.add(str(row["email"]).lower())
                subject.websites.add(int(row["website_id"]))
        for column in NEEDLE_COLUMNS[entity]:
            value = row.get(column)
            if isinstance(value, str) and value.strip():
                subject.needles.add(value)
                subject.needles.update(line for line in value.splitlines() if line.strip())


def resolve(target: SqlTarget, output_dir: Path, who: Identity,
            pii_key: bytes | None, skip: set[Path]) -> ff.Subject:
    """Finds the customer and its addresses in the target (active and soft-deleted rows)
    and in the files of the output folder."""
    subject = start_subject(target.source, who, pii_key)
    if target.is_initialised():
        with target.engine.connect() as conn:
            _resolve_in_target(conn, target.source, subject)
    _hashed_forms(subject, pii_key)
    for entity in ("customer", "address"):  # customers first: their keys find addresses
        for path in ff.walk(output_dir, skip):
            if ff.entity_of(path) != entity or ff.other_source(path, output_dir,
                                                                target.source) \
                    or "reports" in path.relative_to(output_dir).parts:
                continue
            table = ff.read_records(path)
            if table is not None:
                _add_rows(subject, entity, table.filter(ff.row_hits(table, entity, subject)))
        _hashed_forms(subject, pii_key)
    return subject


def _resolve_in_target(conn: Connection, source: str, subject: ff.Subject) -> None:
    c, a = CUSTOMERS.c, ADDRESSES.c
    wanted: list[sa.ColumnElement[bool]] = [c.record_key.in_(sorted(subject.customer_keys))]
    if subject.ids:
        wanted.append(c.customer_id.in_(sorted(subject.ids)))
    for website in subject.websites:
        wanted.append(sa.and_(c.website_id == website, c.email.in_(sorted(subject.emails))))
    rows = conn.execute(sa.select(CUSTOMERS).where(c.source == source, sa.or_(*wanted)))
    _add_rows(subject, "customer", pa.Table.from_pylist([dict(r._mapping) for r in rows]))
    parents: list[sa.ColumnElement[bool]] = [a.customer_key.in_(sorted(subject.customer_keys))]
    if subject.ids:
        parents.append(a.customer_id.in_(sorted(subject.ids)))
    rows = conn.execute(sa.select(ADDRESSES).where(a.source == source, sa.or_(*parents)))
    _add_rows(subject, "address", pa.Table.from_pylist([dict(r._mapping) for r in rows]))


def erase_files(output_dir: Path, subject: ff.Subject, skip: set[Path], *,
                dry_run: bool) -> ff.FileChanges:
    """Cleans every file of the output folder that holds the customer (or lists them)."""
    from magsync.load.report_page import write_page

    changes = ff.FileChanges()
    strong = ff.needle_pattern(subject.strong())
    weak = ff.needle_pattern(subject.weak(), words=True)
    pages: set[Path] = set()
    for path in list(ff.walk(output_dir, skip)):
        rel = path.relative_to(output_dir)
        if ff.other_source(path, output_dir, subject.source) \
                or _other_source_report(output_dir, rel, subject.source):
            continue
        if "staging" in rel.parts and path.suffix != ".parquet":
            if path.suffix.startswith(".sqlite") or found_in(path, strong, weak):
                changes.removed.append(str(rel))
                if not dry_run:
                    path.unlink()
            continue
        changed = _erase_file(path, rel, subject, (strong, weak), dry_run=dry_run)
        if changed == "unscrubbed":
            changes.unscrubbed.append(str(rel))
        elif changed:
            changes.rewritten.append(str(rel))
            keys = ff.key_file(path)
            if keys is not None:
                changes.rewritten.append(str(keys.relative_to(output_dir)))
            run = _report_run(rel)
            if run is not None:
                pages.add(output_dir / run)
    for folder in sorted(pages):
        for page, make in (("records.csv", ff.rewrite_records_csv), ("index.html", write_page)):
            rel_page = str((folder / page).relative_to(output_dir))
            if (folder / page).is_file() and (folder / "records.parquet").is_file() \
                    and (folder / "summary.json").is_file():
                if rel_page not in changes.rewritten:
                    changes.rewritten.append(rel_page)
                if not dry_run:
                    make(folder)
    return changes


def _report_run(rel: Path) -> Path | None:
    """The run folder (relative) of a file inside one, under `reports/source=<name>/`
    (load/layout.py) or, from before the per-store layout, right under `reports/`."""
    depth = 3 if len(rel.parts) > 1 and rel.parts[1].startswith("source=") else 2
    if rel.parts[0] != "reports" or len(rel.parts) <= depth:
        return None
    return Path(*rel.parts[:depth])


def _other_source_report(output_dir: Path, rel: Path, source: str) -> bool:
    """Whether `rel` lies in the report folder of another source's run."""
    run = _report_run(rel)
    if run is None:
        return False
    try:
        summary = json.loads((output_dir / run / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # a killed run's folder: cleaned
    return bool(summary.get("source", source) != source)


def found_in(path: Path, *patterns: Any) -> bool:
    """Whether a file's bytes (read as Latin-1) match any of the patterns."""
    return ff.found(path.read_bytes().decode("latin-1"), *patterns)


def _erase_file(path: Path, rel: Path, subject: ff.Subject, patterns: Any, *,
                dry_run: bool) -> bool | str:
    """Cleans one file; whether it held the customer ('unscrubbed': it does, but it is
    neither records nor text)."""
    table = ff.read_records(path)
    if table is not None:
        if rel.parts[0] == "reports" and {"key", "entity"} <= set(table.column_names):
            masked, n = ff.masked_records(table, subject, *patterns)
            if n and not dry_run:
                ff.write_atomic(path, masked)
            return bool(n)
        entity = ff.entity_of(path)
        keys = ff.key_file(path)
        if entity is None or ff.export_of(path) is not None:
            return False  # a key file goes with its export
        hits = ff.row_hits(table, entity, subject)
        key_table = ff.read_records(keys) if keys else None
        if key_table is not None and key_table.num_rows == table.num_rows:
            hits = pc.or_(hits, ff.row_hits(key_table, entity, subject))
        if not pc.any(hits).as_py():
            return False
        if not dry_run:
            if keys is not None and key_table is not None:
                ff.write_atomic(keys, key_table.filter(pc.invert(hits)) if
                                key_table.num_rows == table.num_rows else key_table.filter(
                                    pc.invert(ff.row_hits(key_table, entity, subject))))
            kept = table.filter(pc.invert(hits))
            ff.write_atomic(path, kept)
            if keys is not None:
                ff.update_manifest(path, kept)
        return True
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "unscrubbed" if ff.found(data.decode("latin-1"), *patterns) else False
    if not ff.found(text, *patterns):
        return False
    if not dry_run:
        ff.write_text_atomic(path, ff.scrub(text, *patterns).encode("utf-8"))
    return True



def run_erasure(target: SqlTarget, output_dir: Path, who: Identity, *, run_id: str,
                pii_key: bytes | None, dry_run: bool, wait_lock_s: float,
                held: Callable[[], AbstractContextManager[Any]] = nullcontext) -> Erasure:
    """The whole erasure under the target's run lock (a dry run takes none and changes
    nothing): suppression and target, then files, then id maps. `held` wraps the work
    under the lock (a remote output: fetched before, published after)."""
    from magsync.load.lock import RunLock

    erasure = Erasure(who.kind)
    skip = _database_files(target, output_dir)
    lock = None
    if not dry_run:
        lock = RunLock(target.engine, target.source, run_id)
        lock.acquire(wait_lock_s)
    try:
        with nullcontext() if dry_run else held():
            if not dry_run:
                target.migrate()  # the suppression table (a new target: made here)
            subject = resolve(target, output_dir, who, pii_key, skip)
            erasure.counts.update(erase_target(target, subject, who.customer_id, run_id,
                                               pii_key, dry_run=dry_run))
            erasure.files = erase_files(output_dir, subject, skip, dry_run=dry_run)
            entries, maps = erase_id_maps(output_dir, subject, skip, dry_run=dry_run)
            erasure.counts["id_map_entries"] = entries
            erasure.files.rewritten += maps
    finally:
        if lock is not None:
            lock.release()
    if target.dialect != "sqlite":
        erasure.notes.append(f"{target.dialect}: rows deleted; dead tuples and the server's "
                             "log are outside this guarantee (README, Erasure)")
    if erasure.files.unscrubbed:
        erasure.notes.append(f"{len(erasure.files.unscrubbed)} file(s) name the customer but "
                             "are neither records nor text: remove them by hand")
    return erasure


def _database_files(target: SqlTarget, output_dir: Path) -> set[Path]:
    """The target's own files (SQLite and its lock files), which the walk leaves alone."""
    database = target.engine.url.database if target.dialect == "sqlite" else None
    if not database or database == ":memory:":
        return set()
    main = Path(database).resolve()
    return {main, *main.parent.glob(main.name + "-*"),
            *main.parent.glob(main.name + ".*.magsync-lock")}


def write_report(report_dir: Path, erasure: Erasure, base: dict[str, Any]) -> Path:
    """The forget run's report: summary.json with the erasure record, and its page."""
    from magsync.load.report_page import write_page

    counts = {"customer": {"erased": erasure.counts.get("customers", 0)},
              "address": {"erased": erasure.counts.get("addresses", 0)}}
    summary = {**base, "counts": counts, "notes": erasure.notes,
               "erasure": erasure.to_dict()}
    report_dir.mkdir(parents=True, exist_ok=True)
    ff.write_text_atomic(report_dir / "summary.json",
                         (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    write_page(report_dir)
    return report_dir / "summary.json"
