"""The arguments of `magsync sync` and the settings they override."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from magsync.flows.console import add_prefect_option
from magsync.flows.target_args import add_target_options, given, path, target_overrides


def add_parser(sub: Any) -> None:
    """The `sync` subcommand's arguments."""
    p = sub.add_parser("sync", help="sync customers, addresses and groups into the target")
    p.add_argument("--source", choices=["csv", "soap"], default=None)
    p.add_argument("--input", type=Path, help="CSV file or folder (CSV source)")
    p.add_argument("--encoding", help="encoding of CSV files without a byte order mark, "
                                      "e.g. cp1252 (default UTF-8)")
    p.add_argument("--delimiter", help="CSV field delimiter (default ','; 'tab' for tabs)")
    p.add_argument("--url", help="store base URL (SOAP source)")
    p.add_argument("--api-user", help="SOAP API user; the key comes from "
                                      "MAGSYNC_SOURCE__API_KEY")
    p.add_argument("--api", choices=["v1", "v2", "wsi", "auto"], default=None,
                   help="SOAP API: v1 (default), v2, wsi (v2 in WS-I mode), auto (v2 or wsi)")
    p.add_argument("--ca-bundle", type=Path,
                   help="CA bundle that signs the store's TLS certificate (SOAP source)")
    add_target_options(p, "SQLAlchemy URL of the target (default: SQLite under the output "
                          "folder)")
    p.add_argument("--full", action="store_true", default=None,
                   help="full snapshot: also detect deletions")
    p.add_argument("--dry-run", action="store_true", default=None,
                   help="compute and report the plan; write nothing")
    p.add_argument("--hard-delete", action="store_true", default=None)
    p.add_argument("--allow-mass-delete", action="store_true", default=None)
    p.add_argument("--max-fault-ratio", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--revalidate", action="store_true", default=None,
                   help="type and validate every record: also the unchanged ones, and "
                        "those still faulted as in the last run (re-reported otherwise)")
    p.add_argument("--expectations-dir", type=Path,
                   help="folder of Great Expectations suites (default: the bundled ones)")
    p.add_argument("--wait-lock", type=float, metavar="SECONDS",
                   help="wait this long for another run's lock on the target (default: 0)")
    p.add_argument("--log-level", default=None)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress line on the terminal")
    p.add_argument("--store", metavar="NAME", help="sync this store of the fleet file "
                                                  "(its source, target and maps)")
    p.add_argument("--fleet", type=Path, metavar="FILE",
                   help="the fleet file of --store (default: stores.toml)")
    add_prefect_option(p)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given on the command line (only those given)."""
    out = target_overrides(args)
    source = given({"kind": args.source, "input": path(args.input), "url": args.url,
                    "api_user": args.api_user, "ca_bundle": path(args.ca_bundle),
                    "encoding": args.encoding, "delimiter": args.delimiter,
                    "api": args.api})
    if source:
        out["source"] = {**out.get("source", {}), **source}
    if args.wait_lock is not None:
        out["target"] = {**out.get("target", {}), "wait_lock_s": args.wait_lock}
    return {**out, **given({
        "full": args.full, "dry_run": args.dry_run, "hard_delete": args.hard_delete,
        "allow_mass_delete": args.allow_mass_delete, "max_fault_ratio": args.max_fault_ratio,
        "batch_size": args.batch_size, "log_level": args.log_level,
        "revalidate": args.revalidate, "expectations_dir": path(args.expectations_dir),
        "progress": False if args.quiet else None})}
