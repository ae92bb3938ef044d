"""Write data/sample/: a seeded Magento CE customer export with planted faults, and the groups.

Run `python data/make_sample.py` from anywhere; every run writes the same bytes.

customers.csv is Magento 1.9 CE / OpenMage's one-file export of 1,000 customers (seed 42,
0-3 addresses each, unicode names, multi-line streets) with one extension column,
`loyalty_tier`, set for two customers (ids 5 and 500). Planted faults, one customer each
(also listed with line numbers in data/sample/README.md, which this script writes):
- line 29, customer 11, jan.davis11@example.com (base): unparseable dob
  `1985-13-45 00:00:00`
- line 60, customer 27, patricia.jones27@example.com (base): unparseable created_at
  `2019-02-30 25:61:00`
- line 97, customer 42, margaret.moore42@mail.example.com (base): unknown gender label
  `Divers`
- line 159, customer 64, claire.williams64@example.com (base): one field short (the
  trailing `loyalty_tier` field dropped)
groups.csv is the canonical group list: `customer_group_id,customer_group_code`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

# Import the checkout this script lives in, whether or not the package is installed.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.csv_export import CE_HEADER, write_ce_export  # noqa: E402
from magsync.magento.dataset import GROUPS, WEBSITE_CODES, iter_customers  # noqa: E402

OUT = ROOT / "data" / "sample"
SEED = 42
N_CUSTOMERS = 1000
LOYALTY = {5: "gold", 500: "silver"}
# customer id -> (column, planted value, what is wrong); None drops the trailing field.
FAULTS: dict[int, tuple[str, str | None, str]] = {
    11: ("dob", "1985-13-45 00:00:00", "unparseable dob"),
    27: ("created_at", "2019-02-30 25:61:00", "unparseable created_at"),
    42: ("gender", "Divers", "unknown gender label"),
    64: ("loyalty_tier", None, "one field short (trailing field dropped)"),
}


def write_customers(path: Path) -> dict[int, tuple[str, str]]:
    """Write the clean export; return customer id -> (email, website code) of faulted ones."""
    records = list(iter_customers(N_CUSTOMERS, seed=SEED))
    named = {}
    for customer, _ in records:
        cid = customer["customer_id"]
        if cid in LOYALTY:
            customer["loyalty_tier"] = LOYALTY[cid]
        if cid in FAULTS:
            named[cid] = (customer["email"], WEBSITE_CODES[customer["website_id"]])
    # Every default-shipping flag, as the sample has always been written (stores synced
    # from it are test fixtures); a real store's export leaves some of them empty.
    write_ce_export(path, records, extra_columns=("loyalty_tier",), every_shipping_flag=True)
    return named


def plant_faults(path: Path, named: dict[int, tuple[str, str]]) -> dict[int, int]:
    """Rewrite path with FAULTS planted; return customer id -> physical line of its row."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        rows, starts, previous_end = [], [], 0
        for row in reader:
            rows.append(row)
            starts.append(previous_end + 1)
            previous_end = reader.line_num
    header = rows[0]
    lines = {}
    for cid, (email, website) in named.items():
        at = next(i for i, r in enumerate(rows) if r[0] == email and r[1] == website)
        column, value, _ = FAULTS[cid]
        if value is None:
            rows[at] = rows[at][:-1]
        else:
            rows[at][header.index(column)] = value
        lines[cid] = starts[at]
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return lines


def write_groups(path: Path) -> None:
    """Write the canonical groups file."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("customer_group_id", "customer_group_code"))
        writer.writerows((g["customer_group_id"], g["customer_group_code"]) for g in GROUPS)


def stats(path: Path) -> dict[str, Any]:
    """Counts that the README states."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    street = CE_HEADER.index("_address_street")
    return {
        "records": len(rows),
        "customers": sum(1 for r in rows if r[0]),
        "addresses": sum(1 for r in rows if r[street]),
        "multiline": sum(1 for r in rows if "\n" in r[street]),
        "lines": path.read_text(encoding="utf-8").count("\n"),
    }


def write_readme(out: Path, named: dict[int, tuple[str, str]], lines: dict[int, int]) -> None:
    """Describe the sample and list every planted fault with its line."""
    s = stats(out / "customers.csv")
    faults = "\n".join(
        f"| {lines[cid]} | {cid} | {named[cid][0]} | {named[cid][1]} | {FAULTS[cid][0]} | "
        f"{FAULTS[cid][2]}"
        + (f": `{FAULTS[cid][1]}`" if FAULTS[cid][1] is not None else "")
        + " |"
        for cid in sorted(FAULTS)
    )
    text = README.format(n=N_CUSTOMERS, seed=SEED, faults=faults, **s)
    (out / "README.md").write_text(text, encoding="utf-8")


README = """# Sample inputs

Generated by `python data/make_sample.py` (seed {seed}; same bytes every run). Do not edit
by hand: change the script and run it again.

## customers.csv
Magento 1.9 CE / OpenMage one-file customer export: {n} customers, {addresses} addresses,
{records} CSV records on {lines} physical lines. A customer's row carries its first address;
each further address is a continuation row with empty customer columns. {multiline}
addresses have two-line streets (quoted, with a newline inside). About 10% of the names are
unicode; about 5% of the e-mails exist on both websites (`base` and `eu`). No entity ids
and no updated_at, as in real exports.

One extension attribute, `loyalty_tier`, is an extra last column, set for customers 5
(`gold`) and 500 (`silver`) and empty elsewhere: unknown columns must not break a run.

### Planted faults
Each should become a per-record fault; none should abort a run.

| line | customer id | email | _website | column | fault |
|---|---|---|---|---|---|
{faults}

Lines are 1-based physical lines (the header is line 1).

## groups.csv
The canonical customer groups, `customer_group_id,customer_group_code`: the 7 groups of the
recorded store, group 0 `NOT LOGGED IN` included, unicode and `&` in codes.
"""


def main(argv: list[str] | None = None) -> None:
    """Write customers.csv, groups.csv and README.md under data/sample/ (or --out)."""
    parser = argparse.ArgumentParser(description="Write the seeded sample inputs.")
    parser.add_argument("--out", type=Path, default=OUT, help="folder (default data/sample)")
    out: Path = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    named = write_customers(out / "customers.csv")
    lines = plant_faults(out / "customers.csv", named)
    write_groups(out / "groups.csv")
    write_readme(out, named, lines)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
