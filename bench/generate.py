"""Write a benchmark input: Magento's CE one-file customer export at a given scale.

python -m bench.generate --scale 100k|1m|<int> --out DIR [--seed 42] [--changed]

Writes DIR/customers.csv; with --changed also DIR/customers_changed.csv, the same store
after ~1% of customers and ~1% of addresses were edited, 0.2% deleted and 0.2% added.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.csv_export import write_ce_export
from magsync.magento.dataset import iter_customers, iter_customers_changed

_SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_scale(text: str) -> int:
    """Parse a customer count such as '2500', '100k' or '1m'."""
    value = text.strip().lower().replace("_", "")
    factor = _SUFFIXES.get(value[-1:], 1)
    digits = value[:-1] if value[-1:] in _SUFFIXES else value
    try:
        n = int(float(digits) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a scale: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"scale must not be negative: {text!r}")
    return n


def _parser() -> argparse.ArgumentParser:
    """The command-line arguments."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__)
    parser.add_argument("--scale", type=parse_scale, required=True, help="100k, 1m or a count")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--changed", action="store_true", help="also write the 1%% variant")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Generate the files and print rows and seconds for each."""
    args = _parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [("customers.csv", iter_customers(args.scale, seed=args.seed))]
    if args.changed:
        jobs.append(("customers_changed.csv", iter_customers_changed(args.scale, seed=args.seed)))
    for name, stream in jobs:
        start = time.perf_counter()
        rows = write_ce_export(args.out / name, stream)
        seconds = time.perf_counter() - start
        size = (args.out / name).stat().st_size
        print(f"{args.out / name}: {rows} rows, {size / 1e6:.1f} MB, {seconds:.1f} s")


if __name__ == "__main__":
    main()
