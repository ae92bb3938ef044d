"""The SOAP source: groups, customers and addresses from a Magento 1 store, as RawBatches.

Customers come from `customer.list`: by customer-id windows in a full pass, by `updated_at`
since the cursor (minus a lookback margin) otherwise. Addresses come from
`customer_address.list`, one call per customer read, batched through multiCall on a small
thread pool. Every batch is bounded; at most two windows are held at a time.

Through SOAP v2 or WS-I (a MagentoV2Client) the same windows go through
`customerCustomerList` and the addresses through one `customerAddressList` request per
customer on the pool (v2 has no multiCall). v2's types lack some columns (NOT_IN_V2):
its batches declare them unprovided, so the pipeline neither compares nor overwrites them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from magsync.extract.prefetch import Prefetch
from magsync.magento.errors import (
    MagentoCallFault,
    MagentoFatalError,
    Translation,
)
from magsync.magento.errors import translated as translated_as
from magsync.transform.batch import RawBatch
from magsync.transform.errors import ConfigError, SourceFatalError, SourceRetriableError
from magsync.transform.faults import Fault, Stage
from magsync.transform.schema import (
    ADDRESS,
    CUSTOMER,
    EXTRA_COL,
    GROUP,
    LINE_COL,
    NEVER_READ,
    SOURCE_COL,
    Entity,
)

if TYPE_CHECKING:  # zeep loads only when a SOAP source is built
    from magsync.magento.client import MagentoClient
    from magsync.magento.client_v2 import MagentoV2Client

log = logging.getLogger("magsync.soap")

STORE_TIME = "%Y-%m-%d %H:%M:%S"  # how Magento writes (and compares) timestamps, UTC
_STORE_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# Magento internals that change without a customer edit (or mean nothing off the store):
# never part of `extra`, so they cannot make an unchanged record look changed.
INTERNALS = NEVER_READ | {"increment_id", "rp_customer_id", "entity_id", "entity_type_id",
                          "attribute_set_id", "is_active", "parent_id", "vat_is_valid",
                          "vat_request_date", "vat_request_id", "vat_request_success"}
VANISHED = 101  # customer_address.list: "Customer not exists." (deleted mid-run)
# Columns the v2 (and WS-I) types cannot deliver: not in customerCustomerEntity or
# customerAddressEntityItem, `confirmation` only as a boolean, no extension attributes.
NOT_IN_V2: dict[str, frozenset[str]] = {
    CUSTOMER.name: frozenset({"gender", "default_billing", "default_shipping",
                              "disable_auto_group_change", "confirmation", "rp_token",
                              "rp_token_created_at", "password_created_at", EXTRA_COL}),
    ADDRESS.name: frozenset({"vat_id", EXTRA_COL}),
}
V2_ADDRESS_CHUNK = 10  # customerAddressList requests per pool task: keeps the slots busy
# Customer windows read ahead of the pipeline (each with its address calls on the pool):
# enough to keep the store's slots busy while a batch is normalised and validated, and the
# most windows one batch takes together.
PREFETCH_WINDOWS = 8
# Customers a batch waits for (in whole windows, at most PREFETCH_WINDOWS; fewer only at the
# end): typing a batch costs about 30 ms whatever its size up to a few thousand rows, so
# one-window batches spent more CPU on that than on the rows, and held the GIL the address
# threads need to keep the store's slots busy.
BATCH_CUSTOMERS = 2_000


@dataclass(frozen=True)
class Window:
    """One customer.list window: its line (the request's ordinal), its customers, and the
    address calls submitted for them (customer ids, pending answers)."""

    line: int
    rows: list[dict[str, Any]]
    calls: list[tuple[list[int], Future[list[Any]]]]


@dataclass(frozen=True)
class SoapOptions:
    """How the source pages, batches and paces its requests."""

    batch_size: int = 50_000  # rows per RawBatch
    window: int = 500  # customer ids per customer.list window
    max_id_gap: int = 50_000  # ids probed past the highest one seen before the scan ends
    multicall_size: int = 50  # customer_address.list calls per multiCall
    concurrency: int = 2  # multiCalls in flight
    lookback_s: int = 300  # incremental: re-read this much before the cursor
    full: bool = True  # a full pass (by id windows) even when a cursor exists
    cursor: str | None = None  # the saved customer cursor (largest updated_at loaded)


class SoapSource:
    """Reads a store over SOAP v1 and yields RawBatches; `cursors()` after iteration."""

    has_groups = True
    paced = True  # waits on the network: the pipeline validates as rows come

    def __init__(self, client: MagentoClient, options: SoapOptions) -> None:
        self.client = client
        self.options = options
        self.endpoint = client.endpoint
        self._cursor = options.cursor
        self.typed = bool(getattr(client, "typed_api", False))  # SOAP v2 or WS-I
        self.requests = ({"customerCustomerList": 0, "customerAddressList": 0} if self.typed
                         else {"customer.list": 0, "multiCall": 0})
        self.unprovided = NOT_IN_V2 if self.typed else {}

    @property
    def incremental(self) -> bool:
        """Whether this run reads changed customers only (a cursor exists, not full)."""
        return not self.options.full and self.options.cursor is not None

    @property
    def pages(self) -> int:
        """Customer list pages fetched so far (progress)."""
        return self.requests["customerCustomerList" if self.typed else "customer.list"]

    def describe(self) -> str:
        """The SOAP endpoint (never credentials)."""
        return self.endpoint

    def cursors(self) -> dict[str, str]:
        """The customer cursor: the largest `updated_at` the store returned (or the old one)."""
        return {CUSTOMER.name: self._cursor} if self._cursor else {}

    def check(self) -> None:
        """Fail fast on a bad URL, user, key or role: log in, make one multiCall of the
        three resources with arguments that match nothing, end the session."""
        if self.typed:
            self._check_v2()
            return
        with translated(), self.client as client:
            # An inline fault 2 (denied) raises; 101 for customer 0 means "allowed".
            client.multi_call([("customer_group.list", None),
                               ("customer.list", [{"customer_id": {"eq": 0}}]),
                               ("customer_address.list", [0])])

    def _check_v2(self) -> None:
        with translated(), self.client as client:
            v2 = _v2(client)
            v2.group_list()
            v2.customer_list({"customer_id": {"eq": 0}})
            try:
                v2.address_list(0)
            except MagentoCallFault as fault:  # 101 for customer 0 means "allowed"
                if fault.code != VANISHED:
                    raise
            log.info("SOAP %s: customer, address and group reads allowed", v2.dialect)

    def __iter__(self) -> Iterator[RawBatch]:
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="magsync-soap")
        try:
            with translated(), self.client as client:
                yield self._groups(client)
                yield from self._customers_and_addresses(client, pool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        log.info("read %s: %s", self.endpoint,
                 ", ".join(f"{count} {name}" for name, count in self.requests.items()))

    # --- reading --------------------------------------------------------------------------

    def _groups(self, client: MagentoClient) -> RawBatch:
        groups = _v2(client).group_list() if self.typed else client.call("customer_group.list")
        rows = _rows(groups, "customer_group.list")
        return RawBatch(GROUP, raw_frame(GROUP, rows, self.endpoint, [1] * len(rows)))

    def _customers_and_addresses(self, client: MagentoClient,
                                 pool: ThreadPoolExecutor) -> Iterator[RawBatch]:
        """Customers window by window, read ahead by a thread of their own while the
        pipeline works (extract/prefetch.py); each window's addresses are fetched on the
        pool as soon as its customers are read. The windows already read are taken
        together, so a busy pipeline gets fewer, bigger batches; a group's addresses are
        yielded after the next group's customers (always after their own customers)."""
        windows = Prefetch(self._windows(client, pool), ahead=PREFETCH_WINDOWS,
                           name="magsync-soap-windows")
        previous: list[Window] = []
        with windows:
            least = -(-BATCH_CUSTOMERS // self.options.window)  # windows, rounded up
            for group in windows.groups(limit=PREFETCH_WINDOWS, least=least):
                rows = [row for window in group for row in window.rows]
                lines = [window.line for window in group for _ in window.rows]
                for start in range(0, len(rows), self.options.batch_size):
                    stop = start + self.options.batch_size
                    yield self._batch(CUSTOMER, raw_frame(CUSTOMER, rows[start:stop],
                                                          self.endpoint, lines[start:stop]))
                yield from self._address_batches(previous)
                previous = group
            yield from self._address_batches(previous)

    def _windows(self, client: MagentoClient, pool: ThreadPoolExecutor) -> Iterator[Window]:
        """Each window of customers, its address calls submitted to the pool."""
        windows = self._changed(client) if self.incremental else self._id_windows(client)
        for line, rows in windows:
            self._advance_cursor(rows)
            ids = [int(row["customer_id"]) for row in rows]
            chunk = min(self.options.multicall_size, V2_ADDRESS_CHUNK) if self.typed else (
                self.options.multicall_size)
            calls = [(part, pool.submit(self._address_call, client, part))
                     for part in _chunks(ids, chunk)]
            self.requests["customerAddressList" if self.typed else "multiCall"] += (
                len(ids) if self.typed else len(calls))
            yield Window(line, rows, calls)

    def _batch(self, entity: Entity, frame: pd.DataFrame, faults: list[Fault] | None = None,
               keyless: int = 0) -> RawBatch:
        """A RawBatch that names the columns this API cannot deliver."""
        unprovided = self.unprovided.get(entity.name, frozenset())
        if unprovided:
            frame = frame.drop(columns=[c for c in unprovided if c in frame.columns])
        return RawBatch(entity, frame, faults or [], keyless_faults=keyless,
                        unprovided=unprovided)

    def _list(self, client: MagentoClient, filters: dict[str, Any]) -> list[dict[str, Any]]:
        if self.typed:
            self.requests["customerCustomerList"] += 1
            return _rows(_v2(client).customer_list(filters), "customer.list")
        self.requests["customer.list"] += 1
        return _rows(client.call("customer.list", [filters]), "customer.list")

    def _id_windows(self, client: MagentoClient) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """Full pass: id windows; after an empty one the probe range doubles, up to
        `max_id_gap` past the highest id seen; then one `gt` probe past all of it."""
        window, gap = self.options.window, self.options.max_id_gap
        start, highest, span, line = 1, 0, window, 0
        while start <= highest + gap:
            end = min(start + span - 1, highest + gap)
            line += 1
            rows = self._list(client, {"customer_id": {"from": start, "to": end}})
            yield line, rows
            if rows:
                highest = max(highest, *(int(row["customer_id"]) for row in rows))
                span = window
            else:
                span *= 2
            start = end + 1
        rest = self._list(client, {"customer_id": {"gt": start - 1}})
        if rest:
            log.warning("%d customer(s) found past an id gap larger than max_id_gap (%d): "
                        "raise source.max_id_gap", len(rest), gap)
        for part in _chunks(rest, window):
            line += 1
            yield line, part

    def _changed(self, client: MagentoClient) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """Incremental: customers with updated_at from the cursor minus the lookback."""
        cursor = datetime.strptime(str(self.options.cursor), STORE_TIME)
        since = (cursor - timedelta(seconds=self.options.lookback_s)).strftime(STORE_TIME)
        rows = self._list(client, {"updated_at": {"from": since}})
        log.info("%d customer(s) updated since %s (cursor %s)", len(rows), since,
                 self.options.cursor)
        yield from enumerate(_chunks(rows, self.options.window), start=1)

    def _advance_cursor(self, rows: Sequence[dict[str, Any]]) -> None:
        stamps = [row["updated_at"] for row in rows if _is_store_time(row.get("updated_at"))]
        if stamps:
            self._cursor = max(stamps) if self._cursor is None else max(self._cursor, *stamps)

    def _address_call(self, client: MagentoClient, ids: list[int]) -> list[Any]:
        if self.typed:
            return [_address_list_v2(_v2(client), cid) for cid in ids]
        results = client.multi_call([("customer_address.list", [cid]) for cid in ids])
        if len(results) != len(ids):
            raise MagentoFatalError(f"multiCall(customer_address.list): {len(results)} "
                                    f"answers to {len(ids)} calls",
                                    resource="customer_address.list")
        return results

    def _address_batches(self, windows: list[Window]) -> Iterator[RawBatch]:
        rows: list[dict[str, Any]] = []
        lines: list[int] = []
        faults: list[Fault] = []
        keyless = 0
        size = self.options.batch_size
        for window in windows:
            for ids, future in window.calls:
                for cid, result in zip(ids, future.result(), strict=True):
                    if isinstance(result, list):
                        found = [{**row, "customer_id": cid} for row in result
                                 if isinstance(row, dict)]
                        rows += found
                        lines += [window.line] * len(found)
                        continue
                    faults.append(self._address_fault(cid, result, window.line))
                    keyless += faults[-1].rule != "vanished"
                while len(rows) >= size:
                    yield self._address_batch(rows[:size], lines[:size], faults, keyless)
                    rows, lines, faults, keyless = rows[size:], lines[size:], [], 0
        if rows or faults:
            yield self._address_batch(rows, lines, faults, keyless)

    def _address_batch(self, rows: list[dict[str, Any]], lines: list[int],
                       faults: list[Fault], keyless: int) -> RawBatch:
        frame = raw_frame(ADDRESS, rows, self.endpoint, lines)
        return self._batch(ADDRESS, frame, faults, keyless)

    def _address_fault(self, customer_id: int, result: Any, line: int) -> Fault:
        """A failed customer_address.list: "vanished" when the customer was deleted
        mid-run (its addresses are gone too); otherwise its addresses are unknown."""
        if isinstance(result, MagentoCallFault):
            vanished = result.code == VANISHED
            rule = "vanished" if vanished else f"soap_fault_{result.code}"
            message = str(result)  # names the resource and the customer id
        else:
            rule, message = "bad_answer", (f"customer {customer_id}: customer_address.list "
                                           f"answered a {type(result).__name__}, not a list")
        return Fault(entity=ADDRESS.name, stage=Stage.READ, rule=rule, message=message,
                     source=self.endpoint, source_line=line)


def _v2(client: MagentoClient) -> MagentoV2Client:
    return cast("MagentoV2Client", client)


def _address_list_v2(client: MagentoV2Client, customer_id: int) -> Any:
    """One customerAddressList; a per-customer fault comes back as data, as in multiCall."""
    try:
        return client.address_list(customer_id)
    except MagentoCallFault as fault:
        return fault


# --- values -----------------------------------------------------------------------------


def raw_frame(entity: Entity, rows: Sequence[dict[str, Any]], source: str,
              lines: Sequence[int]) -> pd.DataFrame:
    """Decoded SOAP maps as a RawBatch frame: schema columns as strings, unknown keys in
    `extra` (canonical JSON), Magento internals dropped, plus lineage."""
    present: set[str] = set().union(*rows)
    names = [name for name in entity.names if name in present]
    data: dict[str, Any] = {
        name: pd.Series([_text(row.get(name)) for row in rows], dtype="str") for name in names
    }
    if entity.extra_allowed:
        unknown = {k for k in present if not entity.has(k)} - INTERNALS
        extra = [_extra(entity, row) for row in rows] if unknown else [None] * len(rows)
        data[EXTRA_COL] = pd.Series(extra, dtype="str")
    data[SOURCE_COL] = pd.Series([source] * len(rows), dtype="str")
    data[LINE_COL] = pd.Series(np.asarray(lines, dtype=np.int64))
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def _text(value: Any) -> str | None:
    """A decoded SOAP value as the raw text the normaliser reads; booleans as 1 and 0."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _extra(entity: Entity, row: dict[str, Any]) -> str | None:
    values = {key: _text(value) for key, value in row.items()
              if not entity.has(key) and key not in INTERNALS and value is not None}
    if not values:
        return None
    return json.dumps(dict(sorted(values.items())), ensure_ascii=False, separators=(",", ":"))


def _rows(result: Any, resource: str) -> list[dict[str, Any]]:
    if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
        raise MagentoFatalError(f"{resource}: the store answered something other than a "
                                "list of records", resource=resource)
    return result


def _is_store_time(value: Any) -> bool:
    return isinstance(value, str) and _STORE_TIME_RE.fullmatch(value) is not None


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def _source_call_fault(err: MagentoCallFault) -> Exception:
    if err.resource in ("customer.list", "customerCustomerList") and err.code == 101:
        return ConfigError(f"{err} (a filter this store does not accept)")
    return SourceFatalError(str(err))


SOURCE_ERRORS = Translation(config=ConfigError, fatal=SourceFatalError,
                            retriable=SourceRetriableError,
                            retriable_note=" (retries exhausted)",
                            call_fault=_source_call_fault)


def translated() -> AbstractContextManager[None]:
    """Magento client errors as a source's, by what the caller should do (one line each)."""
    return translated_as(SOURCE_ERRORS)
