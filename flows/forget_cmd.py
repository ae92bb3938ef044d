"""`magsync forget`: erases one customer on request (load/forget.py) and suppresses it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from magsync.flows.target_args import add_target_options, target_settings
from magsync.transform.errors import ConfigError

if TYPE_CHECKING:
    from magsync.flows.settings import Settings


def add_parser(sub: Any) -> None:
    """The `forget` subcommand's arguments."""
    p = sub.add_parser("forget", help="erase one customer and its addresses everywhere "
                                      "(target, exports, history, staging, reports) and "
                                      "keep later syncs from loading it again")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the customer's email (with --website)")
    who.add_argument("--customer-id", type=int, help="the customer's id in the store")
    p.add_argument("--website", help="website id or code of --email")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would go; change nothing")
    p.add_argument("--json", action="store_true", help="print the erasure record as JSON")
    p.add_argument("--wait-lock", type=float, metavar="SECONDS",
                   help="wait this long for a running sync to finish")
    add_target_options(p, "SQLAlchemy URL of the target (its run lock is taken)")


def identity(args: argparse.Namespace, website_codes: dict[str, int]) -> Any:
    """The identifier given, checked: an email needs its website (id or known code)."""
    from magsync.load.forget import Identity

    if args.email is None:
        if args.website is not None:
            raise ConfigError("--website goes with --email")
        return Identity(customer_id=args.customer_id)
    if not args.email.strip() or args.website is None:
        raise ConfigError("--email needs --website (a website id or code)")
    website = args.website.strip()
    if website.isdigit():
        return Identity(email=args.email, website_id=int(website))
    if website not in website_codes:
        raise ConfigError(f"unknown website code {website!r} (known: "
                          f"{', '.join(sorted(website_codes))}; or give its id)")
    return Identity(email=args.email, website_id=website_codes[website])


@contextmanager
def remote_copy(settings: Settings, run_id: str) -> Iterator[None]:
    """With a remote output: the store's newest publication fetched before the erasure
    and the erased files published after it, both under its run lock (load/remote.py)."""
    if not settings.remote.url:
        yield
        return
    from magsync.load.remote import fetch, open_remote, publish

    remote = open_remote(settings.remote.url, settings.remote.endpoint_url)
    fetch(settings.output_dir, remote, settings.source.name)
    yield
    publish(settings.output_dir, remote, settings.source.name, run_id)


def run(args: argparse.Namespace) -> int:
    """Erases the customer (or lists what would go); exit 0 also when nothing held it."""
    from magsync.load.forget import run_erasure, write_report
    from magsync.load.layout import report_dir
    from magsync.load.runs import magsync_version, new_run_id
    from magsync.load.sql_store import SqlTarget

    settings = target_settings(args)
    who = identity(args, settings.website_codes)
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    target = SqlTarget(settings.target_url, source=settings.source.name)
    wait = args.wait_lock if args.wait_lock is not None else settings.target.wait_lock_s
    try:
        erasure = run_erasure(target, settings.output_dir, who, run_id=run_id,
                              pii_key=settings.exports.policy().key, dry_run=args.dry_run,
                              wait_lock_s=wait, held=lambda: remote_copy(settings, run_id))
    finally:
        target.dispose()
    record = {"run_id": run_id, "dry_run": args.dry_run, "started_at": started.isoformat(),
              **erasure.to_dict()}
    if not args.dry_run:
        base = {"run_id": run_id, "status": "done", "source": settings.source.name,
                "mode": "forget", "dry_run": False, "input": f"forget by {who.kind}",
                "target": target.describe(), "version": magsync_version(),
                "started_at": started.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(), "received": {},
                "timings_s": {}, "error": None, "output_dir": str(settings.output_dir),
                "exports": {}, "data_docs": None, "not_provided": {}}
        path = write_report(report_dir(settings.output_dir, settings.source.name, run_id),
                            erasure, base)
        record["report"] = str(path.parent)
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
        return 0
    verb = "would be" if args.dry_run else "were"
    print(f"forget {run_id}{' (dry run)' if args.dry_run else ''}: by {who.kind}")
    for name, n in erasure.counts.items():
        print(f"{name}: {n}")
    for label, files in (("rewritten", erasure.files.rewritten),
                         ("removed", erasure.files.removed),
                         ("not cleaned", erasure.files.unscrubbed)):
        for rel in files:
            print(f"{label}: {rel}")
    for note in erasure.notes:
        print(f"note: {note}")
    if "report" in record:
        print(f"report: {record['report']}")
    print(f"{len(erasure.files.rewritten) + len(erasure.files.removed)} file(s) {verb} "
          "changed", file=sys.stderr)
    return 0
