"""The configured source, built in one place for a sync and a migration alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from magsync.extract.csv_source import CsvSource
from magsync.extract.soap_source import SoapOptions, SoapSource
from magsync.magento.connect import Connection, open_client
from magsync.transform.errors import ConfigError

Source = CsvSource | SoapSource


class SourceConfig(Connection, Protocol):
    """A source's settings (read-only: the settings model fits)."""

    @property
    def kind(self) -> str:
        """csv or soap."""
        ...

    @property
    def input(self) -> Path | None:
        """CSV file or folder."""
        ...

    @property
    def encoding(self) -> str | None:
        """Of CSV files without a byte order mark."""
        ...

    @property
    def delimiter(self) -> str:
        """CSV field delimiter."""
        ...

    @property
    def api(self) -> str:
        """SOAP dialect: v1, v2, wsi or auto."""
        ...

    @property
    def window(self) -> int:
        """Customer ids per customer.list window."""
        ...

    @property
    def max_id_gap(self) -> int | None:
        """Customer ids probed past the highest one seen."""
        ...

    @property
    def multicall_size(self) -> int:
        """Calls per multiCall."""
        ...

    @property
    def lookback_s(self) -> int:
        """Margin before the cursor."""
        ...


@dataclass(frozen=True)
class ReadOptions:
    """How a run reads its source."""

    batch_size: int
    csv_block_bytes: int
    website_codes: Mapping[str, int]
    full: bool = False  # a SOAP source reads everything, not what changed since the cursor


def _no_cursor() -> str | None:
    return None


def build_source(s: SourceConfig, read: ReadOptions, *, api_key: Callable[[], str],
                 cursor: Callable[[], str | None] = _no_cursor) -> Source:
    """The configured source; a SOAP one checked (WSDL, login) before the run starts: a
    bad URL, user or key ends here with one line and exit code 2. `api_key` and `cursor`
    are asked only when needed (the key of a SOAP source, its saved cursor unless full)."""
    if s.kind == "soap":
        return soap_source(s, read, api_key, cursor)
    if s.kind != "csv":
        raise ConfigError(f"source {s.kind!r} is not available in this build")
    if s.input is None:
        raise ConfigError("--input is required for a CSV source")
    return CsvSource(s.input, batch_size=read.batch_size, website_codes=read.website_codes,
                     block_bytes=read.csv_block_bytes, encoding=s.encoding,
                     delimiter=s.delimiter)


def soap_source(s: SourceConfig, read: ReadOptions, api_key: Callable[[], str],
                cursor: Callable[[], str | None]) -> SoapSource:
    """The SOAP source, logged in and checked."""
    if not s.url or not s.api_user:
        raise ConfigError("a SOAP source needs --url and --api-user")
    key = api_key()
    try:
        client = open_client(s, key, s.api)
    except ValueError as err:
        raise ConfigError(f"SOAP source: {err}") from None
    source = SoapSource(client, SoapOptions(
        batch_size=read.batch_size, window=s.window,
        max_id_gap=s.max_id_gap or 100 * s.window, multicall_size=s.multicall_size,
        concurrency=s.concurrency, lookback_s=s.lookback_s, full=read.full,
        cursor=None if read.full else cursor()))
    source.check()
    return source
