"""zeep plumbing for the Magento client: offline-safe WSDL loading and hand-built envelopes.

- ``StoreTransport`` fetches only from the store (the origins it is given); the SOAP
  encoding schema zeep wants from the internet, and the XML namespace schema, come from
  ``magento/resources``. It never logs envelopes (they hold the API key and session
  ids), never follows redirects on a POST, and every request has a timeout.
- With ``forbid_external=True`` zeep refuses transitive http(s) imports before they reach
  the transport, so ``localise_imports`` points the WSDL's imports of those namespaces at
  ``magsync-local:`` locations that the transport serves.
- ``EnvelopePlugin`` swaps zeep's (empty, SkipValue-only) envelope for the one the codec
  built, passed per call in the binding options: no shared mutable state between threads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import requests
from lxml import etree
from requests.adapters import HTTPAdapter
from zeep import Transport
from zeep.plugins import Plugin

from magsync.magento import codec
from magsync.magento.errors import (
    MagentoAuthError,
    MagentoError,
    MagentoFatalError,
    MagentoRetriableError,
)

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XML_NS = "http://www.w3.org/XML/1998/namespace"
ENVELOPE_OPTION = "magsync_envelope"

_LOCAL_PREFIX = "magsync-local:"
_LOCAL_FOR_NAMESPACE = {
    codec.SOAP_ENC_NS: f"{_LOCAL_PREFIX}soap-encoding.xsd",
    XML_NS: f"{_LOCAL_PREFIX}xml.xsd",
}
_LOCAL_URLS = {
    codec.SOAP_ENC_NS: "soap-encoding.xsd",
    "https://schemas.xmlsoap.org/soap/encoding/": "soap-encoding.xsd",
    "http://schemas.xmlsoap.org/soap/encoding": "soap-encoding.xsd",
    "https://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
}


# An HTML page (a shop's home page, a login or error page): an optional XML declaration
# and comments, then an HTML doctype (Magento 1 themes use XHTML's) or an <html> element.
_HTML_START = re.compile(
    rb"\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html)[\s>]", re.I | re.S
)
HTML_HINT = "check the store URL (its base URL, or .../index.php/ without URL rewrites)"


def html_page(body: bytes) -> bool:
    """Whether a body is an HTML page rather than the XML document asked for."""
    return _HTML_START.match(body[:4096].removeprefix(b"\xef\xbb\xbf")) is not None


def local_resource(name: str) -> bytes:
    """Return a schema shipped in magento/resources."""
    return resources.files("magsync.magento.resources").joinpath(name).read_bytes()


def origin(url: str) -> str:
    """scheme://host:port of a URL, lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def localise_imports(wsdl: bytes) -> bytes:
    """Point the WSDL's imports of SOAP-ENC (added where missing) and xml: at local copies.

    Also mirrors a schema declared under another namespace than the definitions (see
    ``mirror_schemas``), so that zeep keeps multiCall.
    """
    root = codec.parse_xml(wsdl)
    mirror_schemas(root)
    for schema in root.iterfind(f"{{{WSDL_NS}}}types/{{{codec.XSD_NS}}}schema"):
        imports = schema.findall(f"{{{codec.XSD_NS}}}import")
        for node in imports:
            local = _LOCAL_FOR_NAMESPACE.get(node.get("namespace", ""))
            if local:
                node.set("schemaLocation", local)
        if not any(node.get("namespace") == codec.SOAP_ENC_NS for node in imports):
            node = etree.Element(f"{{{codec.XSD_NS}}}import")
            node.set("namespace", codec.SOAP_ENC_NS)
            node.set("schemaLocation", _LOCAL_FOR_NAMESPACE[codec.SOAP_ENC_NS])
            schema.insert(0, node)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def mirror_schemas(root: etree._Element) -> None:
    """Copy the types schema into the definitions' targetNamespace when none is declared there.

    OpenMage's wsdl.xml declares its definitions under ``urn:OpenMage`` but leaves the
    types schema under ``urn:Magento``; the messages then name ``typens:FixedArray`` in
    a namespace no schema defines, and zeep silently drops every operation using it
    (multiCall among them). PHP's SoapServer does not care. A copy of the schema under
    the definitions' namespace makes both names resolve; the original stays as it was.
    """
    target = root.get("targetNamespace")
    types = root.find(f"{{{WSDL_NS}}}types")
    if not target or types is None:
        return
    schemas = types.findall(f"{{{codec.XSD_NS}}}schema")
    if any(schema.get("targetNamespace") == target for schema in schemas):
        return
    for schema in schemas:
        if schema.get("targetNamespace"):
            clone = copy.deepcopy(schema)
            clone.set("targetNamespace", target)
            types.append(clone)


def http_session(
    *, verify: bool | str, basic_auth: tuple[str, str] | None, pool_size: int
) -> requests.Session:
    """A requests session with a connection pool of ``pool_size`` and no hidden retries."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    if basic_auth is not None:
        session.auth = basic_auth
    return session


class StoreTransport(Transport):  # type: ignore[misc]
    """A zeep Transport that talks to the store only and keeps envelopes out of logs."""

    def __init__(
        self,
        *,
        session: requests.Session,
        timeout: float,
        wsdl_url: str,
        allowed_origins: frozenset[str],
    ) -> None:
        super().__init__(timeout=timeout, operation_timeout=timeout, session=session)
        self.session.adapters.pop("file://", None)  # zeep mounts one; we never read files
        self.session.headers["User-Agent"] = "magsync (zeep)"
        self._wsdl_url = wsdl_url
        self._allowed = allowed_origins

    def load(self, url: str) -> bytes:
        """Serve local schemas; fetch the store's documents; refuse anything else."""
        if url.startswith(_LOCAL_PREFIX):
            return local_resource(url.removeprefix(_LOCAL_PREFIX))
        if url in _LOCAL_URLS:
            return local_resource(_LOCAL_URLS[url])
        if origin(url) not in self._allowed:
            raise MagentoFatalError(
                f"the WSDL asks for {url}: refused, magsync only fetches from the store"
            )
        content = bytes(super().load(url))
        if html_page(content):  # else "XML with a DTD", which sends users the wrong way
            raise MagentoFatalError(
                f"WSDL {url}: the store answered with an HTML page, not a WSDL: {HTML_HINT}"
            )
        if url == self._wsdl_url:
            content = localise_imports(content)
        return content

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> requests.Response:
        """POST without logging the body (zeep's own post logs whole envelopes at DEBUG)."""
        response: requests.Response = self.session.post(
            address,
            data=message,
            headers=headers,
            timeout=self.operation_timeout,
            allow_redirects=False,
        )
        return response


class EnvelopePlugin(Plugin):  # type: ignore[misc]
    """Replace zeep's envelope with the codec-built one given in the binding options."""

    def egress(
        self,
        envelope: etree._Element,
        http_headers: dict[str, str],
        operation: Any,
        binding_options: dict[str, Any],
    ) -> tuple[etree._Element, dict[str, str]]:
        """Return the prepared envelope; refuse to send zeep's own."""
        prepared = binding_options.get(ENVELOPE_OPTION)
        if prepared is None:
            raise RuntimeError(f"no prepared envelope for {operation.name}")
        return prepared, http_headers


_STATUS_HINTS = {
    401: "check the basic-auth settings",
    403: "the web server refused the request",
    404: "check the store URL",
}


def classify_response(
    status: int, body: bytes, headers: Mapping[str, str], resource: str
) -> etree._Element:
    """Return the parsed envelope of an answer, or raise the error it amounts to.

    A SOAP Fault is an answer whatever the HTTP status (PHP may send faults as 500);
    otherwise 5xx, empty and truncated bodies are retriable, and 3xx, 4xx, DTDs and
    non-SOAP documents are fatal.
    """
    error: codec.CodecError | None = None
    try:
        root = codec.parse_xml(body)
        if codec.parse_fault(root) is not None:
            return root
    except codec.CodecError as exc:
        error = exc
    if status >= 500:
        raise MagentoRetriableError(f"{resource}: HTTP {status} from the store", resource=resource)
    if 300 <= status < 400:
        where = headers.get("Location", "elsewhere")
        raise MagentoFatalError(
            f"{resource}: the store redirects (HTTP {status}) to {where}: configure that URL",
            resource=resource,
        )
    if status >= 400:
        raise http_status_error(status, resource)
    if error is not None and html_page(body):
        raise MagentoFatalError(
            f"{resource}: the store answered with an HTML page, not SOAP: {HTML_HINT}",
            resource=resource,
        )
    if isinstance(error, codec.ForbiddenXmlError):
        raise MagentoFatalError(f"{resource}: {error}", resource=resource)
    if isinstance(error, codec.MalformedXmlError):
        state = "empty" if not body.strip() else "truncated or non-XML"
        raise MagentoRetriableError(f"{resource}: {state} answer ({error})", resource=resource)
    if error is not None:
        raise MagentoFatalError(f"{resource}: not a SOAP answer ({error})", resource=resource)
    return root


def http_status_error(status: int, resource: str) -> MagentoFatalError:
    """HTTP 4xx: fatal; 401 (basic auth in front of the store) is an auth error."""
    hint = _STATUS_HINTS.get(status, "the web server refused the request")
    kind = MagentoAuthError if status == 401 else MagentoFatalError
    return kind(f"{resource}: HTTP {status}: {hint}", resource=resource, code=status)


def _reason(exc: BaseException) -> str:
    """The underlying cause of a requests exception, one short line."""
    inner: object = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    inner = getattr(inner, "reason", None) or inner  # urllib3's MaxRetryError wraps the cause
    text = str(inner).splitlines()[0] if str(inner) else ""
    return f"{type(inner).__name__}: {text[:160]}" if text else type(inner).__name__


def request_error(exc: requests.RequestException, resource: str, timeout: float) -> MagentoError:
    """Translate a requests exception into the Magento error it amounts to.

    Raise the result ``from None``: a requests exception holds the request, whose body
    carries the API key or a session id and whose headers carry basic-auth credentials.
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return MagentoFatalError(
            f"{resource}: TLS verification failed, pass the store's CA bundle ({_reason(exc)})",
            resource=resource,
        )
    if isinstance(exc, requests.Timeout):
        return MagentoRetriableError(
            f"{resource}: no answer within {timeout:g} s", resource=resource
        )
    transient = (
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )
    if isinstance(exc, transient):
        return MagentoRetriableError(
            f"{resource}: connection failed ({_reason(exc)})", resource=resource
        )
    status = exc.response.status_code if exc.response is not None else None
    if status is not None and status >= 500:
        return MagentoRetriableError(f"{resource}: HTTP {status} from the store", resource=resource)
    if status is not None:
        return http_status_error(status, resource)
    return MagentoFatalError(f"{resource}: request failed ({_reason(exc)})", resource=resource)
