"""Region ids on the target, from its own directory (`directory_region.list`).

A CE export names an address's region ("Wien") but carries no `region_id`; a store that
has a region list for the country (AT, DE, US, ...) keys the address by `region_id`, and
`customer_address.create` with the name alone leaves `region_id` empty. So before an
address is written its region is looked up in the target's list for its country, by
name or code, case- and accent-insensitively, and the id is sent with the name. Each
country's list is read once per run.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from magsync.magento.errors import MagentoCallFault

REGION_UNKNOWN = "region_unknown_on_target"  # a warning: the address is written by name


class Reader(Protocol):
    """What the resolver needs of a target: read calls through multiCall."""

    def read(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Answers in call order (faults as MagentoCallFault)."""


def region_key(text: Any) -> str:
    """A region name or code as compared: no accents, case-folded, trimmed."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


class RegionResolver:
    """The target's region ids per country, read on first need and kept for the run."""

    def __init__(self, target: Reader) -> None:
        self.target = target
        self._lists: dict[str, dict[str, int]] = {}  # country -> region key -> id

    def load(self, countries: Iterable[str]) -> None:
        """Reads the lists of countries not seen yet, in one round of multiCalls."""
        wanted = sorted({c for c in countries if c and c not in self._lists})
        if not wanted:
            return
        answers = self.target.read([("directory_region.list", [c]) for c in wanted])
        for country, answer in zip(wanted, answers, strict=True):
            rows = [] if isinstance(answer, MagentoCallFault) or not isinstance(answer, list) \
                else answer  # an unknown country (fault 101) has no list either
            keys: dict[str, int] = {}
            for row in rows:
                for label in (row.get("code"), row.get("name")):
                    if label:
                        keys.setdefault(region_key(label), int(row["region_id"]))
            self._lists[country] = keys

    def has_list(self, country: str) -> bool:
        """Whether the target keys this country's addresses by region id."""
        return bool(self._lists.get(country))

    def region_id(self, country: str, region: Any) -> int | None:
        """The target's id of a region name or code of a country, or None."""
        if region is None:
            return None
        return self._lists.get(country, {}).get(region_key(region))


def resolve_regions(payloads: list[dict[str, Any]], regions: RegionResolver) -> list[str | None]:
    """Sets each payload's `region_id` from the target's directory; per payload, why its
    region could not be resolved (None when resolved or when its country has no list)."""
    regions.load(str(p.get("country_id") or "") for p in payloads)
    out: list[str | None] = []
    for payload in payloads:
        country = str(payload.get("country_id") or "")
        region = payload.get("region")
        if not regions.has_list(country) or region is None:
            out.append(None)
            continue
        found = regions.region_id(country, region)
        if found is None:
            payload.pop("region_id", None)  # a source store's id means nothing here
            out.append(f"region {region!r} is not in the target's region list for "
                       f"{country}: written by name only, without a region_id")
        else:
            payload["region_id"] = found
            out.append(None)
    return out


def same_region(payload: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Whether a target address has the payload's region: by id where both have one
    (the store renames the region after its id), else by name."""
    want_id, have_id = payload.get("region_id"), row.get("region_id")
    if want_id not in (None, "") and have_id not in (None, ""):
        return str(want_id).strip() == str(have_id).strip()
    return region_key(payload.get("region") or "") == region_key(row.get("region") or "")
