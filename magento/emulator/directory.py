"""The store's country and region directory (directory_country.list, directory_region.list).

Countries are the 246 a stock Magento 1.9 / OpenMage store lists
(v1_directory_country_list); regions are in `magento/resources/regions.tsv` (AT as
recorded, US, CA and DE as Magento's install data numbers them, ES and FR only the
regions magento.dataset uses). A country without regions answers an empty list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from magsync.magento.emulator.fields import collate

_RESOURCES = Path(__file__).resolve().parents[1] / "resources"


@dataclass(frozen=True)
class Country:
    """One row of directory_country.list."""

    country_id: str
    iso3_code: str
    name: str


@dataclass(frozen=True)
class Region:
    """One row of the region directory."""

    region_id: int
    country_id: str
    code: str
    name: str


def _rows(name: str) -> list[list[str]]:
    text = (_RESOURCES / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


class Directory:
    """Countries and their regions, as a store's directory module holds them."""

    def __init__(self, countries: list[Country], regions: list[Region]) -> None:
        self.countries = list(countries)
        self.regions = {r.region_id: r for r in regions}
        self._codes = {c.country_id: c for c in countries} | {c.iso3_code: c for c in countries}

    def country(self, code: str) -> Country | None:
        """A country by its ISO 2 or ISO 3 code (Magento's loadByCode), case-insensitive."""
        return self._codes.get(code.strip().upper())

    def regions_of(self, country_id: str) -> list[Region]:
        """A country's regions, by name as the store sorts them."""
        found = [r for r in self.regions.values() if r.country_id == country_id]
        return sorted(found, key=lambda r: collate(r.name))

    def region_name(self, region_id: int | None, country_id: str | None) -> str | None:
        """The name a store fills in for `region_id`, when it is a region of the country."""
        region = self.regions.get(region_id) if region_id is not None else None
        if region is None or region.country_id != country_id:
            return None
        return region.name


@functools.cache
def default_directory() -> Directory:
    """The bundled directory (read once)."""
    countries = [Country(c, i3, name) for c, i3, name in _rows("countries.tsv")]
    regions = [Region(int(rid), c, code, name) for rid, c, code, name in _rows("regions.tsv")]
    return Directory(countries, regions)
