"""Measured child: the naive pandas route, timed from the read to the last write.

python -m bench.naive --input CSV --workdir DIR --result JSON

pd.read_csv (dtype=str, the one option anyone adds so "06612" stays a postcode), the same
trivial split as the floors, DataFrame.to_sql into a fresh SQLite file (pandas' default
executemany), DataFrame.to_parquet. No validation, change detection or report.
"""

from __future__ import annotations

from bench.child import Clock, case_parser, write_result

CLOCK = Clock()

import sqlite3  # noqa: E402  (timed: the imports are a column of their own)

import pandas as pd  # noqa: E402

CLOCK.imported()

ADDRESS_PREFIX = "_address_"


def main(argv: list[str] | None = None) -> None:
    """Runs the naive route once and writes the measurements."""
    args = case_parser(__doc__).parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / "naive.sqlite"
    db.unlink(missing_ok=True)
    CLOCK.begin()
    frame = pd.read_csv(args.input, dtype=str).drop(columns=["password"])
    addr_cols = [c for c in frame.columns if c.startswith(ADDRESS_PREFIX)]
    cust_cols = [c for c in frame.columns if not c.startswith(ADDRESS_PREFIX)]
    customers = frame.loc[frame["email"].notna(), cust_cols]
    addresses = frame.loc[frame[addr_cols].notna().any(axis=1), addr_cols].assign(
        customer_email=frame["email"].ffill())
    with sqlite3.connect(db) as conn:
        customers.to_sql("customers", conn, index=False)
        addresses.to_sql("customer_addresses", conn, index=False)
    conn.close()
    customers.to_parquet(args.workdir / "customers.parquet", index=False)
    addresses.to_parquet(args.workdir / "customer_addresses.parquet", index=False)
    CLOCK.end()
    write_result(args.result, CLOCK, len(customers) + len(addresses))


if __name__ == "__main__":
    main()
