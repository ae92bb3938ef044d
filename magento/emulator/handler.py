"""The v1 SOAP operations: login, call, multiCall, endSession and startSession.

Follows Mage_Api_Model_Server_Handler_Abstract: the session is checked first (fault 5),
then the resource path (3), then the API user's ACL (2); a resource's own faults come
back as SOAP faults from `call` and inline `{isFault, faultCode, faultMessage}` Maps from
`multiCall`, which goes on after a failed call unless its options say `break`. A PHP
Error (say, a named parameter PHP 8 does not know) escapes both as `SOAP-ENV:Server`.
"""

from __future__ import annotations

import fnmatch
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from magsync.magento import codec
from magsync.magento.emulator import faults
from magsync.magento.emulator.faults import (
    AddressNotFoundError,
    ApiFault,
    CustomerNotFoundError,
    PhpError,
)
from magsync.magento.emulator.resources import Resources, store_fault
from magsync.magento.emulator.store import EmulatorStore
from magsync.magento.emulator.wire import ResponseWriter, fault_envelope


@dataclass(frozen=True)
class ApiUser:
    """A SOAP API user: its key and the resource paths its role allows (fnmatch patterns)."""

    api_key: str
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()

    def allows(self, path: str) -> bool:
        """Whether the role grants `resource.method`."""

        def hit(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(path, p) for p in patterns)

        return hit(self.allow) and not hit(self.deny)


@dataclass
class _Session:
    user: str
    last_seen: datetime
    calls: int = 0


@dataclass
class Answer:
    """A response body and the number of resource calls it ran (for the latency model)."""

    body: bytes
    calls: int = 0
    operation: str = ""


class SessionTable:
    """API sessions: 32 hex ids, an idle timeout on the store clock, optional call budget."""

    def __init__(
        self, clock: Callable[[], datetime], idle_timeout: float, max_calls: int | None
    ) -> None:
        self._clock = clock
        self._idle = idle_timeout
        self._max_calls = max_calls
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def open(self, user: str) -> str:
        """Start a session for a user; return its id."""
        sid = secrets.token_hex(16)
        with self._lock:
            self._sessions[sid] = _Session(user, self._clock())
        return sid

    def use(self, sid: Any) -> str | None:
        """The session's user if it is alive (counts one call); None once expired or unknown."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(sid) if isinstance(sid, str) else None
            if session is None:
                return None
            idle = (now - session.last_seen).total_seconds()
            spent = self._max_calls is not None and session.calls >= self._max_calls
            if idle > self._idle or spent:
                del self._sessions[sid]
                return None
            session.last_seen = now
            session.calls += 1
            return session.user

    def close(self, sid: Any) -> None:
        """End a session (unknown ids are fine)."""
        with self._lock:
            self._sessions.pop(sid, None)

    def expire_all(self) -> int:
        """Expire every session now; return how many there were."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count


@dataclass
class SoapHandler:
    """Answers v1 SOAP requests for one store; safe to share across server threads."""

    store: EmulatorStore
    namespace: str
    users: Mapping[str, ApiUser]
    sessions: SessionTable
    fixed_array: bool = True  # multiCall's answer typed ns1:FixedArray (WSDL with types)

    def handle(self, body: bytes) -> Answer:
        """Answer one POSTed envelope; every outcome is an envelope (HTTP 200)."""
        try:
            operation = codec.body_element(codec.parse_xml(body))
            name = etree.QName(operation).localname
            parts = {etree.QName(c).localname: codec.decode(c) for c in operation}
        except codec.ForbiddenXmlError:
            return Answer(fault_envelope("SOAP-ENV:Client", "DTD are not supported by SOAP"))
        except (codec.CodecError, ValueError):
            return Answer(fault_envelope("SOAP-ENV:Client", "Bad Request"))
        try:
            return self._dispatch(name, parts, Resources(self.store))
        except ApiFault as fault:
            return Answer(fault_envelope(fault.code, fault.message), operation=name)
        except PhpError as error:
            return Answer(fault_envelope("SOAP-ENV:Server", error.message), operation=name)

    def _dispatch(self, name: str, parts: dict[str, Any], resources: Resources) -> Answer:
        if name == "login":
            sid = self._login(parts.get("username"), parts.get("apiKey"))
            return self._answer(name, "loginReturn", "string", sid)
        if name == "call":
            user = self._session_user(parts.get("sessionId"))
            result = self._call(resources, user, parts.get("resourcePath"), parts.get("args"))
            return self._answer(name, "callReturn", "any", result, calls=1)
        if name == "multiCall":
            user = self._session_user(parts.get("sessionId"))
            results = self._multi_call(resources, user, parts.get("calls"), parts.get("options"))
            kind = "fixed" if self.fixed_array else "any"
            return self._answer(name, "multiCallReturn", kind, results, calls=len(results))
        if name == "endSession":
            self.sessions.close(parts.get("sessionId"))
            return self._answer(name, "endSessionReturn", "boolean", True)
        if name == "startSession":  # a session id nobody is logged in to
            return self._answer(name, "startSessionReturn", "string", secrets.token_hex(16))
        if name in ("resources", "globalFaults", "resourceFaults"):
            raise PhpError(f"'{name}' is not implemented by the magsync emulator")
        raise PhpError(f"Procedure '{name}' not present")

    def _answer(self, operation: str, part: str, kind: str, value: Any, calls: int = 0) -> Answer:
        body = ResponseWriter(self.namespace).envelope(operation, part, kind, value)
        return Answer(body, calls, operation)

    def _login(self, username: Any, api_key: Any) -> str:
        if not username or not api_key:
            raise ApiFault.of(faults.PARAM_MISSING)
        user = self.users.get(str(username))
        if user is None or not secrets.compare_digest(str(api_key), user.api_key):
            raise ApiFault.of(faults.ACCESS_DENIED)
        return self.sessions.open(str(username))

    def _session_user(self, sid: Any) -> ApiUser:
        name = self.sessions.use(sid)
        if name is None or name not in self.users:
            raise ApiFault.of(faults.SESSION_EXPIRED)
        return self.users[name]

    def _call(self, resources: Resources, user: ApiUser, path: Any, args: Any) -> Any:
        """One resource call; raises ApiFault (a fault) or PhpError (escapes multiCall)."""
        method = resources.methods.get(path) if isinstance(path, str) else None
        if method is None:
            raise ApiFault.of(faults.PATH_INVALID)
        if not user.allows(path):
            raise ApiFault.of(faults.ACCESS_DENIED)
        try:
            return method.invoke(args)
        except (CustomerNotFoundError, AddressNotFoundError) as exc:
            raise store_fault(exc) from None

    def _multi_call(
        self, resources: Resources, user: ApiUser, calls: Any, options: Any
    ) -> list[Any]:
        if not isinstance(calls, list | dict):
            raise PhpError(
                "Mage_Api_Model_Server_Handler_Abstract::multiCall(): Argument #2 ($calls) "
                f"must be of type array, {_php_type(calls)} given"
            )
        stop = isinstance(options, dict) and _loosely_one(options.get("break"))
        results: list[Any] = []
        for call in calls.values() if isinstance(calls, dict) else calls:
            path, args = _call_parts(call)
            try:
                results.append(self._call(resources, user, path, [] if args is None else args))
            except ApiFault as fault:
                message = faults.INTERNAL[1] if fault.internal else fault.message
                results.append({"isFault": True, "faultCode": fault.code, "faultMessage": message})
                if stop:
                    break
        return results


def _call_parts(call: Any) -> tuple[Any, Any]:
    """`$call[0]` and `$call[1] ?? []` of one multiCall entry, as PHP reads them."""
    if isinstance(call, list):
        return (call[0] if call else None), (call[1] if len(call) > 1 else None)
    if isinstance(call, dict):
        return call.get(0, call.get("0")), call.get(1, call.get("1"))
    if isinstance(call, str):
        return (call[0] if call else None), None  # PHP indexes into the string
    return None, None


def _loosely_one(value: Any) -> bool:
    """PHP 8's `$value == 1`."""
    if isinstance(value, bool | int | float):
        return value == 1
    if isinstance(value, str):
        try:
            return float(value.strip()) == 1
        except ValueError:
            return False
    return False


def _php_type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "string"}
    return "null" if value is None else names.get(type(value), "array")
