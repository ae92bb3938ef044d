"""`magsync compact`: merges each entity's history files into one, under the run lock."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from magsync.flows.target_args import add_target_options, target_settings


def add_parser(sub: Any) -> None:
    """The `compact` subcommand's arguments."""
    p = sub.add_parser("compact", help="merge the history files of each entity into one "
                                       "(valid_to filled in)")
    add_target_options(p, "SQLAlchemy URL of the target (its run lock is taken)")


def run(args: argparse.Namespace) -> int:
    """Compacts every entity's history; exit 0, also when there was nothing to merge."""
    from magsync.load import history, layout
    from magsync.load.lock import RunLock
    from magsync.load.remote import fetch, open_remote, publish
    from magsync.load.runs import new_run_id
    from magsync.load.sql_store import SqlTarget
    from magsync.transform.schema import LOAD_ORDER

    settings = target_settings(args)
    exports = layout.exports_dir(settings.output_dir, settings.source.name)
    target = SqlTarget(settings.target_url, source=settings.source.name)
    lock = None
    if target.is_initialised():  # else no sync has run there: nothing to hold off
        lock = RunLock(target.engine, settings.source.name, new_run_id(datetime.now(UTC)))
        lock.acquire(settings.target.wait_lock_s)  # no sync publishes history meanwhile
    remote = open_remote(settings.remote.url, settings.remote.endpoint_url) \
        if settings.remote.url and lock is not None else None
    try:
        if remote is not None:  # the store's newest publication, under the lock
            fetch(settings.output_dir, remote, settings.source.name)
        for entity in LOAD_ORDER:
            files, versions = history.compact(exports, entity)
            print(f"{entity.name}: {files} file(s) merged, {versions} version(s)")
        if remote is not None and lock is not None:
            publish(settings.output_dir, remote, settings.source.name, lock.run_id)
    finally:
        if lock is not None:
            lock.release()
        target.dispose()
    print(f"history: {exports / history.HISTORY}", file=sys.stderr)
    return 0
