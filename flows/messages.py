"""How errors read at the command line: one `magsync: ...` line each, no traceback.

Light on purpose (no Prefect, no pandas): the CLI imports it before anything heavy.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from magsync.transform.errors import ConfigError, MagsyncError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3
VERBOSE_HINT = "rerun with --verbose for the traceback"
ERRORS_LOGGER = "magsync.errors"  # expected errors with their traceback, shown by --verbose
T = TypeVar("T")


def one_line(text: str) -> str:
    """`text` with line breaks and runs of blanks folded into single spaces."""
    return " ".join(str(text).split())


def settings_error(err: ValidationError) -> str:
    """The first problem of a settings ValidationError, naming the setting."""
    problems = err.errors()
    first = problems[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if not where:
        return f"invalid settings: {one_line(first.get('msg', ''))}{more}"
    return f"invalid setting {where}: {one_line(first.get('msg', ''))}{more}"


def load_checked(loader: Callable[..., T], config: Path | None, *,
                 default_file: str = "magsync.toml", **overrides: Any) -> T:
    """`loader(config, **overrides)`, its errors as ConfigError: a missing or malformed
    settings file and an invalid setting all mean exit 2."""
    if config is not None and not config.is_file():
        raise ConfigError(f"settings file not found: {config}")
    try:
        return loader(config, **overrides)
    except ValidationError as err:
        raise ConfigError(settings_error(err)) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"settings file {config or default_file} is not valid TOML: "
                          f"{one_line(str(err))}") from err


def describe_failure(err: BaseException) -> tuple[int, str]:
    """The exit code and the one line (without `magsync: `) an error ends the CLI with."""
    if isinstance(err, MagsyncError):
        return err.exit_code, one_line(str(err))
    if isinstance(err, ValidationError):
        return EXIT_CONFIG, settings_error(err)
    if isinstance(err, OSError) and err.strerror:
        # The system refused something mid-run (disk full, permissions): a failed run.
        where = f": {err.filename}" if err.filename else ""
        return EXIT_FAILED, f"run failed: {err.strerror}{where}"
    text = one_line(str(err))
    return EXIT_FAILED, (f"internal error: {type(err).__name__}"
                         f"{': ' + text if text else ''} ({VERBOSE_HINT})")


class QuietTracebacks(logging.Filter):
    """Keeps tracebacks off the console: an expected error's record is dropped (the CLI
    prints its one line), any other record keeps its message without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Drops or strips the record's exception; never blocks a record without one."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, MagsyncError):
            return False
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def quiet_tracebacks() -> None:
    """Installs QuietTracebacks on the root logger's handlers (Prefect's console)."""
    quiet = QuietTracebacks()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QuietTracebacks) for f in handler.filters):
            handler.addFilter(quiet)
