"""`magsync sync`: one sync, a Prefect flow run when tracked, else in-process."""

from __future__ import annotations

import argparse
from typing import Any

from magsync.flows.console import (
    error_output,
    flow_outcome,
    print_json,
    print_report,
    quiet_prefect,
    setup_logging,
    untracked,
)
from magsync.flows.messages import load_checked
from magsync.flows.sync_args import overrides
from magsync.flows.tracking import NEEDS_API, needs_api, tracked


def run(args: argparse.Namespace) -> int:
    """Runs the sync (a Prefect flow run when tracked) and prints its report table."""
    quiet_prefect()  # before prefect is imported: its settings are read then
    from magsync.flows.settings import load_settings
    from magsync.flows.source_setup import MISSING_API_KEY
    from magsync.transform.errors import ConfigError

    given = overrides(args)
    if args.store is not None:  # the store's settings from the fleet file, CLI on top
        from magsync.flows.fleet_file import load_fleet, store_overrides

        fleet = load_fleet(args.fleet)
        given = layer(store_overrides(fleet, fleet.store(args.store)), given)
    config = args.config.resolve() if args.config else None
    settings = load_checked(load_settings, config, **given)  # quick: Prefect not loaded
    source = settings.source
    if source.kind == "soap" and source.api_key is None and not (
            source.api_key_block or source.api_key_env):
        raise ConfigError(MISSING_API_KEY)  # before starting Prefect
    show = print_json if args.json else print_report
    if not tracked(args.prefect):
        if needs_api(source):
            raise ConfigError(NEEDS_API)
        return untracked(lambda: _run_untracked(settings), show, args.verbose,
                         settings.log_level)
    from prefect.states import State

    from magsync.flows.sync import sync_flow

    error_output(args.verbose)  # Prefect's console handler exists once prefect is imported
    setup_logging(settings.log_level)
    # The target URL in `given` is a SecretUrl: the run's recorded parameters mask it.
    state: State[Any] = sync_flow(given, str(config) if config else None,
                                  return_state=True)  # type: ignore[assignment]
    return flow_outcome(state, show, "sync failed")


def layer(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, tables merged one level deep."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        out[key] = {**below, **value} if isinstance(below, dict) and isinstance(
            value, dict) else value
    return out


def _run_untracked(settings: Any) -> dict[str, Any]:
    from magsync.flows.sync_steps import run_steps

    return run_steps(settings)
