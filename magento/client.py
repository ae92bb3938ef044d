"""Magento 1 / OpenMage SOAP v1 client on zeep 4.3: login, call, multiCall, endSession.

zeep loads the WSDL (offline-safe, see ``magento.transport``), resolves operations,
soapAction and the binding, and posts; the codec builds every envelope in PHP's shapes
and decodes the raw responses (``raw_response``), because zeep cannot encode apache Maps
or SOAP-encoded arrays of anyType. Requests go to the endpoint derived from the URL the
caller gave, never to the WSDL's soap:address.

Thread-safety: after construction one client may be shared by a thread pool. ``call``,
``multi_call`` and the automatic (re-)login are safe; the session id is swapped under a
lock so that concurrent fault-5 answers cause one re-login, and HTTP goes through one
requests.Session whose pool holds ``pool_size`` connections (make it >= the number of
threads). Do not call ``end_session``/``close`` while other threads still use the client.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import zeep
from lxml import etree
from zeep import xsd
from zeep.exceptions import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from zeep.proxy import ServiceProxy

from magento import codec
from magento.errors import (
    MagentoAuthError,
    MagentoCallFault,
    MagentoError,
    MagentoFatalError,
    MagentoRetriableError,
    MagentoSessionExpired,
)
from magento.transport import (
    ENVELOPE_OPTION,
    EnvelopePlugin,
    StoreTransport,
    classify_response,
    http_session,
    origin,
    request_error,
)

log = logging.getLogger("magsync.soap")
T = TypeVar("T")

READ_SUFFIXES = (".list", ".info")
_OPERATIONS = ("login", "call", "multiCall", "endSession")
_FATAL_FAULTS = {
    2: "access denied: give the API user's role this resource",
    3: "invalid API path: the store has no such resource",
    4: "resource path is not callable",
}
_MAX_BACKOFF = 30.0


def is_read(resource: str) -> bool:
    """True for calls that are safe to repeat (``*.list``, ``*.info``)."""
    return resource.endswith(READ_SUFFIXES)


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


def summarize_args(args: Sequence[Any] | None) -> str:
    """Describe call arguments for messages: dicts by their keys, lists by their length."""
    if args is None:
        return ""
    out = []
    for value in args:
        if isinstance(value, dict):
            out.append("{" + ", ".join(str(key) for key in value) + "}")
        elif isinstance(value, list | tuple):
            out.append(f"[{len(value)} items]")
        else:
            out.append(repr(value if not isinstance(value, str) else value[:40]))
    return ", ".join(out)


def _positional(args: Sequence[Any] | None) -> list[Any] | None:
    if args is None:
        return None
    if not isinstance(args, list | tuple):
        raise TypeError("args must be a list of positional arguments, e.g. [filters]")
    return list(args)


class _Secret:
    """Holds the API key; its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True)
class _Wsdl:
    client: zeep.Client
    binding: Any
    namespace: str
    calls_type: str
    skip: dict[str, dict[str, Any]]


class MagentoClient:
    """A Magento SOAP v1 session: ``with MagentoClient(...) as c: c.call("customer.list")``."""

    def __init__(
        self,
        url: str,
        api_user: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        verify: bool | str = True,
        basic_auth: tuple[str, str] | None = None,
        retries: int = 3,
        backoff_base: float = 1.0,
        wsdl_path: str = "api/soap/?wsdl",
        pool_size: int = 4,
    ) -> None:
        if verify is False:
            raise ValueError("TLS verification cannot be disabled: pass a CA bundle path")
        if isinstance(verify, str) and not os.path.exists(verify):
            raise ValueError(f"CA bundle not found: {verify}")
        if timeout <= 0 or retries < 0 or backoff_base < 0 or pool_size < 1:
            raise ValueError("timeout and pool_size must be positive, retries and backoff >= 0")
        self.endpoint, self.wsdl_url = store_urls(url, wsdl_path)
        self.api_user = api_user
        self._api_key = _Secret(api_key)
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self._http = http_session(verify=verify, basic_auth=basic_auth, pool_size=pool_size)
        self._transport = StoreTransport(
            session=self._http,
            timeout=timeout,
            wsdl_url=self.wsdl_url,
            allowed_origins=frozenset({origin(self.endpoint), origin(self.wsdl_url)}),
        )
        self._loaded: _Wsdl | None = None
        self._wsdl_lock = threading.Lock()
        self._session_lock = threading.RLock()
        self._session_id: str | None = None
        self._session_no = 0
        self._issued: list[str] = []

    def __repr__(self) -> str:
        return f"MagentoClient(endpoint={self.endpoint!r}, api_user={self.api_user!r})"

    # --- public API -------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        """The WSDL's targetNamespace (``urn:Magento``, ``urn:OpenMage``); loads the WSDL."""
        return self._wsdl().namespace

    def login(self) -> None:
        """Open a session (replacing any current one)."""
        with self._session_lock:
            self._session_id = self._login()

    def end_session(self) -> None:
        """End the current session, if any; an already expired session counts as ended."""
        with self._session_lock:
            session, self._session_id = self._session_id, None
        if session is None:
            return
        try:
            self._request("endSession", [("sessionId", session)], "endSession", "", read=False)
            log.debug("endSession ok (session #%d)", self._session_no)
        except MagentoSessionExpired:
            log.debug("endSession: session #%d had already expired", self._session_no)

    def call(self, resource: str, args: Sequence[Any] | None = None) -> Any:
        """Call one resource with positional ``args``; return the decoded result."""
        positional = _positional(args)
        started = time.perf_counter()
        result = self._with_session(
            "call",
            lambda session: [
                ("sessionId", session),
                ("resourcePath", resource),
                ("args", positional),
            ],
            resource,
            summarize_args(positional),
            read=is_read(resource),
        )
        size = f", {len(result)} items" if isinstance(result, list | dict) else ""
        log.debug("%s ok in %.0f ms%s", resource, (time.perf_counter() - started) * 1e3, size)
        return result

    def multi_call(
        self, calls: Sequence[tuple[str, Sequence[Any] | None]], *, break_on_fault: bool = False
    ) -> list[Any]:
        """Run calls in one request; failed calls come back inline as MagentoCallFault.

        With ``break_on_fault`` the store stops at the first fault and the list ends there.
        Faults 2, 3 and 4 inside a multiCall raise MagentoFatalError like a single call.
        """
        if not calls:
            return []
        items = []
        for resource, args in calls:
            positional = _positional(args)
            items.append([resource] if positional is None else [resource, positional])
        label = "multiCall(" + ", ".join(sorted({resource for resource, _ in calls})) + ")"
        options = {"break": 1} if break_on_fault else None
        started = time.perf_counter()
        results = self._with_session(
            "multiCall",
            lambda session: [("sessionId", session), ("calls", items), ("options", options)],
            label,
            f"{len(calls)} calls",
            read=all(is_read(resource) for resource, _ in calls),
        )
        if not isinstance(results, list) or len(results) > len(calls):
            raise MagentoFatalError(f"{label}: unexpected answer to {len(calls)} calls")
        out = [
            self._inline(value, resource, args)
            for (resource, args), value in zip(calls, results, strict=False)
        ]
        faults = sum(isinstance(value, MagentoCallFault) for value in out)
        log.debug(
            "%s of %d calls ok in %.0f ms, %d faults",
            label,
            len(calls),
            (time.perf_counter() - started) * 1e3,
            faults,
        )
        return out

    def close(self) -> None:
        """Release pooled HTTP connections (the client can still be used afterwards)."""
        self._http.close()

    def __enter__(self) -> Self:
        try:
            self.login()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.end_session()
        except MagentoError as error:
            log.debug("endSession failed (%s): ignored", type(error).__name__)
        finally:
            self.close()

    # --- sessions and faults ----------------------------------------------------------

    def _login(self) -> str:
        started = time.perf_counter()
        parts = [("username", self.api_user), ("apiKey", self._api_key.value)]
        session = self._request("login", parts, "login", "", read=True)
        if not isinstance(session, str) or not session:
            raise MagentoFatalError("login: the store answered without a session id")
        self._session_no += 1
        self._issued = [*self._issued[-7:], session]
        log.debug(
            "login as %r ok in %.0f ms (session #%d)",
            self.api_user,
            (time.perf_counter() - started) * 1e3,
            self._session_no,
        )
        return session

    def _current_session(self) -> str:
        with self._session_lock:
            if self._session_id is None:
                self._session_id = self._login()
            return self._session_id

    def _relogin(self, stale: str) -> str:
        with self._session_lock:
            if self._session_id is None or self._session_id == stale:
                self._session_id = None
                self._session_id = self._login()
            return self._session_id

    def _with_session(
        self,
        operation: str,
        parts: Callable[[str], list[tuple[str, Any]]],
        resource: str,
        summary: str,
        *,
        read: bool,
    ) -> Any:
        session = self._current_session()
        try:
            return self._request(operation, parts(session), resource, summary, read=read)
        except MagentoSessionExpired:
            log.debug("session #%d expired during %s: logging in again", self._session_no, resource)
        session = self._relogin(stale=session)
        return self._request(operation, parts(session), resource, summary, read=read)

    def _inline(self, value: Any, resource: str, args: Sequence[Any] | None) -> Any:
        fault = codec.inline_fault(value)
        if fault is None:
            return value
        if fault.code in _FATAL_FAULTS:
            self._raise_fault(fault, "multiCall", resource, summarize_args(args))
        return MagentoCallFault(
            fault.code,
            self._scrub(fault.message),
            resource=resource,
            args_summary=summarize_args(args),
        )

    def _raise_fault(
        self, fault: codec.SoapFaultInfo, operation: str, resource: str, summary: str
    ) -> None:
        code, message = fault.code, self._scrub(" ".join(fault.message.split()))
        if code == 5:
            raise MagentoSessionExpired(
                f"{resource}: session expired (fault 5)", resource=resource, code=5
            )
        if operation == "login" and code == 2:
            raise MagentoAuthError(
                f"login refused for API user {self.api_user!r} (fault 2 {message}): "
                "check the API user and key",
                resource="login",
                code=2,
            )
        hint = _FATAL_FAULTS.get(code) if isinstance(code, int) else None
        if hint is not None:
            raise MagentoFatalError(
                f"{resource}: {hint} (fault {code} {message})", resource=resource, code=code
            )
        if isinstance(code, str):
            raise MagentoFatalError(
                f"{resource}: the store answered SOAP fault {code}: {message}",
                resource=resource,
                code=code,
            )
        raise MagentoCallFault(code, message, resource=resource, args_summary=summary)

    def _scrub(self, text: str) -> str:
        for secret in (self._api_key.value, *self._issued):
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- requests ---------------------------------------------------------------------

    def _request(
        self,
        operation: str,
        parts: list[tuple[str, Any]],
        resource: str,
        summary: str,
        *,
        read: bool,
    ) -> Any:
        wsdl = self._wsdl()
        envelope = codec.new_envelope(
            wsdl.namespace,
            operation,
            parts,
            fixed_arrays=frozenset({"calls"}),
            array_type=wsdl.calls_type,
        )
        root = self._retrying(
            resource, read, lambda: self._post(wsdl, operation, envelope, resource)
        )
        fault = codec.parse_fault(root)
        if fault is not None:
            self._raise_fault(fault, operation, resource, summary)
        payload = codec.body_element(root)
        try:
            return codec.decode(payload[0]) if len(payload) else None
        except ValueError as exc:
            raise MagentoFatalError(
                f"{resource}: undecodable answer ({exc})", resource=resource
            ) from None

    def _post(
        self, wsdl: _Wsdl, operation: str, envelope: etree._Element, resource: str
    ) -> etree._Element:
        proxy = ServiceProxy(
            wsdl.client, wsdl.binding, address=self.endpoint, **{ENVELOPE_OPTION: envelope}
        )
        try:
            response = getattr(proxy, operation)(**wsdl.skip[operation])
        except requests.RequestException as exc:
            raise request_error(exc, resource, self.timeout) from exc
        return classify_response(response.status_code, response.content, response.headers, resource)

    def _retrying(self, resource: str, read: bool, attempt: Callable[[], T]) -> T:
        attempts = 1 + self.retries if read else 1
        for number in range(1, attempts + 1):
            try:
                return attempt()
            except MagentoRetriableError as exc:
                if not read:
                    raise MagentoRetriableError(
                        f"{exc} (a write: not retried, it may or may not have been applied)",
                        resource=resource,
                    ) from exc
                if number == attempts:
                    raise
                delay = min(_MAX_BACKOFF, self.backoff_base * 2 ** (number - 1)) * random.uniform(
                    0.5, 1
                )
                log.debug("%s; retry %d of %d in %.2f s", exc, number, attempts - 1, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # --- WSDL -------------------------------------------------------------------------

    def _wsdl(self) -> _Wsdl:
        loaded = self._loaded
        if loaded is None:
            with self._wsdl_lock:
                if self._loaded is None:
                    self._loaded = self._retrying("WSDL", True, self._load_wsdl)
                loaded = self._loaded
        return loaded

    def _load_wsdl(self) -> _Wsdl:
        started = time.perf_counter()
        settings = zeep.Settings(
            strict=True,
            raw_response=True,
            xml_huge_tree=False,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        try:
            client = zeep.Client(
                self.wsdl_url,
                transport=self._transport,
                settings=settings,
                plugins=[EnvelopePlugin()],
            )
        except MagentoError:
            raise
        except requests.RequestException as exc:
            raise request_error(exc, f"WSDL {self.wsdl_url}", self.timeout) from exc
        except (
            DTDForbidden,
            EntitiesForbidden,
            ExternalReferenceForbidden,
            codec.ForbiddenXmlError,
        ) as exc:
            raise MagentoFatalError(
                f"WSDL {self.wsdl_url}: refused ({type(exc).__name__})"
            ) from exc
        except (zeep.exceptions.XMLSyntaxError, codec.MalformedXmlError) as exc:
            raise MagentoRetriableError(f"WSDL {self.wsdl_url}: truncated or not XML") from exc
        except (zeep.exceptions.Error, codec.CodecError) as exc:
            raise MagentoFatalError(f"WSDL {self.wsdl_url}: not a usable WSDL ({exc})") from exc
        wsdl = _inspect(client, self.wsdl_url)
        log.debug(
            "loaded WSDL %s in %.0f ms (namespace %s, calls typed %s)",
            self.wsdl_url,
            (time.perf_counter() - started) * 1e3,
            wsdl.namespace,
            wsdl.calls_type,
        )
        return wsdl


def _inspect(client: zeep.Client, wsdl_url: str) -> _Wsdl:
    """Find the v1 binding and what the requests need from it."""
    for binding in client.wsdl.bindings.values():
        operations = {name: binding.get(name) for name in _OPERATIONS if name in binding.all()}
        if len(operations) < len(_OPERATIONS):
            continue
        namespace = binding.name.namespace
        skip = {
            name: {part: xsd.SkipValue for part, _ in op.input.body.type.elements}
            for name, op in operations.items()
        }
        calls = dict(operations["multiCall"].input.body.type.elements).get("calls")
        qname = getattr(getattr(calls, "type", None), "qname", None)
        fixed = (
            qname is not None and qname.localname == "FixedArray" and qname.namespace == namespace
        )
        return _Wsdl(
            client, binding, namespace, "ns1:FixedArray" if fixed else "SOAP-ENC:Array", skip
        )
    raise MagentoFatalError(f"WSDL {wsdl_url}: no Magento SOAP v1 binding (login, call, multiCall)")
