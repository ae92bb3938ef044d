"""The SOAP emulator over real HTTP: every v1 recording replayed, then what none records.

The replay seeds a store from the recorded answers themselves (v1_customer_list_all holds
all 200 customers, the address lists their addresses, v1_customer_group_list the groups),
logs in, puts the live session id into the recorded request, POSTs it and compares the
answer with the recorded one: C14N-equal, and byte for byte as well.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from lxml import etree

from bench.csv_export import write_ce_export
from magsync.magento import codec
from magsync.magento.dataset import iter_customers
from magsync.magento.emulator import (
    ApiFault,
    ApiUser,
    EmulatorStore,
    FaultInjection,
    Latency,
    WsdlOptions,
    generated_store,
    load_ce_export,
    load_data,
    run_emulator,
    serve,
)
from magsync.magento.emulator.faults import SaveError

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
SETUP_TIME = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NOW_TEXT = "2026-11-27 09:00:00"
API_KEY = "etlpeerkey1234567890"  # the key v1_login.request.xml sends
LIMITED_KEY = "limited-key-0123"
USERS: dict[str, str | ApiUser] = {
    "etl": API_KEY,
    "etl_limited": ApiUser(LIMITED_KEY, deny=("customer_address.*",)),
}
_SESSION = re.compile(rb'(<sessionId xsi:type="xsd:string">)[0-9a-f]{32}(</sessionId>)')
_LOGIN = re.compile(rb'(<loginReturn xsi:type="xsd:string">)[0-9a-f]{32}')


# --- a small SOAP client over the project's codec -----------------------------------------


class Fault(Exception):
    """A SOAP fault answered by the emulator."""

    def __init__(self, code: int | str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Soap:
    """Posts envelopes built by magento.codec and decodes the answers."""

    def __init__(self, endpoint: str, namespace: str = "urn:Magento") -> None:
        self.endpoint, self.namespace = endpoint, namespace
        self.http = requests.Session()

    def post(self, body: bytes) -> bytes:
        response = self.http.post(
            self.endpoint,
            data=body,
            timeout=10,
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )
        assert response.status_code == 200
        return response.content

    def request(self, operation: str, *parts: tuple[str, Any]) -> Any:
        envelope = codec.new_envelope(
            self.namespace, operation, parts, fixed_arrays=frozenset({"calls"})
        )
        root = codec.parse_xml(self.post(codec.to_bytes(envelope)))
        fault = codec.parse_fault(root)
        if fault is not None:
            raise Fault(fault.code, fault.message)
        return codec.decode(codec.body_element(root)[0])

    def login(self, user: str = "etl", key: str = API_KEY) -> str:
        return str(self.request("login", ("username", user), ("apiKey", key)))

    def call(self, sid: str, path: str, args: Any = None) -> Any:
        return self.request("call", ("sessionId", sid), ("resourcePath", path), ("args", args))

    def multi(self, sid: str, calls: list[Any], options: Any = None) -> Any:
        return self.request("multiCall", ("sessionId", sid), ("calls", calls), ("options", options))


# --- the recorded store ------------------------------------------------------------------


def _recorded(name: str, kind: str = "response", part: str = "callReturn") -> Any:
    root = codec.parse_xml((WIRE / f"{name}.{kind}.xml").read_bytes())
    return codec.decode(root.find(f".//{part}"))


@functools.cache
def _recorded_state() -> tuple[list[Any], dict[int, list[Any]], list[Any]]:
    """Customers, addresses by customer and groups, as the recordings show them."""
    customers = _recorded("v1_customer_list_all")
    addresses: dict[int, list[Any]] = {2: _recorded("v1_customer_address_list")}
    calls = _recorded("v1_multicall_50_address_list", "request", "calls")
    answers = _recorded("v1_multicall_50_address_list", part="multiCallReturn")
    for (_path, (customer_id,)), rows in zip(calls, answers, strict=True):
        addresses.setdefault(customer_id, rows)
    return customers, addresses, _recorded("v1_customer_group_list")


def recorded_store() -> EmulatorStore:
    """A store in the state the read recordings were taken in."""
    customers, addresses, groups = _recorded_state()
    store = EmulatorStore(groups=groups, clock=lambda: SETUP_TIME)
    for customer in customers:
        store.put_customer(customer)
    for customer_id, rows in addresses.items():
        for row in rows:
            store.put_address(customer_id, row)
    return store


def _customer_221(store: EmulatorStore) -> None:
    """The customer v1_customer_create_ok created, which the later write recordings use."""
    store.next_customer_id = 221
    store.create_customer(
        {
            "email": "to.delete.6b094034b202f@example.com",
            "firstname": "Ä",
            "lastname": "Delete-Me",
            "website_id": 1,
            "store_id": 1,
        }
    )


def _address_307(store: EmulatorStore) -> None:
    _customer_221(store)
    store.next_address_id = 307
    store.create_address(
        221,
        {
            "firstname": "A",
            "lastname": "B",
            "street": ["Line 1"],
            "city": "Berlin",
            "country_id": "DE",
            "postcode": "10115",
            "telephone": "123",
        },
    )


REGION_TIME = datetime(2026, 12, 2, 21, 53, 26, tzinfo=UTC)  # the region recordings' store clock
RITA = {"firstname": "Rita", "lastname": "Region", "city": "Wien", "country_id": "AT",
        "postcode": "1010", "telephone": "+43 1 1234567"}


def _region_address(address_id: int, street: str, region: dict[str, Any]) -> Callable[
        [EmulatorStore], None]:
    """The address a region recording created on customer 4 (a store in UTC that day)."""
    def setup(store: EmulatorStore) -> None:
        store.timezone, store.clock = ZoneInfo("UTC"), lambda: REGION_TIME
        store.next_address_id = address_id
        store.create_address(4, {**RITA, "street": [street], **region})
    return setup


# Store state a write recording was taken on: the auto-increment counters of the moment
# (so even the returned ids match) and the rows it touches.
SETUPS: dict[str, Callable[[EmulatorStore], None]] = {
    "v1_customer_create_ok": lambda s: setattr(s, "next_customer_id", 221),
    "v1_customer_create_with_password_hash": lambda s: setattr(s, "next_customer_id", 226),
    "v1_customer_update": _customer_221,
    "v1_customer_delete": _customer_221,
    "v1_customer_address_create": lambda s: (_customer_221(s), setattr(s, "next_address_id", 306)),
    "v1_customer_address_create_invalid": _customer_221,
    "v1_customer_address_delete": _address_307,
    "v1_customer_address_create_region_name_only": lambda s: setattr(s, "next_address_id", 302),
    "v1_customer_address_create_region_id": lambda s: setattr(s, "next_address_id", 303),
    "v1_customer_address_info_region_name_only": _region_address(302, "1 Ring",
                                                                 {"region": "Wien"}),
    "v1_customer_address_info_region_id": _region_address(303, "2 Ring", {"region_id": 95}),
}


def _check_create_ok(store: EmulatorStore) -> None:
    c = store.customer(221)
    assert c is not None
    assert (c["email"], c["firstname"], c["group_id"]) == (
        "to.delete.6b094034b202f@example.com",
        "Ännchen",
        2,
    )
    assert (c["website_id"], c["store_id"], c["created_in"]) == (1, 1, "Default Store View")
    assert c["created_at"] == c["updated_at"] == NOW_TEXT
    digest, salt = c["password_hash"].split(":")
    assert digest == hashlib.sha256((salt + "Passw0rd123456").encode()).hexdigest()


def _check_update(store: EmulatorStore) -> None:
    c = store.customer(221)
    assert c is not None
    assert (c["lastname"], c["taxvat"], c["updated_at"]) == ("Updated", "ATU12345678", NOW_TEXT)


def _check_address_create(store: EmulatorStore) -> None:
    a, c = store.address(306), store.customer(221)
    assert a is not None and c is not None
    assert (a["street"], a["city"], a["region_id"], a["parent_id"]) == (
        "Line 1\nLine 2",
        "Berlin",
        82,
        221,
    )
    # is_default_billing makes Magento save the customer too (Resource_Address::_afterSave)
    assert (c["default_billing"], c["default_shipping"], c["updated_at"]) == (306, None, NOW_TEXT)


def _check_address_update(store: EmulatorStore) -> None:
    a, c = store.address(4), store.customer(2)
    assert a is not None and c is not None
    assert (a["street"], a["city"], a["updated_at"]) == ("Line one\nLine two", "Berlin", NOW_TEXT)
    assert c["updated_at"] == "2023-03-26 04:28:20"  # an address edit leaves its customer


CHECKS: dict[str, Callable[[EmulatorStore], None]] = {
    "v1_customer_create_ok": _check_create_ok,
    "v1_customer_create_with_password_hash": lambda s: _expect(
        s.customer(226),
        "password_hash",
        "9c7685c08083c0a555e0c906ba7ed6dd829e959e80ee031360b495117b540667:QxLUF1bgIAdeQX",
    ),
    "v1_customer_update": _check_update,
    "v1_customer_delete": lambda s: _expect({"gone": s.customer(221)}, "gone", None),
    "v1_customer_address_create": _check_address_create,
    "v1_customer_address_update": _check_address_update,
    "v1_customer_address_delete": lambda s: _expect({"gone": s.address(307)}, "gone", None),
    # A name alone is stored as given; a region_id fills in the directory's name.
    "v1_customer_address_create_region_name_only": lambda s: _expect(
        s.address(302), "region_id", None),
    "v1_customer_address_create_region_id": lambda s: _expect(s.address(303), "region", "Wien"),
}


def _expect(row: dict[str, Any] | None, key: str, value: Any) -> None:
    assert row is not None and row[key] == value


def _mask(envelope: bytes) -> bytes:
    return _LOGIN.sub(rb"\g<1>" + b"0" * 32, envelope)


def _c14n(envelope: bytes) -> bytes:
    return bytes(etree.tostring(codec.parse_xml(envelope), method="c14n"))


V1 = sorted(p.name.removesuffix(".request.xml") for p in WIRE.glob("v1_*.request.xml"))


@pytest.mark.parametrize("name", V1)
def test_replayed_recording_matches(name: str) -> None:
    store = recorded_store()
    SETUPS.get(name, lambda s: None)(store)
    store.clock = lambda: NOW
    with run_emulator(store, users=USERS) as emu:
        soap = Soap(emu.endpoint)
        sid = soap.login(*(("etl_limited", LIMITED_KEY) if name == "v1_acl_denied" else ()))
        if name == "v1_call_after_endsession":
            assert soap.request("endSession", ("sessionId", sid)) is True
        sent = (WIRE / f"{name}.request.xml").read_bytes()
        got = soap.post(_SESSION.sub(rb"\g<1>" + sid.encode() + rb"\g<2>", sent))
    want = (WIRE / f"{name}.response.xml").read_bytes()
    assert _c14n(_mask(got)) == _c14n(_mask(want))
    assert _mask(got) == _mask(want)  # namespace declaration order included
    CHECKS.get(name, lambda s: None)(store)


def test_every_v1_recording_is_replayed() -> None:
    names = {p.name.removesuffix(".request.xml") for p in WIRE.glob("*.request.xml")}
    assert len(V1) == 49
    assert all(n.startswith(("v2_", "wsi_")) for n in names - set(V1))  # test_emulator_v2


# --- filters -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_store() -> EmulatorStore:
    store = EmulatorStore(clock=lambda: NOW)
    base = {"firstname": "X", "lastname": "Y", "store_id": 1, "created_at": "2020-01-01 00:00:00"}
    rows = [
        {
            "email": "A@Example.com",
            "website_id": 1,
            "group_id": 1,
            "firstname": "Zoë",
            "updated_at": "2026-06-15 10:00:00",
            "dob": "1980-01-01 00:00:00",
        },
        {
            "email": "b@example.com",
            "website_id": 1,
            "group_id": 2,
            "middlename": "M.",
            "updated_at": "2026-06-15 10:00:01",
        },
        {
            "email": "a@example.com",
            "website_id": 2,
            "group_id": 5,
            "taxvat": "DE1",
            "updated_at": "2026-06-14 23:59:59",
        },
        {
            "email": "c+tag@example.org",
            "website_id": 2,
            "group_id": 6,
            "updated_at": "2026-07-01 00:00:00",
        },
    ]
    for row in rows:
        store.put_customer(base | row)
    return store


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        (None, [1, 2, 3, 4]),
        ({}, [1, 2, 3, 4]),
        ({"email": "a@example.com"}, [1, 3]),  # eq is case-insensitive
        ({"email": {"eq": "A@EXAMPLE.COM"}, "website_id": 1}, [1]),
        ({"website_id": "2"}, [3, 4]),
        ({"email": {"neq": "a@example.com"}}, [2, 4]),
        ({"email": {"like": "%+tag%"}}, [4]),
        ({"email": {"nlike": "%example.com"}}, [4]),
        ({"group_id": {"in": [5, 6]}}, [3, 4]),
        ({"group_id": {"nin": [1, 2]}}, [3, 4]),
        ({"group_id": [1, 5]}, [1, 3]),  # a list of conditions is their OR
        ({"customer_id": {"from": 2, "to": 3}}, [2, 3]),
        ({"entity_id": {"gt": 3}}, [4]),
        ({"customer_id": {"gteq": "3"}}, [3, 4]),
        ({"customer_id": {"lt": 2}}, [1]),
        ({"customer_id": {"lteq": 2}}, [1, 2]),
        ({"updated_at": {"from": "2026-06-15 10:00:00"}}, [1, 2, 4]),
        ({"updated_at": {"gt": "2026-06-15 10:00:00"}}, [2, 4]),
        ({"updated_at": {"from": "2026-06-15 10:00:00", "to": "2026-07-01 00:00:00"}}, [1, 2, 4]),
        ({"updated_at": {"to": "2026-06-15"}}, [3]),  # a date alone is midnight
        ({"updated_at": {"from": "not a date"}}, [1, 2, 3, 4]),  # MySQL's zero date
        ({"updated_at": {"to": "not a date"}}, []),
        ({"middlename": {"null": True}}, [1, 3, 4]),
        ({"middlename": {"notnull": True}}, [2]),
        ({"taxvat": {"neq": "x"}}, [3]),  # NULL satisfies no comparison
        ({"email": {"foo": "a@example.com"}}, []),  # unknown operator
        ({"firstname": "zoe"}, [1]),  # case- and accent-insensitive collation
    ],
)
def test_customer_list_filters(small_store: EmulatorStore, filters: Any, ids: list[int]) -> None:
    assert [c["customer_id"] for c in small_store.list_customers(filters)] == ids


@pytest.mark.parametrize("field", ["no_such_attr", "limit", "page", "is_active"])
def test_unknown_filter_field_is_fault_101(small_store: EmulatorStore, field: str) -> None:
    with pytest.raises(ApiFault) as caught:
        small_store.list_customers({field: 1})
    assert (caught.value.code, caught.value.message) == ("101", f"Invalid attribute name: {field}")


# --- calls, multiCall and PHP's argument binding ------------------------------------------


@pytest.fixture
def emu_small(small_store: EmulatorStore) -> Iterator[Soap]:
    with run_emulator(small_store, users=USERS) as emu:
        yield Soap(emu.endpoint)


def test_multicall_inline_faults_and_break(emu_small: Soap) -> None:
    sid = emu_small.login("etl_limited", LIMITED_KEY)
    calls = [
        ["customer.info", 1],
        ["customer.nope", 1],
        ["customer_address.list", [1]],
        ["customer_group.list"],
    ]
    results = emu_small.multi(sid, calls)
    assert [r.get("faultCode") if isinstance(r, dict) else "list" for r in results] == [
        None,
        "3",
        "2",
        "list",
    ]
    assert len(emu_small.multi(sid, calls, {"break": "1"})) == 2  # stops after the fault


def test_php_errors_escape_multicall(emu_small: Soap) -> None:
    sid = emu_small.login()
    with pytest.raises(Fault) as caught:
        emu_small.multi(
            sid, [["customer_group.list"], ["customer.list", {"customer_id": {"from": 1, "to": 2}}]]
        )
    assert (caught.value.code, caught.value.message) == (
        "SOAP-ENV:Server",
        "Unknown named parameter $customer_id",
    )
    with pytest.raises(Fault, match="Too few arguments"):
        emu_small.multi(sid, [["customer.info"]])
    # A Map key that is the PHP parameter's own name binds as a named argument.
    named = emu_small.call(sid, "customer.list", {"filters": {"customer_id": {"to": 2}}})
    assert [c["customer_id"] for c in named] == [1, 2]


def test_filtered_attribute_leads_customer_maps_for_the_rest_of_the_request(
    emu_small: Soap,
) -> None:
    sid = emu_small.login()
    listed, info = emu_small.multi(
        sid,
        [
            ["customer.list", [{"customer_id": {"to": 9}, "group_id": {"in": [1]}}]],
            ["customer.info", 1],
        ],
    )
    assert list(listed[0])[:3] == list(info)[:3] == ["customer_id", "group_id", "created_at"]
    assert list(emu_small.call(sid, "customer.info", 1))[:2] == ["customer_id", "created_at"]


def test_update_fault_is_internal_and_bad_requests_are_client_faults(emu_small: Soap) -> None:
    sid = emu_small.login()
    with pytest.raises(Fault) as caught:  # customer.update has no catch around save()
        emu_small.call(sid, "customer.update", [2, {"email": "a@example.com"}])
    assert (caught.value.code, caught.value.message) == (1, "This customer email already exists")
    inline = emu_small.multi(sid, [["customer.update", [2, {"email": "a@example.com"}]]])
    assert inline[0]["faultMessage"] == "Internal Error. Please see log for details."
    for body, message in [
        (b"<oops", "Bad Request"),
        (b'<!DOCTYPE x [<!ENTITY e "e">]><x/>', "DTD are not supported by SOAP"),
    ]:
        with pytest.raises(Fault) as bad:
            root = codec.parse_xml(emu_small.post(body))
            fault = codec.parse_fault(root)
            raise Fault(fault.code, fault.message) if fault else AssertionError
        assert (bad.value.code, bad.value.message) == ("SOAP-ENV:Client", message)
    with pytest.raises(Fault, match="Procedure 'nope' not present"):
        emu_small.request("nope")


# --- sessions ----------------------------------------------------------------------------


def test_session_idle_timeout_follows_the_store_clock() -> None:
    moments = [NOW]
    store = EmulatorStore(clock=lambda: moments[0])
    with run_emulator(store, session_timeout=60) as emu:
        soap = Soap(emu.endpoint)
        sid = soap.login("etl", "key")
        moments[0] = NOW + timedelta(seconds=50)
        assert soap.call(sid, "customer_group.list")  # activity keeps the session alive
        moments[0] = NOW + timedelta(seconds=100)
        assert soap.call(sid, "customer_group.list")
        moments[0] = NOW + timedelta(seconds=161)
        with pytest.raises(Fault, match="Session expired"):
            soap.call(sid, "customer_group.list")
        assert soap.request("endSession", ("sessionId", "unknown")) is True
        assert len(sid) == 32 and int(sid, 16) >= 0


def test_session_expires_after_n_calls_and_on_demand() -> None:
    faults = FaultInjection(expire_session_after_calls=2)
    with run_emulator(EmulatorStore(), faults=faults) as emu:
        soap = Soap(emu.endpoint)
        sid = soap.login("etl", "key")
        soap.call(sid, "customer_group.list")
        soap.multi(sid, [["customer_group.list"]] * 3)  # one request, one call of the budget
        with pytest.raises(Fault) as caught:
            soap.call(sid, "customer_group.list")
        assert caught.value.code == 5
        sid = soap.login("etl", "key")
        assert emu.expire_sessions() == 1
        with pytest.raises(Fault, match="Session expired"):
            soap.call(sid, "customer_group.list")


# --- fault injection and latency ----------------------------------------------------------


def _login_body(user: str = "etl", key: str = "key") -> bytes:
    return codec.to_bytes(
        codec.new_envelope("urn:Magento", "login", [("username", user), ("apiKey", key)])
    )


def _outcomes(seed: int, n: int) -> list[str]:
    """What n logins meet under 30% dropped connections and 30% HTTP 500s."""
    out = []
    faults = FaultInjection(seed=seed, drop_rate=0.3, http500_rate=0.3)
    with run_emulator(EmulatorStore(), faults=faults) as emu:
        for _ in range(n):
            try:
                out.append(
                    str(requests.post(emu.endpoint, data=_login_body(), timeout=5).status_code)
                )
            except requests.ConnectionError:
                out.append("dropped")
        assert emu.stats.dropped == out.count("dropped")
        assert emu.stats.http500 == out.count("500")
    return out


def test_fault_injection_is_seeded() -> None:
    first = _outcomes(seed=7, n=30)
    assert set(first) == {"200", "500", "dropped"}
    assert _outcomes(seed=7, n=30) == first


def test_drop_after_processing_still_writes() -> None:
    store = EmulatorStore()
    with run_emulator(
        store,
        faults=FaultInjection(drop_rate=1.0, drop_after_processing=True),
        users={"etl": "key"},
    ) as emu:
        body = codec.to_bytes(
            codec.new_envelope("urn:Magento", "login", [("username", "etl"), ("apiKey", "key")])
        )
        with pytest.raises(requests.ConnectionError):
            requests.post(emu.endpoint, data=body, timeout=5)
        assert emu.stats.operations == {"login": 1}


def test_latency_and_concurrency_cap() -> None:
    latency = Latency(per_request=0.1, per_call=0.02, max_concurrent=2)
    with run_emulator(EmulatorStore(), latency=latency) as emu:
        soap = Soap(emu.endpoint)
        sid = soap.login("etl", "key")
        started = time.monotonic()
        threads = [
            threading.Thread(target=Soap(emu.endpoint).login, args=("etl", "key")) for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.monotonic() - started >= 0.3  # six requests, two at a time, 0.1 s each
        assert emu.stats.max_in_flight == 2
        started = time.monotonic()
        soap.multi(sid, [["customer_group.list"]] * 10)
        assert time.monotonic() - started >= 0.1 + 10 * 0.02


# --- WSDL and namespaces -----------------------------------------------------------------

_WSDL = "{http://schemas.xmlsoap.org/wsdl/}"
_SOAP = "{http://schemas.xmlsoap.org/wsdl/soap/}"


@pytest.mark.parametrize("namespace", ["urn:Magento", "urn:OpenMage"])
def test_wsdl_and_answers_follow_the_namespace(namespace: str) -> None:
    with run_emulator(EmulatorStore(), namespace=namespace) as emu:
        for path in ("api/soap/?wsdl", "index.php/api/soap/?wsdl=1"):
            response = requests.get(emu.url + path, timeout=5)
            assert response.headers["Content-Type"].startswith("text/xml")
            root = codec.parse_xml(response.content)
            assert root.get("targetNamespace") == namespace
        address = root.find(f"{_WSDL}service/{_WSDL}port/{_SOAP}address")
        assert address is not None
        assert address.get("location") == emu.url + "index.php/api/soap/index/"
        actions = {e.get("soapAction") for e in root.iter(f"{_SOAP}operation")}
        assert actions == {"urn:Action"}
        operations = {e.get("name") for e in root.iterfind(f"{_WSDL}portType/{_WSDL}operation")}
        assert {"login", "call", "multiCall", "endSession", "startSession"} <= operations
        assert root.find(f"{_WSDL}types") is not None
        soap = Soap(emu.endpoint, namespace)
        body = soap.post(
            codec.to_bytes(
                codec.new_envelope(namespace, "login", [("username", "etl"), ("apiKey", "key")])
            )
        )
        assert f'xmlns:ns1="{namespace}"'.encode() in body


def test_legacy_wsdl_and_advertised_address() -> None:
    options = WsdlOptions(types=False)
    with run_emulator(
        EmulatorStore(), wsdl=options, advertised_url="http://internal.invalid:8080/api/soap/"
    ) as emu:
        root = codec.parse_xml(requests.get(emu.wsdl_url, timeout=5).content)
        assert root.find(f"{_WSDL}types") is None
        part = root.find(f"{_WSDL}message[@name='multiCall']/{_WSDL}part[@name='calls']")
        assert part is not None and part.get("type") == "soapenc:Array"
        address = root.find(f"{_WSDL}service/{_WSDL}port/{_SOAP}address")
        assert address is not None and address.get("location").startswith("http://internal")
        soap = Soap(emu.endpoint)
        sid = soap.login("etl", "key")
        envelope = codec.new_envelope(
            "urn:Magento",
            "multiCall",
            [("sessionId", sid), ("calls", [["customer_group.list"]]), ("options", None)],
            fixed_arrays=frozenset({"calls"}),
        )
        assert b'xsi:type="SOAP-ENC:Array"><item SOAP' in soap.post(codec.to_bytes(envelope))


# --- the store's Python API --------------------------------------------------------------


def test_directory_answers_and_region_ids_fill_region_names(emu_small: Soap) -> None:
    sid = emu_small.login()
    de = emu_small.call(sid, "directory_region.list", ["DE"])
    assert {"region_id": 82, "code": "BER", "name": "Berlin"} in de and len(de) == 16
    assert [r["name"] for r in de] == sorted(r["name"] for r in de)
    us = {r["name"]: r["region_id"] for r in emu_small.call(sid, "directory_region.list", "US")}
    assert (us["New York"], us["California"], len(us)) == (43, 12, 65)
    assert emu_small.call(sid, "directory_region.list", ["AUT"])[-1]["name"] == "Wien"  # ISO 3
    assert emu_small.call(sid, "directory_region.list", ["GB"]) == []
    with pytest.raises(Fault) as fault:
        emu_small.call(sid, "directory_region.list", ["XX"])
    assert (fault.value.code, fault.value.message) == (101, "Country not exists.")
    countries = emu_small.call(sid, "directory_country.list")
    assert len(countries) == 246 and countries[0]["iso3_code"] == "AND"
    # update: a region_id of the address's country renames region; another country's not
    aid = int(emu_small.call(sid, "customer_address.create", [1, {**RITA, "street": ["x"],
                                                                  "region": "Vienna"}]))
    assert emu_small.call(sid, "customer_address.info", aid)["region_id"] is None
    emu_small.call(sid, "customer_address.update", [aid, {"region_id": 82}])  # DE's Berlin
    assert emu_small.call(sid, "customer_address.info", aid)["region"] == "Vienna"
    emu_small.call(sid, "customer_address.update", [aid, {"region_id": 96, "region": "x"}])
    info = emu_small.call(sid, "customer_address.info", aid)
    assert (info["region"], info["region_id"]) == ("Niederösterreich", 96)



def test_store_writes_behave_like_magento() -> None:
    moments = [SETUP_TIME]
    store = EmulatorStore(clock=lambda: moments[0])
    cid = store.create_customer(
        {
            "email": "x@example.com",
            "firstname": "A",
            "lastname": "B",
            "website_id": 1,
            "dob": "1990-02-03",
            "unknown": 1,
        }
    )
    assert store.create_customer({"email": "X@example.com", "website_id": 2}) == cid + 1
    for data, message in [
        ({"website_id": 1}, "Customer email is required"),
        ({"email": "X@EXAMPLE.com", "website_id": 1}, "This customer email already exists"),
        ({"email": "y@example.com", "password": "short"}, "at least 6"),
    ]:
        with pytest.raises(SaveError, match=message):
            store.create_customer(data)
    aid = store.create_address(
        cid,
        {
            "firstname": "A",
            "lastname": "B",
            "street": ["1", "2"],
            "city": "C",
            "country_id": "IE",
            "telephone": "1",
        },
    )
    moments[0] = NOW
    store.update_address(aid, {"city": "D"})
    customer = store.customer(cid)
    assert customer is not None
    assert (customer["dob"], customer["updated_at"]) == (
        "1990-02-03 00:00:00",
        "2026-11-27 08:00:00",
    )
    store.update_customer(cid, {"no_such_field": "x", "lastname": None})  # nothing to save
    _expect(store.customer(cid), "updated_at", "2026-11-27 08:00:00")
    store.update_customer(cid, {"lastname": "C"})
    _expect(store.customer(cid), "updated_at", NOW_TEXT)
    with pytest.raises(SaveError, match=r"Please enter the city\."):
        store.update_address(aid, {"city": ""})
    store.delete_customer(cid)
    assert store.address(aid) is None and store.counts() == (1, 0)


# --- loading data ------------------------------------------------------------------------


def test_ce_export_loads_like_the_generated_store(tmp_path: Path) -> None:
    records = list(iter_customers(40, seed=3))
    write_ce_export(tmp_path / "customers.csv", records, extra_columns=("loyalty_tier",), bom=True)
    (tmp_path / "groups.csv").write_text("customer_group_id,customer_group_code\n0,Z\n")
    from_csv = EmulatorStore()
    assert load_data(from_csv, tmp_path) == 40
    assert from_csv.groups == [{"customer_group_id": 0, "customer_group_code": "Z"}]
    generated = generated_store(40, seed=3)
    assert from_csv.counts() == generated.counts()
    for cid in generated.customer_ids():
        want, got = generated.customer(cid), from_csv.customer(cid)
        assert want is not None and got is not None
        # The export names a default shipping address only when it is the billing one too.
        shipping = want["default_shipping"] if want["default_shipping"] == want[
            "default_billing"] else None
        assert got | {"updated_at": None} == want | {"updated_at": None,
                                                     "default_shipping": shipping}
        assert got["updated_at"] == want["created_at"]  # the export has no updated_at
        for a, b in zip(generated.addresses_of(cid), from_csv.addresses_of(cid), strict=True):
            # The export has no address timestamps and no region_id (only the region name).
            skip = {"created_at": None, "updated_at": None, "region_id": None}
            assert a | skip == b | skip


def test_ce_export_tolerates_odd_rows(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    header = (
        "email,_website,_store,website_id,store_id,firstname,lastname,gender,"
        "created_at,password,_address_city,_address_street"
    )
    path.write_text(
        f"{header}\n"
        "a@example.com,eu,eu_en,,,A,B,Divers,2020-01-01 00:00:00,secret,X,S\n"
        ",,,,,,,,,,Y,T\n"
        "b@example.com,base,default,1,1,C,D,Female\n",
        encoding="utf-8",
    )
    store = EmulatorStore()
    assert load_ce_export(store, path) == 2
    first, second = store.customer(1), store.customer(2)
    assert first is not None and second is not None
    assert (first["website_id"], first["store_id"], first["gender"]) == (2, 2, None)
    assert [a["city"] for a in store.addresses_of(1)] == ["X", "Y"]
    assert (second["gender"], store.addresses_of(2)) == (2, [])
    assert "secret" not in repr(store.customer(1))


def test_serve_runs_until_stopped() -> None:
    urls: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=serve,
        kwargs={
            "port": 0,
            "customers": 5,
            "seed": 1,
            "api_user": "demo",
            "api_key": "demo-key",
            "on_ready": urls.append,
            "stop": stop,
        },
    )
    thread.start()
    try:
        for _ in range(100):
            if urls:
                break
            time.sleep(0.02)
        soap = Soap(urls[0] + "index.php/api/soap/")
        sid = soap.login("demo", "demo-key")
        assert len(soap.call(sid, "customer.list")) == 5
        with pytest.raises(Fault, match="Access denied"):
            soap.login("demo", "wrong")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
