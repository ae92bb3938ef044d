"""Exceptions, grouped by what the caller should do about them.

Per-record problems are not exceptions: they are `transform.faults.Fault` data.
"""

from __future__ import annotations


class MagsyncError(Exception):
    """Root of every error magsync raises on purpose."""

    exit_code = 1
    report: dict[str, object] | None = None  # the run's report, when a run had started


class ConfigError(MagsyncError):
    """The run cannot start as configured: fix settings, credentials or arguments."""

    exit_code = 2


class SourceFatalError(MagsyncError):
    """The source refused us for good (bad path, bad format, denied): do not retry."""

    exit_code = 2


class SourceRetriableError(MagsyncError):
    """A passing source failure (timeout, dropped connection, HTTP 5xx): retry later."""


class TargetLockedError(MagsyncError):
    """Another run holds the target's lock."""

    exit_code = 3


class GuardRefusedError(MagsyncError):
    """A safety guard (delete ratio, fault ratio) refused the run before any write."""


class ConservationError(MagsyncError):
    """The records read and the records accounted for (loaded, unchanged, faulted) differ:
    a record was lost or counted twice, so the run stops before any write."""
