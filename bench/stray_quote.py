"""Stray quotes in a large export lose no record.

python -m bench.stray_quote [--scale 300k] [--out DIR] [--seed 42] [--lines 500000,100000]

Writes Magento's CE one-file export (300k customers: about 600k rows) with the bench's
generator, then a copy in which the last name of the first one-line customer record at or
after each given physical line gets a stray quote in its unquoted field (Smith ->
O"Smith: a plain character for Python's csv, pyarrow and spreadsheets). Reads the copy
with magsync's streaming reader and prints the records read, faulted and expected.
Exits 1 if any record is lost or a planted value is not read back as written. Counts
only, no timings. By default the quotes go near line 500,000 (or 5/6 into a smaller
file) and 1/6 into the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bench import generate
from bench.csv_export import write_ce_export
from magsync.extract.csv_reader import CsvRecordReader, read_header
from magsync.magento.dataset import iter_customers

REPO = Path(__file__).resolve().parent.parent
COLUMN = "lastname"


def plant(src: Path, dst: Path, targets: list[int]) -> dict[int, str]:
    """Copies `src` to `dst` with a stray quote in the last name of the first one-line
    customer record at or after each target line; returns {line: planted last name}."""
    column = read_header(src).index(COLUMN)
    pending = sorted(targets)
    planted: dict[int, str] = {}
    in_quotes = False  # the generated export is well-formed: counting quotes is exact
    with src.open("rb") as fin, dst.open("wb") as fout:
        for number, read_line in enumerate(fin, start=1):
            line = read_line
            record_start = not in_quotes
            in_quotes ^= line.count(b'"') % 2 == 1
            if pending and number >= pending[0] and number > 1 and record_start \
                    and b'"' not in line:
                body = line.rstrip(b"\r\n")
                cells = body.split(b",")
                if cells[0] and cells[column]:  # a customer row (it has an email)
                    cells[column] = b'O"' + cells[column]
                    planted[number] = cells[column].decode("utf-8")
                    line = b",".join(cells) + line[len(body):]
                    pending.pop(0)
            fout.write(line)
    return planted


def read(path: Path, planted: dict[int, str]) -> tuple[int, int, dict[int, str]]:
    """Records read and faulted by the streaming reader, and the planted lines' values."""
    rows = faults = 0
    values: dict[int, str] = {}
    wanted = pa.array(list(planted), pa.int64())
    for chunk in CsvRecordReader(path, entity="customer"):
        rows += chunk.table.num_rows
        faults += len(chunk.faults)
        hits = chunk.table.filter(pc.is_in(chunk.table["_line"], value_set=wanted))
        values.update(zip(hits["_line"].to_pylist(), hits[COLUMN].to_pylist(), strict=True))
    return rows, faults, values


def default_lines(total: int) -> list[int]:
    """Near line 500,000 (5/6 into a smaller file), and 1/6 into the file."""
    return [min(500_000, total * 5 // 6), max(2, total // 6)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.stray_quote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=generate.parse_scale, default=300_000,
                        help="customers (300k: about 600k rows)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "stray_quote")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lines", type=lambda s: [int(x) for x in s.split(",")],
                        default=None, help="physical lines to plant at, comma-separated")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Generate, plant, read; print the counts; 0 when every record is accounted for."""
    args = _parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    clean, stray = args.out / "customers.csv", args.out / "customers_stray_quotes.csv"
    expected = write_ce_export(clean, iter_customers(args.scale, seed=args.seed))
    with clean.open("rb") as fh:
        total = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    planted = plant(clean, stray, args.lines or default_lines(total))
    rows, faults, values = read(stray, planted)
    lost = expected - rows - faults
    print(f"{stray}: {expected} records on {total} lines, stray quotes on lines "
          + ", ".join(str(n) for n in planted))
    print(f"records expected {expected}, read {rows}, faulted {faults}, lost {lost}")
    wrong = 0
    for number, value in planted.items():
        got = values.get(number)
        wrong += got != value
        print(f"line {number}: {COLUMN} planted {value!r}, read {got!r}")
    return 1 if lost or wrong or not planted else 0


if __name__ == "__main__":
    sys.exit(main())
