"""A run's identity: its id and the magsync version that made it. Light on purpose (the
command line reads the version before anything heavy is imported)."""

from __future__ import annotations

import secrets
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version


def magsync_version() -> str:
    """The installed magsync version (package metadata), written into every report."""
    try:
        return version("magsync")
    except PackageNotFoundError:
        return "unknown"


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
