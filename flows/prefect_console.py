"""Prefect's console lines at the command line: its INFO lines ("Beginning flow run",
"View at", "Finished in state") only with --verbose; warnings and errors always.

Only Prefect's console handler is raised to WARNING: the loggers keep their level, so the
API handler still sends every line to the server and the UI shows the run's whole log.
"""

from __future__ import annotations

import logging

CONSOLE_HANDLER = "PrefectConsoleHandler"  # by name: importing Prefect here is not needed


def prefect_info_off() -> None:
    """Raises Prefect's console handler (on the root logger, once Prefect is imported) to
    WARNING; a no-op before Prefect is imported, and in an untracked run it never is."""
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == CONSOLE_HANDLER and handler.level < logging.WARNING:
            handler.setLevel(logging.WARNING)
