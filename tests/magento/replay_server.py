"""A loopback HTTP server that answers SOAP v1 requests with the recorded envelopes.

It serves a fixture WSDL (whose soap:address points at an unreachable internal host) and
answers each POST with the recording whose request matches by operation, resourcePath
and arguments (a bare scalar argument counts as a one-item list, as Magento treats it).
Sessions are real: login issues a fresh id, endSession and ``expire`` end it, and an
unknown session gets the recorded fault 5. Faults can be injected per operation: a
dropped connection, HTTP 500/404/401, a slow answer, a truncated body, a DTD, or any
recording's response.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lxml import etree

from magsync.magento import codec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WIRE = FIXTURES / "wire"
WSDL_DIR = FIXTURES / "wsdl"
RECORDED_NS = "urn:Magento"
RECORDED_USER = "etl"
RECORDED_KEY = "etlpeerkey1234567890"
RECORDED_SESSION = "ed5f256c15afd85bddefd93232b95d83"
# Answered by session or credential state, not by request matching.
NOT_INDEXED = {
    "v1_acl_denied",
    "v1_call_after_endsession",
    "v1_login",
    "v1_login_badkey",
    "v1_endsession",
}

DTD_BODY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">]>'
    b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<SOAP-ENV:Body>&lol;</SOAP-ENV:Body></SOAP-ENV:Envelope>"
)


def recording(name: str, kind: str) -> bytes:
    """The bytes of NAME.request.xml or NAME.response.xml."""
    return (WIRE / f"{name}.{kind}.xml").read_bytes()


def recorded_request(name: str) -> tuple[str, dict[str, Any]]:
    """(operation, decoded parts) of a recorded request."""
    element = codec.body_element(codec.parse_xml(recording(name, "request")))
    return etree.QName(element).localname, codec.decode_parts(element)


def _positional(args: Any) -> Any:
    if args is None:
        return []
    if isinstance(args, dict):
        return {"bare map": args}
    return args if isinstance(args, list) else [args]


def request_key(operation: str, parts: dict[str, Any]) -> str:
    """A canonical key for matching requests: operation, resource and positional args."""
    if operation == "call":
        key: Any = [operation, parts.get("resourcePath"), _positional(parts.get("args"))]
    elif operation == "multiCall":
        calls = [
            [c[0], _positional(c[1] if len(c) > 1 else None)] for c in parts.get("calls") or []
        ]
        key = [operation, calls, parts.get("options")]
    else:
        key = [operation]
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


def build_index() -> dict[str, str]:
    """Request key -> recording name, for every v1 recording answered by matching."""
    index: dict[str, str] = {}
    for path in sorted(WIRE.glob("v1_*.request.xml")):
        name = path.name.removesuffix(".request.xml")
        if name in NOT_INDEXED:
            continue
        key = request_key(*recorded_request(name))
        assert key not in index, f"{name} and {index[key]} share a request key"
        index[key] = name
    return index


@dataclass
class Captured:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    operation: str | None = None
    resource: str | None = None


@dataclass
class ReplayState:
    """What the server answers with; tests flip these switches."""

    wsdl_file: str = "magento_ce19.wsdl"
    namespace: str = RECORDED_NS
    api_user: str = RECORDED_USER
    api_key: str = RECORDED_KEY
    basic_auth: tuple[str, str] | None = None
    wsdl_doctype: bytes = b""  # inserted after the XML declaration
    wsdl_failures: int = 0
    slow_seconds: float = 1.0
    denied: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    captured: list[Captured] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    injections: deque[tuple[str, str | None]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, action: str, operation: str | None = None, times: int = 1) -> None:
        """Queue ``action`` for the next ``times`` POSTs of ``operation`` (any if None)."""
        with self.lock:
            self.injections.extend([(action, operation)] * times)

    def take_injection(self, operation: str | None) -> str | None:
        """Pop the first queued action that applies to this operation."""
        with self.lock:
            for entry in self.injections:
                if entry[1] in (None, operation):
                    self.injections.remove(entry)
                    return entry[0]
        return None

    def posts(self, operation: str | None = None) -> list[Captured]:
        """Captured POSTs, optionally of one operation."""
        return [c for c in self.captured if c.method == "POST" and operation in (None, c.operation)]


class ReplayServer:
    """Start with ``with ReplayServer() as store:``; ``store.url`` is the store base URL."""

    def __init__(self, **state: Any) -> None:
        self.state = ReplayState(**state)
        self.index = build_index()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        """The store base URL."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, operation: str, namespace: str, parts: dict[str, Any]) -> bytes:
        """The recorded response for a decoded request."""
        state = self.state
        if namespace != state.namespace:
            return codec.to_bytes(
                codec.fault_envelope("SOAP-ENV:Client", f"wrong namespace {namespace}")
            )
        if operation == "login":
            if (parts.get("username"), parts.get("apiKey")) != (state.api_user, state.api_key):
                return recording("v1_login_badkey", "response")
            session = secrets.token_hex(16)
            with state.lock:
                state.sessions.add(session)
                state.issued.append(session)
            return self._localise(
                recording("v1_login", "response").replace(
                    RECORDED_SESSION.encode(), session.encode()
                )
            )
        with state.lock:
            alive = parts.get("sessionId") in state.sessions
            if operation == "endSession" and alive:
                state.sessions.discard(parts["sessionId"])
        if not alive:
            return recording("v1_call_after_endsession", "response")
        if operation == "endSession":
            return self._localise(recording("v1_endsession", "response"))
        if operation == "call" and parts.get("resourcePath") in state.denied:
            return recording("v1_acl_denied", "response")
        key = request_key(operation, parts)
        name = self.index.get(key)
        if name is None:
            state.misses.append(key)
            return codec.to_bytes(
                codec.fault_envelope("SOAP-ENV:Server", "no recording for this request")
            )
        return self._localise(recording(name, "response"))

    def _localise(self, response: bytes) -> bytes:
        return response.replace(f'"{RECORDED_NS}"'.encode(), f'"{self.state.namespace}"'.encode())


def _handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    state = server.state

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _authorised(self) -> bool:
            if state.basic_auth is None:
                return True
            import base64

            expected = base64.b64encode(":".join(state.basic_auth).encode()).decode()
            if self.headers.get("Authorization") == f"Basic {expected}":
                return True
            self._send(401, b"<html>401</html>", "text/html")
            return False

        def _send(
            self, status: int, body: bytes, content_type: str = "text/xml; charset=utf-8"
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.captured.append(Captured("GET", self.path, dict(self.headers), b""))
            if not self._authorised():
                return
            if self.path in ("/api/soap/?wsdl", "/index.php/api/soap/?wsdl"):
                with state.lock:
                    failing, state.wsdl_failures = state.wsdl_failures > 0, state.wsdl_failures - 1
                if failing:
                    self._send(503, b"<html>busy</html>", "text/html")
                    return
                declaration, rest = (WSDL_DIR / state.wsdl_file).read_bytes().split(b"\n", 1)
                self._send(200, declaration + b"\n" + state.wsdl_doctype + rest)
            else:
                self._send(404, b"<html>not found</html>", "text/html")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            captured = Captured("POST", self.path, dict(self.headers), body)
            state.captured.append(captured)
            if not self._authorised():
                return
            element = codec.body_element(codec.parse_xml(body))
            qname = etree.QName(element)
            parts = codec.decode_parts(element)
            captured.operation, captured.resource = qname.localname, parts.get("resourcePath")
            if self.path not in ("/api/soap/", "/index.php/api/soap/"):
                self._send(404, b"<html>not found</html>", "text/html")
                return
            action = state.take_injection(qname.localname)
            if action is None or not self._inject(action):
                self._send(200, server.answer(qname.localname, qname.namespace or "", parts))

        def _inject(self, action: str) -> bool:
            """Carry out an injected failure; False means 'then answer normally'."""
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif action in ("http500", "http404", "http401"):
                self._send(int(action[4:]), b"<html><body>Error</body></html>", "text/html")
            elif action == "slow":
                time.sleep(state.slow_seconds)
                return False
            elif action == "expire":
                with state.lock:
                    state.sessions.clear()
                return False
            elif action == "dtd":
                self._send(200, DTD_BODY)
            elif action == "truncate":  # no length, cut in the middle, close
                body = recording("v1_customer_group_list", "response")
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            elif action == "short":  # announces more bytes than it sends
                body = recording("v1_customer_group_list", "response")
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:100])
                self.close_connection = True
            elif action.startswith(("respond:", "respond500:")):
                status, name = action.split(":")
                self._send(500 if status == "respond500" else 200, recording(name, "response"))
            else:
                raise ValueError(f"unknown injection {action}")
            return True

    return Handler
