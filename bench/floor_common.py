"""The floors' fixed steps: read a Magento CE export with pyarrow, split it, insert, write.

The floors are the least work that yields the same outputs as magsync, so their time is
what the machine needs rather than what a design costs. Nothing here validates, types or
reports: every value stays the string that was read (empty -> null).
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from magsync.transform.schema import ADDRESS, CUSTOMER
from magsync.transform.validate import SuiteValidator

ADDRESS_PREFIX = "_address_"
NEVER_READ = "password"
# Not stored or exported by magsync by default; the re-sync floor still hashes them.
SECRETS = ("password_hash", "rp_token", "confirmation")
INSERT_CHUNK = 50_000
KEY = "record_key"
GENDERS = {"Male": 1, "Female": 2}


def header(path: Path) -> list[str]:
    """The column names of a CSV file's first line."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle))


def read_export(path: Path) -> pa.Table:
    """The whole export, every column a string, quoted multi-line streets kept, password
    dropped."""
    names = header(path)
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
            include_columns=[n for n in names if n != NEVER_READ]),
    )


def split(table: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """Customers (rows with an email), addresses (rows with any address value) and, for
    each address, the position of its customer among the customers."""
    addr_cols = [n for n in table.column_names if n.startswith(ADDRESS_PREFIX)]
    cust_cols = [n for n in table.column_names if not n.startswith(ADDRESS_PREFIX)]
    is_customer = pc.is_valid(table["email"])
    has_address = reduce(pc.or_, [pc.is_valid(table[c]) for c in addr_cols])
    parent = np.cumsum(is_customer.to_numpy(zero_copy_only=False)) - 1
    address_mask = has_address.to_numpy(zero_copy_only=False)
    customers = table.filter(is_customer).select(cust_cols)
    addresses = table.filter(has_address).select(addr_cols)
    return customers, addresses, parent[address_mask]


def public(table: pa.Table) -> pa.Table:
    """The table without secret columns."""
    return table.drop_columns([c for c in SECRETS if c in table.column_names])


def row_tuples(table: pa.Table) -> Iterator[list[tuple[Any, ...]]]:
    """Rows as tuples, in chunks (the binding cost every Python loader pays)."""
    for start in range(0, table.num_rows, INSERT_CHUNK):
        part = table.slice(start, INSERT_CHUNK)
        yield list(zip(*(col.to_pylist() for col in part.columns), strict=True))


def create_table(conn: sqlite3.Connection, name: str, columns: list[str],
                 key: str | None = None) -> None:
    """A plain all-text table (the key column, if any, its primary key)."""
    defs = [f'"{c}" TEXT PRIMARY KEY' if c == key else f'"{c}"' for c in columns]
    conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}" ({", ".join(defs)})')


def insert(conn: sqlite3.Connection, name: str, table: pa.Table, upsert_key: str | None = None
           ) -> None:
    """executemany INSERT of every row (an upsert on `upsert_key` when given)."""
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    marks = ", ".join("?" * table.num_columns)
    sql = f'INSERT INTO "{name}" ({cols}) VALUES ({marks})'
    if upsert_key:
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in table.column_names
                         if c != upsert_key)
        sql += f' ON CONFLICT("{upsert_key}") DO UPDATE SET {sets}'
    for rows in row_tuples(table):
        conn.executemany(sql, rows)


def write_parquet(customers: pa.Table, addresses: pa.Table, folder: Path) -> None:
    """One Parquet file per entity, without secrets."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(public(customers), folder / "customers.parquet")
    pq.write_table(public(addresses), folder / "customer_addresses.parquet")


def keyed(customers: pa.Table, addresses: pa.Table, parent: np.ndarray
          ) -> tuple[pa.Table, pa.Table]:
    """Both tables with their record_key as the first column."""
    cust_keys = pc.binary_join_element_wise(
        customers["website_id"], pc.utf8_lower(customers["email"]), ",")
    starts = np.searchsorted(parent, parent, side="left")
    ordinal = pa.array(np.arange(len(parent)) - starts + 1).cast(pa.string())
    addr_keys = pc.binary_join_element_wise(pc.take(cust_keys, pa.array(parent)), ordinal, "#")
    return customers.add_column(0, KEY, cust_keys), addresses.add_column(0, KEY, addr_keys)


def validate(customers: pa.Table, addresses: pa.Table, parent: np.ndarray) -> dict[str, int]:
    """Great Expectations, once per entity on every row, with magsync's bundled suites
    (through magsync's SuiteValidator, as magsync runs them), on tables `keyed` gave keys.
    The suites compare integers, dates and timestamps, so the columns they read are typed
    here, and only those (with Arrow compute); returns the failing rows per entity."""
    suites = Path(__file__).resolve().parent.parent / "expectations"
    validator = SuiteValidator(suites, datetime.now(UTC), entities=(CUSTOMER, ADDRESS))
    parent_keys = pc.take(customers[KEY], pa.array(parent))
    frames = {CUSTOMER: _customer_view(customers),
              ADDRESS: _address_view(addresses, parent_keys)}
    return {entity.name: int((~validator.validate(entity, frame).good).sum())
            for entity, frame in frames.items()}


def _customer_view(customers: pa.Table) -> Any:
    """The customer columns the suite reads, typed as magsync types them."""
    def stamp(name: str) -> pa.ChunkedArray:
        return pc.strptime(customers[name], "%Y-%m-%d %H:%M:%S", "us", error_is_null=True)

    genders = pa.array(list(GENDERS.values()), pa.int64())
    gender_pos = pc.index_in(customers["gender"], pa.array(list(GENDERS)))
    view = pa.table({
        KEY: customers[KEY],
        "email": customers["email"], "firstname": customers["firstname"],
        "lastname": customers["lastname"],
        "website_id": pc.cast(customers["website_id"], pa.int64()),
        "store_id": pc.cast(customers["store_id"], pa.int64()),
        "gender": pc.take(genders, gender_pos),
        "dob": stamp("dob"),
        "created_at": pc.cast(stamp("created_at"), pa.timestamp("us", tz="UTC")),
    })
    return view.to_pandas()


def _address_view(addresses: pa.Table, parent_keys: pa.ChunkedArray) -> Any:
    """The address columns the suite reads (strings all, as read)."""
    names = ("street", "city", "country_id", "postcode", "telephone")
    view = pa.table({KEY: addresses[KEY],
                     "customer_key": parent_keys,
                     **{n: addresses[ADDRESS_PREFIX + n] for n in names}})
    return view.to_pandas()
