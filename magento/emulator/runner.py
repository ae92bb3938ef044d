"""Run the emulator: on a thread for tests (`run_emulator`), or blocking (`serve`).

with run_emulator(store, users={"etl": "key"}) as emu:
    emu.url  # http://127.0.0.1:PORT/
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from magsync.magento.emulator.handler import ApiUser, SessionTable, SoapHandler
from magsync.magento.emulator.loaders import generated_store, load_data
from magsync.magento.emulator.server import EmulatorServer, FaultInjection, Latency, Stats
from magsync.magento.emulator.store import EmulatorStore
from magsync.magento.emulator.v2 import V2Handler, render_v2_wsdl
from magsync.magento.emulator.wsdl import WsdlOptions, render_wsdl

log = logging.getLogger(__name__)


@dataclass
class RunningEmulator:
    """A started emulator: its URLs, store, statistics and session controls."""

    url: str  # base URL, e.g. http://127.0.0.1:PORT/
    store: EmulatorStore
    _server: EmulatorServer

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The v1 SOAP endpoint URL."""
        return self.url + "api/soap/"

    @property
    def wsdl_url(self) -> str:
        """The v1 WSDL URL."""
        return self.url + "api/soap/?wsdl"

    @property
    def v2_wsdl_url(self) -> str:
        """The v2 (or WS-I) WSDL URL."""
        return self.url + "api/v2_soap/?wsdl=1"

    @property
    def stats(self) -> Stats:
        """Live request statistics."""
        return self._server.stats

    def expire_sessions(self) -> int:
        """Expire every open API session now (the next call gets fault 5)."""
        return self._server.soap.sessions.expire_all()


def _users(users: Mapping[str, str | ApiUser]) -> dict[str, ApiUser]:
    return {name: u if isinstance(u, ApiUser) else ApiUser(u) for name, u in users.items()}


@contextlib.contextmanager
def run_emulator(
    store: EmulatorStore | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    namespace: str = "urn:Magento",
    users: Mapping[str, str | ApiUser] | None = None,
    faults: FaultInjection | None = None,
    latency: Latency | None = None,
    session_timeout: float = 3600.0,
    wsdl: WsdlOptions | None = None,
    advertised_url: str | None = None,
    wsi: bool = False,
) -> Iterator[RunningEmulator]:
    """Run the emulator on a background thread; stop it cleanly on exit.

    `users` maps API user names to keys (or ApiUser with an ACL); default {"etl": "key"}.
    `advertised_url` is the WSDL's soap:address (default: this server's own endpoint).
    `/api/v2_soap/` speaks SOAP v2, or v2 in WS-I compliance mode with `wsi` (the admin
    setting); v1 and v2 share the users and the sessions, as in Magento.
    """
    store = store if store is not None else EmulatorStore()
    faults = faults or FaultInjection()
    wsdl_options = wsdl or WsdlOptions()
    sessions = SessionTable(store.clock, session_timeout, faults.expire_session_after_calls)
    soap = SoapHandler(
        store, namespace, _users(users or {"etl": "key"}), sessions, fixed_array=wsdl_options.types
    )
    location: list[str] = []
    v2 = V2Handler(store, namespace, soap.users, sessions, wsi=wsi)
    server = EmulatorServer(
        (host, port),
        soap,
        faults,
        latency or Latency(),
        lambda: render_wsdl(namespace, location[0], wsdl_options),
        (v2, lambda: render_v2_wsdl(namespace, location[1], wsi=wsi)),
    )
    url = f"http://{host}:{server.server_address[1]}/"
    location.append(advertised_url or url + "index.php/api/soap/index/")
    location.append(advertised_url or url + "index.php/api/v2_soap/index/")
    # A short poll interval: shutdown() waits up to one interval, and tests start many.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="magsync-emulator", daemon=True
    )
    thread.start()
    try:
        yield RunningEmulator(url, store, server)
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()


def serve(
    port: int = 8080,
    data: Path | None = None,
    *,
    customers: int = 1000,
    seed: int = 42,
    namespace: str = "urn:Magento",
    api_user: str = "magsync",
    api_key: str = "",
    host: str = "127.0.0.1",
    faults: FaultInjection | None = None,
    latency: Latency | None = None,
    session_timeout: float = 3600.0,
    wsdl: WsdlOptions | None = None,
    advertised_url: str | None = None,
    wsi: bool = False,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve until interrupted (or `stop` is set): data from a CE export, else generated.

    `data` is a CE export file or a folder of them (a groups.csv there sets the groups);
    without it the store holds magento.dataset.iter_customers(customers, seed).
    """
    if not api_key:
        raise ValueError("the emulator needs an API key for its API user")
    if data is not None:
        from magsync.magento.dataset import GROUPS, STORES

        store = EmulatorStore(
            groups=GROUPS, stores={s.store_id: (s.website_id, s.name) for s in STORES}
        )
        loaded = load_data(store, data)
        log.info("loaded %d customers from %s", loaded, data)
    else:
        store = generated_store(customers, seed)
    stop = stop or threading.Event()
    with run_emulator(
        store,
        host=host,
        port=port,
        namespace=namespace,
        users={api_user: api_key},
        faults=faults,
        latency=latency,
        session_timeout=session_timeout,
        wsdl=wsdl,
        advertised_url=advertised_url,
        wsi=wsi,
    ) as emu:
        customers_held, addresses_held = store.counts()
        log.info(
            "magsync emulator on %s: %d customers, %d addresses, API user %s",
            emu.url,
            customers_held,
            addresses_held,
            api_user,
        )
        if on_ready is not None:
            on_ready(emu.url)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
