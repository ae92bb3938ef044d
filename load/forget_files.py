"""Erasure in the output folder: every file that holds a forgotten customer, found by
walking the folder (exports, history, staging and reports wherever they live).

Parquet and Arrow files with records (exports, their key files, history, staging) lose the
customer's rows and are rewritten through a temporary file and a rename, keeping their
schema and key-value metadata; an export's manifest is brought up to date, so the next sync
still patches it. Report records (records.parquet and the parts of a killed run) keep their
rows with the key, value and any identifying text masked; records.csv and the run page
are written again from them. Any other text file (summary.json, Data Docs) has the
customer's identifying values replaced. Scratch databases under staging/ are removed.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from magsync.load.parquet_export import STATE_DIR, fingerprint
from magsync.load.report import RECORD_SCHEMA, UTF8_BOM, spreadsheet_safe
from magsync.transform.schema import KEY_COL

ERASED = "<erased>"
SCRUBBED = "***"
ENTITY_NAMES = {"customers": "customer", "customer": "customer",
                "customer_addresses": "address", "address": "address"}


@dataclass
class Subject:
    """What identifies one forgotten customer in files: its record keys and those of its
    addresses (raw and as the exports hold them), its identity and identifying values."""

    source: str
    customer_keys: set[str] = field(default_factory=set)
    address_keys: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)  # lower-case, and as exports hash them
    websites: set[int] = field(default_factory=set)
    ids: set[int] = field(default_factory=set)
    needles: set[str] = field(default_factory=set)  # identifying text values

    def strong(self) -> set[str]:
        """Values that name this customer alone wherever they appear: its emails and the
        hashed forms of its keys (a name or a phone may be someone else's too)."""
        hashed = {k for k in self.customer_keys | self.address_keys if len(k) == 64}
        return self.emails | hashed

    def weak(self) -> set[str]:
        """Its other identifying values (names, phone, street...)."""
        return self.needles - self.strong()

    def keys_of(self, entity: str) -> set[str]:
        """The record keys of `entity` ('customer' or 'address')."""
        return self.customer_keys if entity == "customer" else self.address_keys


@dataclass
class FileChanges:
    """The files an erasure rewrote (or would), removed, or could not clean."""

    rewritten: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unscrubbed: list[str] = field(default_factory=list)


def entity_of(path: Path) -> str | None:
    """'customer' or 'address' for a file of those records, by its folder or name."""
    for part in (path.name.split(".")[0], *reversed(path.parent.parts)):
        if part in ENTITY_NAMES:
            return ENTITY_NAMES[part]
    return None


def other_source(path: Path, root: Path, source: str) -> bool:
    """Whether `path` sits under another source's `source=<name>` folder."""
    return any(p.startswith("source=") and p != f"source={source}"
               for p in path.relative_to(root).parts)


def walk(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Every file under `root`, sorted, less `skip` and temporary files."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path not in skip and not path.name.endswith(".tmp"):
            yield path


def read_records(path: Path) -> pa.Table | None:
    """A Parquet or Arrow file's rows, or None when it is neither."""
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        if path.suffix == ".arrow":
            with pa.memory_map(str(path)) as source:
                return pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid):
        return None
    return None


def row_hits(table: pa.Table, entity: str, subject: Subject) -> pa.Array:
    """Per row of a customer or address file, whether it is the subject's."""
    names = set(table.column_names)
    hit = pa.array([False] * table.num_rows)

    def isin(column: str, values: set[object]) -> pa.Array:
        if column not in names or not values:
            return pa.array([False] * table.num_rows)
        col = table.column(column)
        wanted = pa.array(sorted(values, key=str), col.type if pa.types.is_integer(col.type)
                          else pa.string())
        return pc.fill_null(pc.is_in(col.cast(wanted.type, safe=False), value_set=wanted),
                            False)

    hit = pc.or_(hit, isin(KEY_COL, set(subject.keys_of(entity))))
    hit = pc.or_(hit, isin("customer_id", set(subject.ids)))
    if entity == "customer" and "email" in names:
        email = pc.fill_null(pc.is_in(pc.utf8_lower(table.column("email").cast(pa.string())),
                                      value_set=pa.array(sorted(subject.emails), pa.string())),
                             False)
        if "website_id" in names and subject.websites:
            email = pc.and_(email, isin("website_id", set(subject.websites)))
        hit = pc.or_(hit, email)
    if entity == "address":
        hit = pc.or_(hit, isin("customer_key", set(subject.customer_keys)))
    return hit


def key_file(export: Path) -> Path | None:
    """The key file beside a current export (`.magsync/<table>.keys.arrow`), if any."""
    if export.suffix != ".parquet":
        return None
    keys = export.parent / STATE_DIR / f"{export.stem}.keys.arrow"
    return keys if keys.is_file() else None


def export_of(keys: Path) -> Path | None:
    """The export a key file belongs to, if it is one and the export exists."""
    if keys.parent.name != STATE_DIR or not keys.name.endswith(".keys.arrow"):
        return None
    export = keys.parent.parent / (keys.name.removesuffix(".keys.arrow") + ".parquet")
    return export if export.is_file() else None


def needle_pattern(needles: set[str], *, words: bool = False) -> re.Pattern[str] | None:
    """One case-insensitive pattern of the needles as text, HTML and JSON show them;
    with `words`, only where they stand as whole words ('Ann' not in 'Annual')."""
    forms: set[str] = set()
    for n in needles:
        if len(n) >= 3:
            forms |= {n, html.escape(n), html.escape(n, quote=False),
                      json.dumps(n)[1:-1], json.dumps(n, ensure_ascii=False)[1:-1]}
    if not forms:
        return None
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    if words:
        alternatives = rf"(?<!\w)(?:{alternatives})(?!\w)"
    return re.compile(alternatives, re.IGNORECASE)


def scrub(text: str, *patterns: re.Pattern[str] | None) -> str:
    """`text` with every match of the patterns replaced by ***."""
    for pattern in patterns:
        if pattern is not None:
            text = pattern.sub(SCRUBBED, text)
    return text


def found(text: str, *patterns: re.Pattern[str] | None) -> bool:
    """Whether any of the patterns matches `text`."""
    return any(p is not None and p.search(text) for p in patterns)


def write_atomic(path: Path, table: pa.Table) -> None:
    """Rewrites a Parquet or Arrow file through a temporary file (schema and metadata
    kept), fsynced, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        pq.write_table(table, tmp, compression="zstd")
    else:
        with pa.ipc.new_file(tmp, table.schema,
                             options=pa.ipc.IpcWriteOptions(compression="zstd")) as out:
            out.write_table(table)
    _sync_replace(tmp, path)


def write_text_atomic(path: Path, data: bytes) -> None:
    """Rewrites a file's bytes through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    _sync_replace(tmp, path)


def _sync_replace(tmp: Path, path: Path) -> None:
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


def masked_records(table: pa.Table, subject: Subject, strong: re.Pattern[str] | None,
                   weak: re.Pattern[str] | None) -> tuple[pa.Table, int]:
    """Report records of the subject (its keys, or its email in the key or value) with
    key and value masked and its identifying values scrubbed from the text; the email
    scrubbed from any other record's message."""
    rows = table.to_pylist()
    masked = 0
    for row in rows:
        key, value, message = row.get("key"), row.get("value"), row.get("message")
        mine = (key is not None and (key in subject.keys_of(str(row.get("entity")))
                                     or found(key, strong))) \
            or (isinstance(value, str) and found(value, strong))
        if not mine and not (isinstance(message, str) and found(message, strong)):
            continue
        masked += 1
        if mine:
            row["key"] = None if key is None else ERASED
            row["value"] = None if value is None else ERASED
        for column in ("message", "changed_fields"):
            if isinstance(row.get(column), str):
                row[column] = scrub(row[column], strong, weak if mine else None)
    out = pa.Table.from_pylist(rows, schema=table.schema) if masked else table
    return out, masked


def rewrite_records_csv(report_dir: Path) -> None:
    """records.csv again from records.parquet, as the run wrote it (BOM, formula-safe)."""
    tmp = report_dir / ".records.csv.tmp"
    table = pq.read_table(report_dir / "records.parquet")
    with pa.OSFile(str(tmp), "wb") as out:
        out.write(UTF8_BOM)
        with pacsv.CSVWriter(out, RECORD_SCHEMA) as writer:
            writer.write_table(spreadsheet_safe(table.cast(RECORD_SCHEMA)))
    _sync_replace(tmp, report_dir / "records.csv")


def update_manifest(export: Path, table: pa.Table) -> None:
    """The export's manifest with its new row count and fingerprint (its policy kept)."""
    manifest = export.parent / STATE_DIR / f"{export.stem}.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    data.update(rows=table.num_rows, fingerprint=fingerprint(export))
    write_text_atomic(manifest, json.dumps(data).encode())
