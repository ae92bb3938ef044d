"""The emulator's HTTP server: WSDL on GET, SOAP on POST, fault injection and latency."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from magsync.magento.emulator.handler import SoapHandler
from magsync.magento.emulator.v2 import V2_PATHS, V2Handler

log = logging.getLogger(__name__)

SOAP_PATHS = frozenset(
    {
        "/api/soap",
        "/api/soap/index",
        "/index.php/api/soap",
        "/index.php/api/soap/index",
        "/api",
        "/index.php/api",
    }
)
_XML = "text/xml; charset=UTF-8"
_ERROR_PAGE = b"<html><body><h1>500 Internal Server Error</h1></body></html>\n"


@dataclass(frozen=True)
class FaultInjection:
    """Seeded faults: dropped connections, HTTP 500s, sessions that die after N calls."""

    seed: int = 0
    drop_rate: float = 0.0  # close the socket without answering
    http500_rate: float = 0.0
    expire_session_after_calls: int | None = None
    drop_after_processing: bool = False  # drop only after the request ran (writes happened)


@dataclass(frozen=True)
class Latency:
    """A cost per request plus one per resource call, and a cap on requests served at once."""

    per_request: float = 0.0  # seconds
    per_call: float = 0.0  # each call of a multiCall (and a plain call) adds this
    max_concurrent: int | None = None


@dataclass
class Stats:
    """What the server saw: requests by outcome, calls, and the peak of concurrent requests."""

    requests: int = 0
    calls: int = 0
    dropped: int = 0
    http500: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    operations: dict[str, int] = field(default_factory=dict)


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the SOAP handler, fault injection and latency."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        soap: SoapHandler,
        faults: FaultInjection,
        latency: Latency,
        wsdl: Callable[[], bytes],
        v2: tuple[V2Handler, Callable[[], bytes]] | None = None,
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.soap, self.faults, self.latency, self.wsdl = soap, faults, latency, wsdl
        self.v2 = v2  # the v2 (or WS-I) handler and its WSDL, at /api/v2_soap/
        self.stats = Stats()
        self.lock = threading.Lock()
        self.rng = random.Random(faults.seed)
        self.gate = threading.BoundedSemaphore(latency.max_concurrent or 1_000_000)
        self.connections: set[socket.socket] = set()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is no server error: log it quietly."""
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)

    def fault_for_request(self) -> str | None:
        """Draw this request's injected fault, in arrival order from the seeded generator."""
        with self.lock:
            self.stats.requests += 1
            roll = self.rng.random()
            if roll < self.faults.drop_rate:
                self.stats.dropped += 1
                return "drop"
            if roll < self.faults.drop_rate + self.faults.http500_rate:
                self.stats.http500 += 1
                return "500"
            return None

    def close_connections(self) -> None:
        """Shut down kept-alive connections so their threads end."""
        with self.lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm
        # and delayed ACKs stall every small answer by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        """The WSDL at any SOAP path with a `wsdl` query parameter."""
        parts = urlsplit(self.path)
        path, wsdl = parts.path.rstrip("/"), "wsdl" in parse_qs(parts.query, True)
        if path in SOAP_PATHS and wsdl:
            self._send(200, _XML, self.server.wsdl())
        elif path in V2_PATHS and wsdl and self.server.v2 is not None:
            self._send(200, _XML, self.server.v2[1]())
        else:
            self._send(404, "text/plain", b"Not Found\n")

    def do_POST(self) -> None:
        """A SOAP request, through fault injection, the concurrency cap and the latency."""
        path = urlsplit(self.path).path.rstrip("/")
        v2 = self.server.v2 if path in V2_PATHS else None
        if path not in SOAP_PATHS and v2 is None:
            self._send(404, "text/plain", b"Not Found\n")
            return
        length = self.headers.get("Content-Length")
        if length is None:
            self._send(411, "text/plain", b"Length Required\n")
            return
        body = self.rfile.read(int(length))
        server = self.server
        injected = server.fault_for_request()
        if injected == "drop" and not server.faults.drop_after_processing:
            self._drop()
            return
        if injected == "500":
            self._send(500, "text/html; charset=UTF-8", _ERROR_PAGE)
            return
        with server.gate:
            self._track(+1)
            try:
                started = time.monotonic()
                answer = server.soap.handle(body) if v2 is None else v2[0].handle(body)
                cost = server.latency.per_request + server.latency.per_call * answer.calls
                time.sleep(max(0.0, cost - (time.monotonic() - started)))
            finally:
                self._track(-1)
        with server.lock:
            server.stats.calls += answer.calls
            ops = server.stats.operations
            ops[answer.operation] = ops.get(answer.operation, 0) + 1
        if injected == "drop":
            self._drop()
            return
        self._send(200, _XML, answer.body)

    def _track(self, delta: int) -> None:
        with self.server.lock:
            stats = self.server.stats
            stats.in_flight += delta
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
