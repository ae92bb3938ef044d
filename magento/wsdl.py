"""The store's v1 WSDL through zeep: where to post, in which namespace, with which parts.

``load_service`` builds the zeep Client (offline-safe transport, DTDs and external
references forbidden, raw responses) and finds the v1 binding; ``StoreService.post``
sends a codec-built envelope through that binding to the endpoint derived from the
store URL, never to the WSDL's soap:address. A StoreService is read-only after loading
and safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import zeep
from lxml import etree
from zeep import xsd
from zeep.exceptions import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from zeep.proxy import ServiceProxy

from magsync.magento import codec
from magsync.magento.errors import MagentoError, MagentoFatalError, MagentoRetriableError
from magsync.magento.transport import (
    ENVELOPE_OPTION,
    EnvelopePlugin,
    StoreTransport,
    classify_response,
    request_error,
)

OPERATIONS = ("login", "call", "multiCall", "endSession")


def store_urls(url: str, wsdl_path: str = "api/soap/?wsdl") -> tuple[str, str]:
    """Return (endpoint, wsdl_url) for a store base URL (``.../`` or ``.../index.php/``)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the store URL must look like https://store.example/")
    if parts.username or parts.password:
        raise ValueError("put basic-auth credentials in basic_auth, not in the store URL")
    if parts.query or parts.fragment:
        raise ValueError("the store URL must not carry a query string or fragment")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    path = path.removesuffix("api/soap/")  # tolerate being given the endpoint itself
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return base + "api/soap/", urljoin(base, wsdl_path)


@dataclass(frozen=True)
class StoreService:
    """The loaded WSDL: its namespace, how multiCall's calls are typed, and how to post."""

    client: zeep.Client
    binding: Any
    endpoint: str
    namespace: str
    calls_type: str  # "ns1:FixedArray" (1.9, OpenMage) or "SOAP-ENC:Array" (older 1.x)
    skip: dict[str, dict[str, Any]]  # operation -> every input part as SkipValue

    def post(
        self, operation: str, envelope: etree._Element, resource: str, timeout: float
    ) -> etree._Element:
        """POST one envelope; return the answer's root or raise what it amounts to."""
        # A proxy per call carries this call's envelope to EnvelopePlugin: nothing shared.
        options = {"address": self.endpoint, ENVELOPE_OPTION: envelope}
        proxy = ServiceProxy(self.client, self.binding, **options)
        try:
            response = getattr(proxy, operation)(**self.skip[operation])
        except requests.RequestException as exc:
            error = request_error(exc, resource, timeout)
        else:
            return classify_response(
                response.status_code, response.content, response.headers, resource
            )
        # Raised outside the except block so that neither __cause__ nor __context__ keeps
        # the requests exception: its request holds the API key or a session id.
        raise error


def load_service(
    wsdl_url: str,
    endpoint: str,
    transport: StoreTransport,
    timeout: float,
    inspect: Callable[[zeep.Client, str, str], StoreService] | None = None,
) -> StoreService:
    """Load the WSDL with zeep and find the v1 binding (or what `inspect` looks for);
    raise Magento errors only."""
    settings = zeep.Settings(
        strict=True,
        raw_response=True,
        xml_huge_tree=False,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    label = f"WSDL {wsdl_url}"
    failure: MagentoError | None = None
    try:
        client = zeep.Client(
            wsdl_url, transport=transport, settings=settings, plugins=[EnvelopePlugin()]
        )
    except MagentoError:
        raise
    except requests.RequestException as exc:  # its request holds basic-auth headers
        failure = request_error(exc, label, timeout)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise MagentoFatalError(f"{label}: refused ({type(exc).__name__})") from exc
    except codec.ForbiddenXmlError as exc:
        raise MagentoFatalError(f"{label}: refused ({exc})") from exc
    except (zeep.exceptions.XMLSyntaxError, codec.MalformedXmlError) as exc:
        raise MagentoRetriableError(f"{label}: truncated or not XML") from exc
    except (zeep.exceptions.Error, codec.CodecError) as exc:
        raise MagentoFatalError(f"{label}: not a usable WSDL ({exc})") from exc
    if failure is not None:
        raise failure
    return (inspect or _inspect)(client, endpoint, label)


def _inspect(client: zeep.Client, endpoint: str, label: str) -> StoreService:
    for binding in client.wsdl.bindings.values():
        operations = {name: binding.get(name) for name in OPERATIONS if name in binding.all()}
        if len(operations) < len(OPERATIONS):
            continue
        namespace = binding.name.namespace  # the WSDL's targetNamespace
        skip = {
            name: {part: xsd.SkipValue for part, _ in op.input.body.type.elements}
            for name, op in operations.items()
        }
        calls = dict(operations["multiCall"].input.body.type.elements).get("calls")
        qname = getattr(getattr(calls, "type", None), "qname", None)
        fixed = qname is not None and (qname.namespace, qname.localname) == (
            namespace,
            "FixedArray",
        )
        calls_type = codec.FIXED_ARRAY_TYPE if fixed else codec.ARRAY_TYPE
        return StoreService(client, binding, endpoint, namespace, calls_type, skip)
    raise MagentoFatalError(f"{label}: no Magento SOAP v1 binding (login, call, multiCall)")
