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
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

from magsync.magento import codec
from magsync.magento.errors import (
    FATAL_FAULTS,
    MagentoCallFault,
    MagentoError,
    MagentoFatalError,
    MagentoRetriableError,
    MagentoSessionExpired,
    fault_error,
    summarize_args,
)
from magsync.magento.transport import StoreTransport, http_session, origin
from magsync.magento.wsdl import StoreService, load_service, store_urls

__all__ = ["MagentoClient", "is_read", "store_urls", "summarize_args"]

log = logging.getLogger("magsync.soap")
T = TypeVar("T")

READ_SUFFIXES = (".list", ".info")
_MAX_BACKOFF = 30.0
# Tries of one call across expired sessions: threads share the session, so one that expires
# again before a retried call lands (a store expiring sessions quickly, under load) is not
# the end of the run; each try logs in only if no other thread has already.
SESSION_ATTEMPTS = 3


def is_read(resource: str) -> bool:
    """True for calls that are safe to repeat (``*.list``, ``*.info``)."""
    return resource.endswith(READ_SUFFIXES)


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


# PHP methods whose filters parameter has no default: inside a multiCall an entry without
# arguments calls them with none, and PHP's "Too few arguments" Error aborts the whole
# request. An empty filter (all rows) is what such a call means.
_NEEDS_FILTERS = frozenset({"customer.list"})


def _positional(args: Sequence[Any] | None, resource: str = "") -> list[Any] | None:
    if args is None:
        return [{}] if resource in _NEEDS_FILTERS else None
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
        if urlsplit(self.endpoint).scheme == "http" and not _loopback(self.endpoint):
            log.warning("%s is plain HTTP: the API key travels unencrypted", self.endpoint)
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
        self._loaded: StoreService | None = None
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
        positional = _positional(args)  # a single call with nil args is fine (recorded)
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
            positional = _positional(args, resource)
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
        for _ in range(SESSION_ATTEMPTS - 1):
            try:
                return self._request(operation, parts(session), resource, summary, read=read)
            except MagentoSessionExpired:
                log.debug("session #%d expired during %s: logging in again", self._session_no,
                          resource)
            session = self._relogin(stale=session)
        return self._request(operation, parts(session), resource, summary, read=read)

    def _inline(self, value: Any, resource: str, args: Sequence[Any] | None) -> Any:
        fault = codec.inline_fault(value)
        if fault is None:
            return value
        summary = summarize_args(args)
        if fault.code in FATAL_FAULTS:  # a missing permission stops the run here too
            raise self._fault_error(fault, "multiCall", resource, summary)
        message = self._scrub(fault.message)
        return MagentoCallFault(fault.code, message, resource=resource, args_summary=summary)

    def _fault_error(
        self, fault: codec.SoapFaultInfo, operation: str, resource: str, summary: str
    ) -> MagentoError:
        login_user = self.api_user if operation == "login" else None
        message = self._scrub(fault.message)
        return fault_error(
            fault.code, message, resource=resource, args_summary=summary, login_user=login_user
        )

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
            resource, read, lambda: wsdl.post(operation, envelope, resource, self.timeout)
        )
        fault = codec.parse_fault(root)
        if fault is not None:
            raise self._fault_error(fault, operation, resource, summary)
        payload = codec.body_element(root)
        try:
            return codec.decode(payload[0]) if len(payload) else None
        except ValueError as exc:
            raise MagentoFatalError(
                f"{resource}: undecodable answer ({exc})", resource=resource
            ) from None

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

    def _wsdl(self) -> StoreService:
        loaded = self._loaded
        if loaded is None:
            with self._wsdl_lock:
                if self._loaded is None:
                    self._loaded = self._retrying("WSDL", True, self._load_wsdl)
                loaded = self._loaded
        return loaded

    def _load_wsdl(self) -> StoreService:
        started = time.perf_counter()
        service = load_service(self.wsdl_url, self.endpoint, self._transport, self.timeout)
        log.debug(
            "loaded WSDL %s in %.0f ms (namespace %s, calls typed %s)",
            self.wsdl_url,
            (time.perf_counter() - started) * 1e3,
            service.namespace,
            service.calls_type,
        )
        return service
