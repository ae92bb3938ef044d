"""Reading the fleet file: its stores' settings, and the concurrency limits they take."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from magsync.flows.fleet_settings import Fleet, FleetStore
from magsync.flows.messages import settings_error
from magsync.load.layout import is_url
from magsync.transform.errors import ConfigError

FLEET_FILE = Path("stores.toml")


def limit_names(fleet: Fleet, store: FleetStore) -> dict[str, str]:
    """The global concurrency limits a store's sync takes: its target's writers and its
    store host (one run at a time; a CSV store stands for itself)."""
    host = urlsplit(store.source.url).netloc if store.source.url else f"csv-{store.name}"
    return {"target": f"magsync-target-{store.target}",
            "store": "magsync-store-" + re.sub(r"[^A-Za-z0-9._-]", "-", host)}


def store_overrides(fleet: Fleet, store: FleetStore) -> dict[str, Any]:
    """The settings a store's sync runs with (its deployment's parameters): secret-free."""
    source = {**store.source.model_dump(mode="json", exclude_none=True), "name": store.name}
    out: dict[str, Any] = {"source": source, "output_dir": fleet.output_dir,
                           "target": {"url": fleet.targets[store.target].url},
                           "limits": limit_names(fleet, store)}
    for key in ("website_codes", "gender_labels"):
        if getattr(store, key) is not None:
            out[key] = getattr(store, key)
    return out


def load_fleet(path: Path | None = None) -> Fleet:
    """The fleet file, validated; every mistake is a ConfigError naming the setting."""
    path = path or FLEET_FILE
    if not path.is_file():
        raise ConfigError(f"fleet file not found: {path}")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        fleet = Fleet(**data)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"fleet file {path} is not valid TOML: {err}") from None
    except ValidationError as err:
        raise ConfigError(f"fleet file {path}: {settings_error(err)}") from None
    base = path.resolve().parent  # relative paths are relative to the fleet file
    if not is_url(fleet.output_dir):
        fleet.output_dir = str((base / Path(fleet.output_dir).expanduser()).resolve())
    for store in fleet.stores:
        if store.source.input is not None:
            store.source.input = (base / store.source.input.expanduser()).resolve()
    return fleet
