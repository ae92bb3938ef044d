"""A Magento 1 / OpenMage store as a write target, through the SOAP v1 API.

Reads (`customer.list`, `customer_address.list`, `customer_group.list`) find what the
target already holds; writes (`customer.create|update|delete`,
`customer_address.create|update|delete`) go through `multiCall`, `multicall_size` calls
per request and at most `concurrency` requests in flight. The client retries reads; a
write whose request failed in transit comes back as `OutcomeUnknown`, never resent here:
the caller re-reads the target first (load/magento_upsert.py).

Payloads are built from typed, normalised rows (transform.schema) with the website,
store and group ids mapped onto the target's. `password_hash` is carried verbatim.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

import pandas as pd

from magsync.magento.errors import MagentoCallFault, Translation
from magsync.magento.errors import translated as translated_as
from magsync.transform.errors import ConfigError, MagsyncError
from magsync.transform.schema import ADDRESS, CUSTOMER, Entity, Kind
from magsync.transform.values import is_missing

if TYPE_CHECKING:
    from magsync.magento.client import MagentoClient

# The attributes written, per entity. Left out, with the reason (README, verify):
# ids and keys (the target assigns its own), updated_at (the store sets it),
# default_billing/default_shipping (target address ids: carried as the addresses'
# is_default_* flags), rp_token/rp_token_created_at (a reset link of the old store),
# password_created_at (the store sets it), extra (extension attributes: not in v1).
CUSTOMER_WRITTEN = ("website_id", "store_id", "group_id", "email", "created_in", "prefix",
                    "firstname", "middlename", "lastname", "suffix", "taxvat", "dob",
                    "gender", "created_at", "disable_auto_group_change", "password_hash",
                    "confirmation")
ADDRESS_WRITTEN = ("prefix", "firstname", "middlename", "lastname", "suffix", "company",
                   "street", "city", "region", "region_id", "postcode", "country_id",
                   "telephone", "fax", "vat_id", "is_default_billing", "is_default_shipping",
                   "created_at")
# Optional text attributes an update clears with "" when the source has none (a null is
# ignored by customer.update, PHP's isset). Other kinds cannot be cleared through the API.
CLEARABLE = {CUSTOMER.name: ("prefix", "middlename", "suffix", "taxvat", "confirmation"),
             ADDRESS.name: ("prefix", "middlename", "suffix", "company", "region", "fax",
                            "vat_id")}
LIST_CHUNK = 200  # values per `in` filter of one customer.list call


class TargetFatalError(MagsyncError):
    """The target store refused us for good (denied, wrong URL, protocol error)."""

    exit_code = 2


@dataclass(frozen=True)
class OutcomeUnknown:
    """A write whose request failed in transit: the store may or may not have applied it."""

    reason: str


Result = Any  # a decoded answer, a MagentoCallFault, or OutcomeUnknown


@dataclass
class StoreMaps:
    """Source ids to target ids: websites and stores by id (identity unless mapped),
    groups by code against the target's customer_group.list (or an explicit map)."""

    websites: Mapping[int, int] = field(default_factory=dict)
    stores: Mapping[int, int] = field(default_factory=dict)
    group_ids: Mapping[int, int] = field(default_factory=dict)  # explicit --group-map
    target_groups: Mapping[str, int] = field(default_factory=dict)  # code -> target id
    source_groups: dict[int, str | None] = field(default_factory=dict)  # id -> code
    same_group_ids: bool = False  # --same-group-ids: source id N is target id N

    def check_group_source(self, has_groups: bool) -> None:
        """Refuses up front a source that gives group ids without codes (a CE export
        without a groups file) when nothing says how to map them."""
        if has_groups or self.group_ids or self.same_group_ids:
            return
        raise ConfigError(
            "the source gives customer group ids without their codes (a CE export carries "
            "group_id only), so groups cannot be matched by code: put a groups file "
            "(customer_group_id,customer_group_code) next to the export, map each group "
            "with --group-map SOURCE_ID=TARGET_ID, or pass --same-group-ids when the "
            "target uses the same group ids")

    def learn_groups(self, frame: pd.DataFrame) -> None:
        """Remembers the source's group codes from a prepared group frame."""
        for gid, code in zip(frame["customer_group_id"], frame["customer_group_code"],
                             strict=True):
            if not is_missing(gid):
                self.source_groups[int(gid)] = None if is_missing(code) else str(code)

    def website(self, source_id: int) -> int:
        """The target website id."""
        return int(self.websites.get(source_id, source_id))

    def store(self, source_id: int) -> int:
        """The target store id."""
        return int(self.stores.get(source_id, source_id))

    def group(self, source_id: int) -> tuple[int | None, str]:
        """The target group id, or None and why not."""
        if source_id in self.group_ids:
            return int(self.group_ids[source_id]), ""
        if self.same_group_ids:
            if source_id in set(self.target_groups.values()):
                return source_id, ""
            return None, (f"group id {source_id} does not exist on the target "
                          "(--same-group-ids): create it there, or --group-map "
                          f"{source_id}=TARGET_ID")
        code = self.source_groups.get(source_id)
        if code is None:
            why = ("is unknown to the source's group list" if source_id not in
                   self.source_groups else "has no code in the source")
            return None, (f"source group {source_id} {why}: give a groups file, or "
                          f"--group-map {source_id}=TARGET_ID")
        if code not in self.target_groups:
            return None, (f"group {code!r} (source id {source_id}) does not exist on the "
                          "target: create it there first (magsync cannot create groups)")
        return self.target_groups[code], ""


def _wire(kind: Kind, value: Any) -> Any:
    """A typed cell as Magento takes it."""
    if kind is Kind.INT:
        return int(value)
    if kind is Kind.BOOL:
        return 1 if bool(value) else 0
    if kind is Kind.DATE:
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    if kind is Kind.TIMESTAMP:
        return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _payload(entity: Entity, row: Mapping[Any, Any], names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = row.get(name)
        if not is_missing(value):
            out[name] = _wire(entity.column(name).kind, value)
    return out


def customer_payload(row: Mapping[Any, Any], maps: StoreMaps) -> tuple[dict[str, Any], str]:
    """customer.create data for a typed customer row, ids mapped; ("", why) if unmappable."""
    data = _payload(CUSTOMER, row, CUSTOMER_WRITTEN)
    data["website_id"] = maps.website(data["website_id"])
    if "store_id" in data:
        data["store_id"] = maps.store(data["store_id"])
    if "group_id" in data:
        group, why = maps.group(data["group_id"])
        if group is None:
            return {}, why
        data["group_id"] = group
    return data, ""


def address_payload(row: Mapping[Any, Any]) -> dict[str, Any]:
    """customer_address.create data for a typed address row; street as its lines."""
    data = _payload(ADDRESS, row, ADDRESS_WRITTEN)
    for flag in ("is_default_billing", "is_default_shipping"):
        if not data.get(flag):
            data.pop(flag, None)  # false cannot unset a default: leave it out
    if "street" in data:
        data["street"] = str(data["street"]).split("\n")
    return data


def update_payload(entity: Entity, data: Mapping[str, Any]) -> dict[str, Any]:
    """An update's data: the payload plus "" for optional text the source lacks."""
    return {**dict.fromkeys(CLEARABLE[entity.name], ""), **data}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return blake2b(text.encode(), digest_size=6).hexdigest()


def payload_hash(data: Mapping[str, Any]) -> int:
    """A signed 64-bit hash of a payload (what was written, compared on the next run)."""
    raw = blake2b(json.dumps(data, sort_keys=True, ensure_ascii=False).encode(),
                  digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


def field_digests(data: Mapping[str, Any]) -> dict[str, str]:
    """A short digest per field: enough to name changed fields, never the values."""
    return {name: _digest(value) for name, value in data.items()}


def _chunked(items: Sequence[Any], size: int) -> Iterator[tuple[int, Sequence[Any]]]:
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


class MagentoTarget:
    """Reads and batched writes against one store; use as a context manager."""

    def __init__(self, client: MagentoClient, *, multicall_size: int = 50,
                 concurrency: int = 2) -> None:
        self.client = client
        self.multicall_size = multicall_size
        self.concurrency = concurrency
        self.requests = 0
        self.writes = 0  # write calls sent (creates, updates, deletes)
        self._pool: ThreadPoolExecutor | None = None

    def describe(self) -> str:
        """The target endpoint (never credentials)."""
        return self.client.endpoint

    def __enter__(self) -> MagentoTarget:
        with translated():
            self.client.__enter__()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="magsync-target")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.client.__exit__(None, None, None)

    # --- reads ----------------------------------------------------------------------------

    def groups(self) -> dict[str, int]:
        """The target's group codes and ids."""
        with translated():
            rows = self.client.call("customer_group.list")
        return {str(r["customer_group_code"]): int(r["customer_group_id"]) for r in rows}

    def find_customers(self, emails: Iterable[str]) -> list[dict[str, Any]]:
        """Target customers whose email is one of `emails` (the store compares them
        case-insensitively)."""
        values = sorted(set(emails))
        calls = [("customer.list", [{"email": {"in": list(part)}}])
                 for _, part in _chunked(values, LIST_CHUNK)]
        return [row for result in self.read(calls) for row in _rows(result, "customer.list")]

    def customers(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """Target customers by id (missing ones are left out)."""
        values = sorted(set(ids))
        calls = [("customer.list", [{"customer_id": {"in": list(part)}}])
                 for _, part in _chunked(values, LIST_CHUNK)]
        return [row for result in self.read(calls) for row in _rows(result, "customer.list")]

    def addresses(self, customer_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """Each customer's target addresses (customers that are gone map to [])."""
        ids = sorted(set(customer_ids))
        results = self.read([("customer_address.list", [cid]) for cid in ids])
        out: dict[int, list[dict[str, Any]]] = {}
        for cid, result in zip(ids, results, strict=True):
            out[cid] = [] if isinstance(result, MagentoCallFault) else \
                _rows(result, "customer_address.list")
        return out

    def read(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Result]:
        """Read calls through multiCall (the client retries them); answers in call order."""
        out: list[Result] = [None] * len(calls)
        for indices, results in self._run(calls):
            for index, result in zip(indices, results, strict=True):
                if isinstance(result, OutcomeUnknown):
                    raise TargetUnavailableError(result.reason)
                out[index] = result
        return out

    # --- writes ---------------------------------------------------------------------------

    def write(self, calls: Sequence[tuple[str, list[Any]]]
              ) -> Iterator[tuple[list[int], list[Result]]]:
        """Runs write calls; yields (indices into `calls`, results) per multiCall as each
        completes. A request lost in transit yields OutcomeUnknown for each of its calls."""
        self.writes += len(calls)
        return self._run(calls)

    def _run(self, calls: Sequence[tuple[str, list[Any]]]
             ) -> Iterator[tuple[list[int], list[Result]]]:
        """multiCalls in order, at most `concurrency` in flight: a caller that stops
        iterating leaves at most that many requests running."""
        if self._pool is None:
            raise RuntimeError("MagentoTarget used outside its `with` block")
        pool = self._pool
        parts = iter(_chunked(calls, self.multicall_size))
        window: deque[tuple[list[int], Future[list[Result]]]] = deque()

        def submit() -> None:
            nxt = next(parts, None)
            if nxt is not None:
                start, part = nxt
                indices = list(range(start, start + len(part)))
                self.requests += 1
                window.append((indices, pool.submit(self._multi, list(part))))

        for _ in range(self.concurrency):
            submit()
        while window:
            indices, future = window.popleft()
            results = future.result()
            submit()
            yield indices, results

    def _multi(self, calls: list[tuple[str, list[Any]]]) -> list[Result]:
        try:
            with translated():
                results = self.client.multi_call(calls)
        except TargetUnavailableError as err:
            return [OutcomeUnknown(str(err))] * len(calls)
        if len(results) != len(calls):
            raise TargetFatalError(f"target: {len(results)} answers to {len(calls)} calls")
        return results


class TargetUnavailableError(MagsyncError):
    """The target kept failing in transit (timeouts, dropped connections, HTTP 5xx)."""


TARGET_ERRORS = Translation(config=ConfigError, fatal=TargetFatalError,
                            retriable=TargetUnavailableError, prefix="target: ")


def translated() -> AbstractContextManager[None]:
    """Client errors as magsync's: auth -> ConfigError, passing failures ->
    TargetUnavailableError, the rest -> TargetFatalError; per-call faults pass through."""
    return translated_as(TARGET_ERRORS)


def _rows(result: Any, resource: str) -> list[dict[str, Any]]:
    if isinstance(result, MagentoCallFault):
        raise TargetFatalError(f"target: {result}")
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise TargetFatalError(f"target: {resource} answered something other than a list "
                               "of records")
    return result
