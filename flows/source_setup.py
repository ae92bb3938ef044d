"""The source a run reads, from its settings: the API key (the environment, else a Prefect
Secret block) and the cursor the last committed run saved. Sync and migrate build it here;
extract/sources.py builds the readers themselves."""

from __future__ import annotations

import os
from typing import Any

from magsync.extract import sources
from magsync.flows.settings import Settings
from magsync.flows.source_settings import SourceSettings
from magsync.load.sql_store import SqlTarget
from magsync.transform.errors import ConfigError
from magsync.transform.schema import CUSTOMER

MISSING_API_KEY = ("no SOAP API key: set MAGSYNC_SOURCE__API_KEY (or name a Prefect Secret "
                   "block in source.api_key_block)")


def build_source(settings: Settings) -> sources.Source:
    """The configured source of a sync, with this store's saved cursor."""
    read = sources.ReadOptions(settings.batch_size, settings.csv_block_bytes,
                               settings.website_codes, settings.full)
    return sources.build_source(settings.source, read,
                                api_key=lambda: api_key(settings.source),
                                cursor=lambda: saved_cursor(settings))


def api_key(source: SourceSettings) -> str:
    """The API key: MAGSYNC_SOURCE__API_KEY, else the environment variable named in
    source.api_key_env (a fleet's stores), else the named Prefect Secret block."""
    if source.api_key is not None and source.api_key.get_secret_value():
        return source.api_key.get_secret_value()
    if source.api_key_env:
        if os.environ.get(source.api_key_env):
            return os.environ[source.api_key_env]
        raise ConfigError(f"no SOAP API key: the environment variable "
                          f"{source.api_key_env} is not set")
    if source.api_key_block:
        from prefect.blocks.system import Secret

        try:
            block: Any = Secret.load(source.api_key_block)  # sync here: no event loop runs
            value = block.get()
        except ValueError:
            raise ConfigError(f"no Prefect Secret block named {source.api_key_block!r}"
                              ) from None
        if value:
            return str(value)
    raise ConfigError(MISSING_API_KEY)


def saved_cursor(settings: Settings) -> str | None:
    """The customer cursor the last committed run saved for this store, if any."""
    target = SqlTarget(settings.target_url, source=settings.source.name)
    try:
        return target.cursor(CUSTOMER)
    finally:
        target.dispose()
