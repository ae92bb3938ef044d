"""Measured child: the first-load floor, fixed steps, timed from the read to the last write.

python -m bench.floor_load --input CSV --workdir DIR --result JSON

1. pyarrow CSV read, newlines_in_values=True, every column a string;
2. split customers (rows with an email) and addresses (rows with an address value);
3. sqlite3 executemany insert into two plain all-text tables of a fresh file, one commit;
4. Great Expectations once per entity on every row, with magsync's bundled suites (keys
   and the few columns the suites compare as numbers or dates typed for it);
5. Parquet write of what was read (without secret columns).
No normalisation, hashes or report.
"""

from __future__ import annotations

from bench.child import Clock, case_parser, write_result

CLOCK = Clock()

import sqlite3  # noqa: E402  (timed: the imports are a column of their own)

import pyarrow as pa  # noqa: E402

from bench import floor_common as fc  # noqa: E402

CLOCK.imported()


def main(argv: list[str] | None = None) -> None:
    """Runs the floor once and writes the measurements."""
    args = case_parser(__doc__).parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / "floor.sqlite"
    db.unlink(missing_ok=True)
    CLOCK.begin()
    table = fc.read_export(args.input)
    customers, addresses, parent = fc.split(table)
    keyed_customers, keyed_addresses = fc.keyed(customers, addresses, parent)
    failing = fc.validate(keyed_customers, keyed_addresses, parent)
    addresses = addresses.append_column("customer_row", pa.array(parent))
    conn = sqlite3.connect(db)
    with conn:
        for name, part in (("customers", customers), ("customer_addresses", addresses)):
            stored = fc.public(part)
            fc.create_table(conn, name, stored.column_names)
            fc.insert(conn, name, stored)
    conn.close()
    fc.write_parquet(customers, addresses, args.workdir / "exports")
    CLOCK.end()
    write_result(args.result, CLOCK, customers.num_rows + addresses.num_rows,
                 failing_rows=failing)


if __name__ == "__main__":
    main()
