"""A Magento client from a store's connection settings: the one place a source and a
target open theirs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # zeep loads only when a client is opened
    from magsync.magento.client import MagentoClient


class Secret(Protocol):
    """A secret value (pydantic's SecretStr)."""

    def get_secret_value(self) -> str:
        """The value itself."""
        ...


class Connection(Protocol):
    """How to reach and pace one store (read-only: a settings model fits)."""

    @property
    def url(self) -> str | None:
        """The store's base URL."""
        ...

    @property
    def api_user(self) -> str | None:
        """The SOAP API user."""
        ...

    @property
    def ca_bundle(self) -> Path | None:
        """The store's CA bundle."""
        ...

    @property
    def basic_auth_user(self) -> str | None:
        """HTTP basic auth in front of the store."""
        ...

    @property
    def basic_auth_password(self) -> Secret | None:
        """Its password."""
        ...

    @property
    def timeout_s(self) -> float:
        """Per request."""
        ...

    @property
    def retries(self) -> int:
        """Of reads."""
        ...

    @property
    def backoff_base_s(self) -> float:
        """First pause between retries."""
        ...

    @property
    def concurrency(self) -> int:
        """Requests in flight."""
        ...


def open_client(c: Connection, api_key: str, api: str = "v1") -> MagentoClient:
    """A client of the store (not logged in): v1, or v2/WS-I/auto (a MagentoV2Client).
    ValueError for a URL or option the client refuses."""
    if not c.url or not c.api_user:
        raise ValueError("a store needs a URL and an API user")
    basic = None
    if c.basic_auth_user:
        password = c.basic_auth_password.get_secret_value() if c.basic_auth_password else ""
        basic = (c.basic_auth_user, password)
    options: dict[str, Any] = {
        "timeout": c.timeout_s, "verify": str(c.ca_bundle) if c.ca_bundle else True,
        "basic_auth": basic, "retries": c.retries, "backoff_base": c.backoff_base_s,
        "pool_size": c.concurrency + 1}
    if api == "v1":
        from magsync.magento.client import MagentoClient

        return MagentoClient(c.url, c.api_user, api_key, **options)
    from magsync.magento.client_v2 import MagentoV2Client

    return MagentoV2Client(c.url, c.api_user, api_key, api=api, **options)
