"""Where a store's files live under the output folder: one partition per store.

    <output>/exports/source=<name>/<table>.parquet    (and its history/ and manifests)
    <output>/reports/source=<name>/<run_id>/          (summary, records, page)
    <output>/staging/source=<name>/<run_id>/          (a run's scratch files)

Stores sharing an output folder (a fleet) never touch each other's files: a run removes
stale staging and prunes old reports only inside its own partition. Every place that
computes one of these folders calls this module.
"""

from __future__ import annotations

import re
from pathlib import Path

EXPORTS, REPORTS, STAGING = "exports", "reports", "staging"
# A store name becomes a folder name: letters, digits, '.', '_', '-'; not '.' or '..'.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def check_store_name(name: str) -> str:
    """The name if it is usable as a partition folder, else ValueError saying why."""
    if not _NAME.match(name):
        raise ValueError(f"store name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return name


def is_url(value: str) -> bool:
    """Whether an output location names a remote (scheme://...) rather than a folder."""
    return "://" in value


def partition(output_dir: Path, kind: str, source: str) -> Path:
    """`<output_dir>/<kind>/source=<source>`: one store's share of exports, reports or
    staging."""
    return Path(output_dir) / kind / f"source={check_store_name(source)}"


def exports_dir(output_dir: Path, source: str) -> Path:
    """The store's Parquet exports (and their history)."""
    return partition(output_dir, EXPORTS, source)


def reports_dir(output_dir: Path, source: str) -> Path:
    """The folder of the store's run reports, one sub-folder per run."""
    return partition(output_dir, REPORTS, source)


def report_dir(output_dir: Path, source: str, run_id: str) -> Path:
    """One run's report folder."""
    return reports_dir(output_dir, source) / run_id


def staging_dir(output_dir: Path, source: str) -> Path:
    """The store's staging root, one sub-folder per run."""
    return partition(output_dir, STAGING, source)
