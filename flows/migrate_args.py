"""The arguments of `magsync migrate` and `magsync verify` and the settings they
override."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from magsync.flows.console import add_prefect_option
from magsync.flows.target_args import given, path


def id_pairs(text: str) -> dict[int, int]:
    """`1=2` or `1=2,3=4` as {1: 2, 3: 4} (an argparse type)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        source, sep, target = part.partition("=")
        if not sep or not source.strip().isdigit() or not target.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected SOURCE_ID=TARGET_ID, got {part!r}")
        out[int(source)] = int(target)
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=["csv", "soap"], default=None)
    p.add_argument("--input", type=Path, help="CSV file or folder (CSV source)")
    p.add_argument("--url", help="source store base URL (SOAP source)")
    p.add_argument("--api-user", help="source SOAP API user; the key comes from "
                                      "MAGSYNC_SOURCE__API_KEY")
    p.add_argument("--ca-bundle", type=Path, help="CA bundle of the source store")
    p.add_argument("--source-name", help="names the source in the id map (default 'default')")
    p.add_argument("--to-url", help="target store base URL")
    p.add_argument("--to-api-user", help="target SOAP API user; the key comes from "
                                         "MAGSYNC_TARGET__API_KEY")
    p.add_argument("--to-ca-bundle", type=Path, help="CA bundle of the target store")
    for name, example in (("website", "1=2"), ("store", "1=3"), ("group", "4=5")):
        p.add_argument(f"--{name}-map", type=id_pairs, action="append", metavar="SRC=TGT",
                       help=f"source {name} id to target {name} id, e.g. {example} "
                            "(repeatable; " + ("groups are matched by code unless mapped)"
                                               if name == "group" else "identity by default)"))
    p.add_argument("--same-group-ids", action="store_true", default=None,
                   help="each source group id is the same id on the target (checked to "
                        "exist there): for a CE export, which has group ids but no codes")
    p.add_argument("--output-dir", type=Path)
    p.add_argument("--state", type=Path, help="the id map's SQLite file (default "
                                              "<output-dir>/migrate-state.sqlite)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--config", type=Path,
                   help="TOML settings file (default ./magsync-migrate.toml)")
    p.add_argument("--log-level", default=None)


def add_parsers(sub: Any) -> None:
    """The `migrate` and `verify` subcommands' arguments."""
    p = sub.add_parser("migrate", help="copy customers and addresses into a Magento store "
                                       "through its SOAP API")
    _common(p)
    p.add_argument("--on-existing", choices=["update", "skip", "fault"],
                   help="a target customer with the same website and email: update it "
                        "(default), skip it, or fault the source customer")
    p.add_argument("--delete-missing", action="store_true", default=None,
                   help="delete from the target what this migration wrote earlier and the "
                        "source no longer has")
    p.add_argument("--allow-mass-delete", action="store_true", default=None)
    p.add_argument("--dry-run", action="store_true", default=None,
                   help="read both stores and report what would be written; write nothing")
    p.add_argument("--max-fault-ratio", type=float,
                   help="stop before writing a batch once read and mapping faults exceed "
                        "this share of the records read, and fail a run that ends above it "
                        "(default 0.05)")
    p.add_argument("--multicall-size", type=int, help="writes per multiCall (default 50)")
    p.add_argument("--concurrency", type=int, help="multiCalls in flight (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress line on the terminal")
    add_prefect_option(p)
    v = sub.add_parser("verify", help="compare a migration's target with its source; "
                                      "exit 1 on any difference")
    _common(v)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given on the command line (only those given)."""
    source = given({"kind": args.source, "input": path(args.input), "url": args.url,
                    "api_user": args.api_user, "name": args.source_name,
                    "ca_bundle": path(args.ca_bundle)})
    target = given({"url": args.to_url, "api_user": args.to_api_user,
                    "ca_bundle": path(args.to_ca_bundle),
                    "multicall_size": getattr(args, "multicall_size", None),
                    "concurrency": getattr(args, "concurrency", None)})
    top = given({"output_dir": path(args.output_dir), "state_path": path(args.state),
                 "batch_size": args.batch_size, "log_level": args.log_level,
                 "on_existing": getattr(args, "on_existing", None),
                 "delete_missing": getattr(args, "delete_missing", None),
                 "allow_mass_delete": getattr(args, "allow_mass_delete", None),
                 "dry_run": getattr(args, "dry_run", None),
                 "same_group_ids": args.same_group_ids,
                 "max_fault_ratio": getattr(args, "max_fault_ratio", None),
                 "progress": False if getattr(args, "quiet", False) else None})
    for name in ("website", "store", "group"):
        pairs = getattr(args, f"{name}_map")
        if pairs:
            top[f"{name}_map"] = {str(k): v for d in pairs for k, v in d.items()}
    return {**top, **({"source": source} if source else {}),
            **({"target": target} if target else {})}
