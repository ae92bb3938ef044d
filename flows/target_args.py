"""Where a command finds the target and its reports: --target, --output-dir,
--source-name and --config, and the settings they override. Shared by the subcommands
that read or write the target (sync, runs, report, faults)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magsync.flows.secret_url import SecretUrl
from magsync.load.layout import is_url

if TYPE_CHECKING:
    from magsync.flows.settings import Settings


def add_target_options(p: argparse.ArgumentParser,
                       target_help: str = "SQLAlchemy URL of the target") -> None:
    """--target, --output-dir, --source-name and --config."""
    p.add_argument("--target", help=target_help)
    p.add_argument("--output-dir", metavar="DIR_OR_URL",
                   help="output folder, or an fsspec URL (s3://bucket/prefix) published to")
    p.add_argument("--source-name", help="store name kept with every row (default 'default')")
    p.add_argument("--config", type=Path, help="TOML settings file (default ./magsync.toml)")


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The options the command line gave (argparse leaves the others None)."""
    return {k: v for k, v in values.items() if v is not None}


def path(value: Path | None) -> str | None:
    """A path option as an absolute path (the run may change folder)."""
    return None if value is None else str(value.resolve())


def target_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given by --output-dir, --source-name and --target (only those given).
    The URL becomes a SecretUrl: it reaches the settings (and a flow run's parameters)
    with its password masked wherever it is shown, and never goes through os.environ."""
    out: dict[str, Any] = {}
    if args.output_dir is not None:
        given_dir = str(args.output_dir)
        out["output_dir"] = given_dir if is_url(given_dir) else str(Path(given_dir).resolve())
    if args.source_name is not None:
        out["source"] = {"name": args.source_name}
    if args.target:
        out["target"] = {"url": SecretUrl(args.target)}
    return out


def target_settings(args: argparse.Namespace) -> Settings:
    """The settings of a command that reads the target: its layers under the options
    above; a settings problem is a ConfigError (exit 2)."""
    from magsync.flows.messages import load_checked
    from magsync.flows.settings import load_settings

    return load_checked(load_settings, args.config, **target_overrides(args))
