"""A Magento 1 / OpenMage SOAP v1 server for tests, benchmarks and trying magsync out.

Speaks the wire format recorded from a real store (tests/fixtures/wire): the WSDL,
login, call, multiCall and endSession over customer, customer_address and
customer_group, backed by an in-memory EmulatorStore. It knows nothing of the pipeline.

    store = generated_store(200)
    with run_emulator(store, users={"etl": "secret"}) as emu:
        ...  # point a client at emu.url

README.md in this folder lists every behaviour that no recording covers.
"""

from magsync.magento.emulator.faults import ApiFault
from magsync.magento.emulator.handler import ApiUser
from magsync.magento.emulator.loaders import generated_store, load_ce_export, load_data
from magsync.magento.emulator.runner import RunningEmulator, run_emulator, serve
from magsync.magento.emulator.server import FaultInjection, Latency, Stats
from magsync.magento.emulator.store import EmulatorStore
from magsync.magento.emulator.wsdl import WsdlOptions, render_wsdl

__all__ = [
    "ApiFault",
    "ApiUser",
    "EmulatorStore",
    "FaultInjection",
    "Latency",
    "RunningEmulator",
    "Stats",
    "WsdlOptions",
    "generated_store",
    "load_ce_export",
    "load_data",
    "render_wsdl",
    "run_emulator",
    "serve",
]
