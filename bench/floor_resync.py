"""Measured child: the re-sync floor, fixed steps, timed from the read to the last write.

python -m bench.floor_resync --input CSV --workdir DIR --result JSON

The store is DIR/floor.sqlite; the harness first builds it by running this same script,
unmeasured, on the base export against an empty store (every row created).

1. pyarrow CSV read and split, as the first-load floor;
2. keys: customer = website_id,lower(email); address = customer key#ordinal in its customer;
3. magsync's documented row hash (transform.keys.row_hashes, BLAKE2b-8 over sorted
   name<RS>value pairs) of every customer and address, applied to the values as read:
   typing (integers, UTC timestamps, dates, booleans) is normalisation, outside the floor,
   so every column hashes as a string. The per-row work is the same; the hashes differ
   from those magsync stores, which is why the floor diffs against its own store;
4. diff against (record_key, row_hash) read from the store, with Arrow hash joins;
5. write the delta in one transaction: executemany upsert of created and changed rows,
   executemany delete of stored keys the snapshot lacks;
6. Parquet write of what was read (without secret columns).
"""

from __future__ import annotations

from bench.child import Clock, case_parser, write_result

CLOCK = Clock()

import sqlite3  # noqa: E402  (timed: the imports are a column of their own)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from bench import floor_common as fc  # noqa: E402
from magsync.transform.keys import row_hashes  # noqa: E402
from magsync.transform.schema import Column, Entity, Kind  # noqa: E402

CLOCK.imported()

KEY, HASH = fc.KEY, "row_hash"


def hashed(name: str, table: pa.Table) -> pa.Table:
    """The table with row_hash as its second column (every attribute hashed as a string)."""
    attrs = [c for c in table.column_names if c != KEY]
    entity = Entity(name=name, table=name, columns=tuple(Column(c, Kind.STR) for c in attrs),
                    id_key=(), natural_key=(), extra_allowed=False)
    hashes = row_hashes(entity, table.select(attrs).to_pandas())
    return table.add_column(1, HASH, pa.array(hashes, pa.int64()))


def stored_hashes(conn: sqlite3.Connection, name: str) -> pa.Table:
    """(record_key, row_hash) of every stored row."""
    rows = conn.execute(f'SELECT "{KEY}", "{HASH}" FROM "{name}"').fetchall()
    keys, hashes = zip(*rows, strict=True) if rows else ((), ())
    return pa.table({KEY: pa.array(keys, pa.string()), "stored_hash": pa.array(hashes, pa.int64())})


def apply_delta(conn: sqlite3.Connection, name: str, table: pa.Table) -> dict[str, int]:
    """Upserts created and changed rows, deletes absent keys; returns the counts."""
    stored = stored_hashes(conn, name)
    new = pa.table({KEY: table[KEY], HASH: table[HASH],
                    "i": pa.array(np.arange(table.num_rows))})
    joined = new.join(stored, KEY, join_type="left outer")
    write = pc.fill_null(pc.not_equal(joined[HASH], joined["stored_hash"]), True)
    created = pc.sum(pc.is_null(joined["stored_hash"])).as_py() or 0
    rows = table.take(pc.filter(joined["i"], write))
    gone = stored.join(new, KEY, join_type="left anti")[KEY].to_pylist()
    fc.insert(conn, name, fc.public(rows), upsert_key=KEY)
    conn.executemany(f'DELETE FROM "{name}" WHERE "{KEY}" = ?', [(k,) for k in gone])
    return {"created": created, "updated": rows.num_rows - created, "deleted": len(gone)}


def main(argv: list[str] | None = None) -> None:
    """Runs the floor once and writes the measurements."""
    args = case_parser(__doc__).parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    CLOCK.begin()
    customers, addresses, parent = fc.split(fc.read_export(args.input))
    customers, addresses = fc.keyed(customers, addresses, parent)
    entities = {"customers": hashed("customer", customers),
                "customer_addresses": hashed("address", addresses)}
    conn = sqlite3.connect(args.workdir / "floor.sqlite")
    counts = {}
    with conn:
        for name, table in entities.items():
            fc.create_table(conn, name, fc.public(table).column_names, key=KEY)
            counts[name] = apply_delta(conn, name, table)
    conn.close()
    fc.write_parquet(customers.drop_columns([KEY]), addresses.drop_columns([KEY]),
                     args.workdir / "exports")
    CLOCK.end()
    write_result(args.result, CLOCK, customers.num_rows + addresses.num_rows, counts=counts)


if __name__ == "__main__":
    main()
