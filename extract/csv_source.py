"""The CSV source: a file or a folder of Magento or canonical exports, as RawBatches."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from magsync.extract.csv_faults import RowPeek
from magsync.extract.csv_formats import (
    ENTITY_OF,
    READ_ORDER,
    ColumnMap,
    Format,
    ce_maps,
    detect,
    ee_address_map,
    simple_map,
)
from magsync.extract.csv_open import CsvFile, inspect
from magsync.extract.csv_reader import CsvRecordReader, RawChunk, read_header
from magsync.extract.progress import ByteTally
from magsync.transform.batch import CUST_EMAIL_COL, CUST_WEBSITE_COL, RawBatch
from magsync.transform.errors import SourceFatalError
from magsync.transform.faults import Fault, Stage
from magsync.transform.schema import ADDRESS, CUSTOMER, EXTRA_COL, LINE_COL, SOURCE_COL
from magsync.transform.values import opt_int, opt_str

CSV_SUFFIXES = (".csv", ".csv.gz")
NAMES_SHOWN = 20  # skipped names listed in a note


def list_inputs(path: Path) -> tuple[list[Path], list[str]]:
    """The files to read under `path` (a file or a folder), and notes naming every entry
    of the folder that is not read."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise SourceFatalError(f"input not found: {path}")
    entries = sorted(path.iterdir())
    files = [p for p in entries if not p.is_dir() and p.name.lower().endswith(CSV_SUFFIXES)]
    others = [p.name for p in entries if not p.is_dir() and p not in files]
    folders = [p.name for p in entries if p.is_dir()]
    if not files:
        found = f"; it holds only: {_names(others + folders)}" if others or folders else ""
        raise SourceFatalError(f"no CSV files (.csv, .csv.gz) in {path}{found}")
    notes = []
    if others:
        notes.append(f"skipped {len(others)} file(s) that are not CSV (.csv, .csv.gz) in "
                     f"{path}: {_names(others)}")
    if folders:
        notes.append(f"skipped {len(folders)} subfolder(s) of {path} (folders are not "
                     f"searched): {_names(folders)}")
    return files, notes


def _names(names: list[str]) -> str:
    more = len(names) - NAMES_SHOWN
    return ", ".join(names[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def discover(paths: list[Path], *, encoding: str | None = None,
             delimiter: str = ",") -> list[tuple[CsvFile, Format]]:
    """How to read each file and its format, in read order; SourceFatalError for a file
    that is empty, no CSV, or of no known format."""
    found = []
    for path in paths:
        file = inspect(path, encoding=encoding, delimiter=delimiter)
        header = read_header(path, opener=file.open, delimiter=delimiter)
        found.append((file, detect(header, str(path))))
    return sorted(found, key=lambda pair: READ_ORDER[pair[1]])


def _mapped(table: pa.Table, cmap: ColumnMap) -> pd.DataFrame:
    """The entity's columns of `table`, renamed, with unknown columns folded into `extra`
    (only the columns needed leave Arrow)."""
    df: pd.DataFrame = table.select([*cmap.rename, *cmap.extra, SOURCE_COL, LINE_COL]).to_pandas()
    out = df[list(cmap.rename)].rename(columns=dict(cmap.rename))
    out[EXTRA_COL] = _extra_json(df, cmap.extra)
    out[SOURCE_COL] = df[SOURCE_COL]
    out[LINE_COL] = df[LINE_COL]
    return out


def _extra_json(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """Canonical JSON of the non-empty extension columns per row; null when none."""
    out = pd.Series(None, index=df.index, dtype="str")
    if not columns:
        return out
    stripped = df[list(columns)].apply(lambda s: s.str.strip())
    rows = stripped.ne("").any(axis=1)
    for label in rows.index[rows.to_numpy()]:
        values = {c: v for c, v in stripped.loc[label].items() if v != ""}
        out.at[label] = json.dumps(values, sort_keys=True, ensure_ascii=False,
                                   separators=(",", ":"))
    return out


def _any_nonempty(table: pa.Table, columns: list[str]) -> np.ndarray:
    """Rows with a non-blank value in any of `columns` (the reader's strings are never
    null)."""
    mask = pa.array(np.zeros(table.num_rows, dtype=bool))
    for col in columns:
        filled = pc.not_equal(pc.utf8_trim_whitespace(table.column(col)), "")
        mask = pc.or_(mask, filled)
    out: np.ndarray = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
    return out


class CsvSource:
    """Reads every CSV under a path and yields one RawBatch per entity and chunk."""

    paced = False  # a file: read as fast as the pipeline takes it

    def __init__(self, path: Path, *, batch_size: int, website_codes: Mapping[str, int],
                 block_bytes: int = 8 << 20, encoding: str | None = None,
                 delimiter: str = ",") -> None:
        paths, self.notes = list_inputs(path)  # notes: for the run report
        self.files = discover(paths, encoding=encoding, delimiter=delimiter)
        self.batch_size = batch_size
        self.block_bytes = block_bytes
        self.website_codes = dict(website_codes)
        self.has_groups = any(f is Format.CANONICAL_GROUPS for _, f in self.files)
        self.bytes = ByteTally(f.path for f, _ in self.files)  # read so far, for progress

    def cursors(self) -> dict[str, str]:
        """New cursor values per entity: CSV exports carry none."""
        return {}

    def describe(self) -> str:
        """A one-line description of the input, for logs and the report."""
        return ", ".join(f"{f.path} ({fmt.value}{_how(f)})" for f, fmt in self.files)

    def __iter__(self) -> Iterator[RawBatch]:
        for file, fmt in self.files:
            reader = _Tally(CsvRecordReader(
                file.path, entity=ENTITY_OF[fmt].name, batch_size=self.batch_size,
                block_bytes=self.block_bytes, opener=self.bytes.opener(file),
                delimiter=file.delimiter))
            if fmt is Format.CE_ONE_FILE:
                yield from CeAssembler(reader.header, self.website_codes,
                                       file).batches(reader)
            elif fmt is Format.EE_ADDRESSES:
                yield from self._ee_addresses(reader)
            else:
                yield from self._simple(reader, fmt)
            if reader.undecodable * 2 > reader.records:
                self.notes.append(_undecodable_note(file, reader))

    def _simple(self, reader: _Tally, fmt: Format) -> Iterator[RawBatch]:
        entity = ENTITY_OF[fmt]
        cmap = simple_map(entity, reader.header)
        for chunk in reader:
            frame = _mapped(chunk.table, cmap)
            if entity is CUSTOMER:
                frame = _resolve_website(frame, "website_id", "website_code",
                                         self.website_codes)
            yield RawBatch(entity, frame, chunk.faults, keyless_faults=len(chunk.faults))

    def _ee_addresses(self, reader: _Tally) -> Iterator[RawBatch]:
        cmap = ee_address_map(reader.header)
        for chunk in reader:
            frame = _mapped(chunk.table, cmap)
            frame[CUST_EMAIL_COL] = chunk.table.column("_email").to_pandas()
            website = chunk.table.column("_website").to_pandas().str.strip()
            frame[CUST_WEBSITE_COL] = website.map(self.website_codes)
            yield RawBatch(ADDRESS, frame, chunk.faults, keyless_faults=len(chunk.faults))


def _how(file: CsvFile) -> str:
    """What is unusual about reading `file`, for the description."""
    how = (["gzip"] if file.gzipped else []) + ([file.encoding] if file.transcoded else [])
    return "".join(f", {h}" for h in how)


class _Tally:
    """A reader's chunks, counting the records and the records that did not decode."""

    def __init__(self, reader: CsvRecordReader) -> None:
        self.reader = reader
        self.header = reader.header
        self.records = 0
        self.undecodable = 0

    def __iter__(self) -> Iterator[RawChunk]:
        for chunk in self.reader:
            self.records += chunk.table.num_rows + len(chunk.faults)
            self.undecodable += sum(f.rule == "encoding" for f in chunk.faults)
            yield chunk


def _undecodable_note(file: CsvFile, tally: _Tally) -> str:
    """Most records of a file did not decode: the encoding is likely wrong."""
    counts = f"{tally.undecodable} of {tally.records} records of {file.path}"
    if file.transcoded:
        return f"{counts} could not be decoded as {file.encoding} and were faulted"
    return (f"{counts} are not valid UTF-8 and were faulted: if the file is a Windows "
            "export, pass --encoding cp1252")


def _resolve_website(frame: pd.DataFrame, id_col: str, code_col: str,
                     codes: dict[str, int]) -> pd.DataFrame:
    """Fills an empty website id from the website code; learns code -> id pairs."""
    if code_col not in frame.columns:
        return frame
    code = frame[code_col].str.strip()
    if id_col in frame.columns:
        known = frame[id_col].str.strip()
        pairs = pd.DataFrame({"code": code, "id": known})
        pairs = pairs[(pairs["code"] != "") & pairs["id"].str.fullmatch(r"\d+")]
        for c, i in pairs.drop_duplicates("code").itertuples(index=False):
            codes.setdefault(str(c), int(str(i)))
    else:
        known = pd.Series("", index=frame.index, dtype="str")
    mapped = code.map(codes).astype("Int64").astype("str")
    frame[id_col] = known.where(known != "", mapped.fillna(""))
    return frame


class CeAssembler:
    """Splits the CE one-file export into customers and addresses.

    A row with any customer column filled starts a customer (and may carry its first
    address); a row with only address columns is a further address of the customer
    above it, which may sit in an earlier batch: the assembler carries that customer's
    identity and address count from batch to batch.
    """

    def __init__(self, header: list[str], website_codes: dict[str, int],
                 file: CsvFile | None = None) -> None:
        self.customers, self.addresses = ce_maps(header)
        self.website_codes = website_codes
        positions = [header.index(name) for name in self.customers.rename]
        address_positions = [header.index(name) for name in self.addresses.rename]
        self.peek = (RowPeek(file.open, file.delimiter, positions, address_positions)
                     if file else None)
        self.carry: tuple[str, str, int, int] | None = None  # website, email, line, ordinal
        self.bad_lines: list[int] = []

    def batches(self, reader: Iterable[RawChunk]) -> Iterator[RawBatch]:
        """Customer and address batches for every chunk the reader yields."""
        try:
            for chunk in reader:
                yield from self._split(chunk)
        finally:
            if self.peek is not None:
                self.peek.close()

    def _split(self, chunk: RawChunk) -> Iterator[RawBatch]:
        table = chunk.table
        is_customer = _any_nonempty(table, list(self.customers.rename))
        customers = _mapped(table.filter(is_customer), self.customers)
        customers = _resolve_website(customers, "website_id", "website_code",
                                     self.website_codes)
        bad_customers, bad_addresses = (self.peek.attribute(chunk.faults) if self.peek
                                        else (chunk.faults, []))
        # Only an unreadable customer row parts the addresses below it from the customer
        # above; an unreadable address row is one address fault.
        self.bad_lines.extend(f.source_line or 0 for f in bad_customers)
        self.bad_lines.sort()
        yield RawBatch(CUSTOMER, customers, bad_customers, keyless_faults=len(bad_customers))
        addresses, orphans = self._addresses(table, is_customer, customers)
        # A bad customer row may have carried an address: every bad row costs the
        # addresses their delete detection.
        yield RawBatch(ADDRESS, addresses, bad_addresses + orphans,
                       keyless_faults=len(orphans) + len(chunk.faults))

    def _addresses(self, table: pa.Table, is_customer: np.ndarray,
                   customers: pd.DataFrame) -> tuple[pd.DataFrame, list[Fault]]:
        n = table.num_rows
        website = pd.Series(None, index=pd.RangeIndex(n), dtype="str")
        email = pd.Series(None, index=pd.RangeIndex(n), dtype="str")
        anchor = pd.Series(np.nan, index=pd.RangeIndex(n))
        website[is_customer] = customers["website_id"].to_numpy()
        email[is_customer] = customers["email"].to_numpy()
        anchor[is_customer] = customers[LINE_COL].to_numpy(dtype=float)
        ordinal_base = np.zeros(n, dtype=np.int64)
        if self.carry is not None and n and not is_customer[0]:
            website.iat[0], email.iat[0], line, ordinal_base[0] = self.carry
            anchor.iat[0] = line
        group = np.cumsum(is_customer)
        website, email, anchor = website.ffill(), email.ffill(), anchor.ffill()
        has_address = _any_nonempty(table, list(self.addresses.rename))
        addr_group = pd.Series(group[has_address])
        ordinal = addr_group.groupby(addr_group).cumcount().to_numpy() + 1
        first_group = addr_group.to_numpy() == 0
        if self.carry is not None:
            ordinal[first_group] += self.carry[3]
        frame = _mapped(table.filter(has_address), self.addresses)
        frame["ordinal"] = ordinal.astype(str)
        frame[CUST_WEBSITE_COL] = website[has_address].to_numpy()
        frame[CUST_EMAIL_COL] = email[has_address].to_numpy()
        orphan = self._orphaned(anchor[has_address], frame[LINE_COL])
        self._carry(n, is_customer, website, email, anchor, group, has_address, ordinal)
        faults = [Fault(entity=ADDRESS.name, stage=Stage.READ, rule="orphan_address",
                        message="address row with no readable customer row above it",
                        source=opt_str(frame.at[label, SOURCE_COL]),
                        source_line=opt_int(frame.at[label, LINE_COL]))
                  for label in frame.index[orphan]]
        return frame[~orphan], faults

    def _orphaned(self, anchor: pd.Series, lines: pd.Series) -> np.ndarray:
        """Rows with no customer above, or a faulted row between them and their customer."""
        no_parent = anchor.isna().to_numpy()
        if not self.bad_lines:
            return no_parent
        bad = np.asarray(self.bad_lines)
        a = np.searchsorted(bad, anchor.fillna(0).to_numpy(), side="right")
        b = np.searchsorted(bad, lines.to_numpy(dtype=np.int64), side="left")
        return no_parent | (b > a)

    def _carry(self, n: int, is_customer: np.ndarray, website: pd.Series,
               email: pd.Series, anchor: pd.Series, group: np.ndarray,
               has_address: np.ndarray, ordinal: np.ndarray) -> None:
        line = opt_int(anchor.iat[-1]) if n else None
        if line is None:
            return
        last_group = group[-1]
        in_last = group[has_address] == last_group
        count = int(ordinal[in_last].max()) if in_last.any() else 0
        if last_group == 0 and self.carry is not None:
            count = max(count, self.carry[3])
        self.carry = (str(website.iat[-1]), str(email.iat[-1]), line, count)
