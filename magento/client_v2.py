"""Magento 1 / OpenMage SOAP v2 client, rpc/encoded or in WS-I compliance mode.

Sessions, retries, re-login after fault 5, fault mapping, secret scrubbing and endSession
are MagentoClient's (this is a subclass); what differs is the WSDL (`/api/v2_soap/?wsdl=1`,
whose binding tells v2 from WS-I), the endpoint (`/api/v2_soap/`), and the typed
operations, whose envelopes magento.v2_codec builds. v2 has no multiCall: one request
per customer for its addresses, on the caller's thread pool.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import zeep
from zeep import xsd

from magsync.magento import codec, v2_codec
from magsync.magento.client import MagentoClient
from magsync.magento.errors import MagentoFatalError, summarize_args
from magsync.magento.wsdl import StoreService, load_service, store_urls

__all__ = ["API_CHOICES", "MagentoV2Client", "V2Service", "v2_urls"]

log = logging.getLogger("magsync.soap")
Dialect = Literal["v2", "wsi"]
API_CHOICES = ("v2", "wsi", "auto")
OPERATIONS = ("login", "endSession", "customerCustomerList", "customerAddressList",
              "customerGroupList", "customerCustomerInfo")
_WSDL_PATH = "api/v2_soap/?wsdl=1"


def v2_urls(url: str) -> tuple[str, str]:
    """(endpoint, wsdl_url) of the v2 API for a store base URL."""
    base = url.strip()
    for suffix in ("api/v2_soap/", "api/v2_soap"):
        base = base.removesuffix(suffix)
    endpoint, wsdl_url = store_urls(base, _WSDL_PATH)
    return endpoint.removesuffix("api/soap/") + "api/v2_soap/", wsdl_url


@dataclass(frozen=True)
class V2Service(StoreService):
    """The loaded v2 WSDL: StoreService plus which dialect its binding speaks."""

    dialect: Dialect = "v2"


def _inspect_v2(client: zeep.Client, endpoint: str, label: str) -> StoreService:
    for binding in client.wsdl.bindings.values():
        operations = {name: binding.get(name) for name in OPERATIONS if name in binding.all()}
        if len(operations) < len(OPERATIONS):
            continue
        style = {operation.style for operation in operations.values()}
        dialect: Dialect = "wsi" if style == {"document"} else "v2"
        skip = {
            name: {part: xsd.SkipValue for part, _ in op.input.body.type.elements}
            for name, op in operations.items()
        }
        namespace = binding.name.namespace
        return V2Service(client, binding, endpoint, namespace, "", skip, dialect)
    raise MagentoFatalError(f"{label}: no Magento SOAP v2 binding with the customer operations")


class MagentoV2Client(MagentoClient):
    """A Magento SOAP v2 (or WS-I) session with typed customer operations."""

    typed_api = True

    def __init__(self, url: str, api_user: str, api_key: str, *,
                 api: str = "auto", **options: Any) -> None:
        if api not in API_CHOICES:
            raise ValueError(f"api must be one of {', '.join(API_CHOICES)}")
        endpoint, wsdl_url = v2_urls(url)
        super().__init__(endpoint.removesuffix("api/v2_soap/"), api_user, api_key,
                         wsdl_path=_WSDL_PATH, **options)
        self.endpoint, self.wsdl_url = endpoint, wsdl_url
        self.requested = api

    def __repr__(self) -> str:
        return f"MagentoV2Client(endpoint={self.endpoint!r}, api_user={self.api_user!r})"

    @property
    def dialect(self) -> Dialect:
        """`v2` or `wsi`, as the store's WSDL says (loads it); refuses a mismatch with
        the requested dialect."""
        service = self._wsdl()
        return service.dialect if isinstance(service, V2Service) else "v2"

    # --- typed operations -------------------------------------------------------------

    def customer_list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """customerCustomerList with a complex_filter made of a v1 filter Map."""
        rows: list[dict[str, Any]] = self._typed("customerCustomerList",
                                                 [("filters", filters)], [filters])
        return rows

    def customer_info(self, customer_id: int,
                      attributes: list[str] | None = None) -> dict[str, Any]:
        """customerCustomerInfo (every field the v2 type has, or the named ones)."""
        info: dict[str, Any] = self._typed(
            "customerCustomerInfo", [("customerId", customer_id), ("attributes", attributes)],
            [customer_id])
        return info

    def address_list(self, customer_id: int) -> list[dict[str, Any]]:
        """customerAddressList of one customer (fault 101 when it does not exist)."""
        rows: list[dict[str, Any]] = self._typed("customerAddressList",
                                                 [("customerId", customer_id)], [customer_id])
        return rows

    def group_list(self) -> list[dict[str, Any]]:
        """customerGroupList."""
        rows: list[dict[str, Any]] = self._typed("customerGroupList", [], None)
        return rows

    def _typed(self, operation: str, parts: list[tuple[str, Any]], args: Any) -> Any:
        started = time.perf_counter()
        result = self._with_session(operation, lambda session: [("sessionId", session), *parts],
                                    operation, summarize_args(args), read=True)
        log.debug("%s ok in %.0f ms", operation, (time.perf_counter() - started) * 1e3)
        return result

    # --- MagentoClient hooks ------------------------------------------------------------

    def _request(self, operation: str, parts: list[tuple[str, Any]], resource: str,
                 summary: str, *, read: bool) -> Any:
        service = self._wsdl()
        wsi = isinstance(service, V2Service) and service.dialect == "wsi"
        envelope = v2_codec.request(service.namespace, operation, parts, wsi=wsi)
        root = self._retrying(
            resource, read, lambda: service.post(operation, envelope, resource, self.timeout))
        fault = codec.parse_fault(root)
        if fault is not None:
            raise self._fault_error(fault, operation, resource, summary)
        try:
            return v2_codec.answer(codec.body_element(root), operation, wsi=wsi)
        except ValueError as exc:
            raise MagentoFatalError(f"{resource}: undecodable answer ({exc})",
                                    resource=resource) from None

    def _load_wsdl(self) -> StoreService:
        started = time.perf_counter()
        service = load_service(self.wsdl_url, self.endpoint, self._transport, self.timeout,
                               _inspect_v2)
        found = service.dialect if isinstance(service, V2Service) else "v2"
        if self.requested not in ("auto", found):
            other = "WS-I (document/literal)" if found == "wsi" else "v2 (rpc/encoded)"
            raise MagentoFatalError(f"the store's v2 WSDL is {other}, not {self.requested}: "
                                    f"use --api {found} or --api auto")
        log.info("SOAP API: %s found at %s (namespace %s)",
                 "WS-I (document/literal)" if found == "wsi" else "v2 (rpc/encoded)",
                 self.wsdl_url, service.namespace)
        log.debug("loaded WSDL %s in %.0f ms", self.wsdl_url,
                  (time.perf_counter() - started) * 1e3)
        return service
