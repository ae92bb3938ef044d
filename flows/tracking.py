"""Whether a run is tracked: Prefect's settings resolve an API URL (someone is watching).

Importing `prefect.settings` imports the whole `prefect` package (1-4 s here), so the
usual places are read directly, as Prefect reads them: the environment, then the active
profile of the profiles file. Only when another of Prefect's setting sources could hold
the URL (a `.env`, `prefect.toml` or `pyproject.toml` `[tool.prefect]` in the working
folder, PREFECT_PROFILE, a test mode, a nested `PREFECT_API__*` variable) is Prefect
asked.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

API_URL = "PREFECT_API_URL"
# A named profile may be one of Prefect's bundled ones (`local` has a URL); test modes
# and nested names change where settings come from: then Prefect decides.
_ASK_PREFECT = ("PREFECT_API__", "PREFECT_PROFILE=", "PREFECT_TEST_MODE=",
                "PREFECT_UNIT_TEST_MODE=", "PREFECT_TESTING_")
UNTRACKED_LINE = ("untracked run: no Prefect API configured (PREFECT_API_URL or a Prefect "
                  "profile); --prefect tracks it on a temporary server")
NEEDS_API = ("source.api_key_block needs a Prefect API and none is configured: set "
             "PREFECT_API_URL, or give the key in MAGSYNC_SOURCE__API_KEY")


def prefect_api_url() -> str | None:
    """The API URL Prefect's settings resolve to (`get_current_settings().api.url`)."""
    if os.environ.get(API_URL):
        return os.environ[API_URL]
    if _elsewhere():
        from prefect.settings import get_current_settings

        return get_current_settings().api.url
    return _profile_url()


def _elsewhere() -> bool:
    """Whether a setting source this module does not read might set the URL."""
    if any(f"{name}=".startswith(_ASK_PREFECT) for name in os.environ):
        return True
    cwd = Path.cwd()
    if (cwd / "prefect.toml").is_file():
        return True
    dotenv = cwd / ".env"
    if dotenv.is_file() and "PREFECT_" in dotenv.read_text(errors="replace"):
        return True
    pyproject = cwd / "pyproject.toml"
    return pyproject.is_file() and "tool.prefect" in pyproject.read_text(errors="replace")


def profiles_path() -> Path:
    """Prefect's profiles file: PREFECT_PROFILES_PATH, else $PREFECT_HOME/profiles.toml."""
    if os.environ.get("PREFECT_PROFILES_PATH"):
        return Path(os.environ["PREFECT_PROFILES_PATH"]).expanduser()
    home = os.environ.get("PREFECT_HOME") or "~/.prefect"
    return Path(home).expanduser() / "profiles.toml"


def _profile_url() -> str | None:
    """PREFECT_API_URL of the file's active profile; an unknown profile or no file means
    Prefect's default profile, which has none."""
    path = profiles_path()
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None  # Prefect warns and uses no profile settings
    active = data.get("active")
    profile = data.get("profiles", {}).get(active) if isinstance(active, str) else None
    url = profile.get(API_URL) if isinstance(profile, dict) else None
    return str(url) if url else None


def needs_api(source: Any) -> bool:
    """Whether a source's key can only come from a Prefect Secret block (an API call)."""
    return bool(source.kind == "soap" and source.api_key is None
                and not getattr(source, "api_key_env", None) and source.api_key_block)


def tracked(forced: bool) -> bool:
    """A run is a Prefect flow run when forced (--prefect) or when an API URL resolves."""
    return forced or prefect_api_url() is not None
