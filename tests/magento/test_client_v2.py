"""The SOAP v2 / WS-I client: its envelopes against the recorded requests, then over HTTP
against the emulator (both dialects, auto-detection, faults, session expiry)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from magsync.magento import codec, v2_codec
from magsync.magento.client_v2 import MagentoV2Client, v2_urls
from magsync.magento.emulator import FaultInjection, RunningEmulator, generated_store, run_emulator
from magsync.magento.errors import MagentoAuthError, MagentoCallFault, MagentoFatalError

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
SID = "0" * 32
_SID = re.compile(rb"(<sessionId[^>]*>)[0-9a-f]{32}(</sessionId>)")
ID_RANGE = {"customer_id": {"from": 1, "to": 3}}
# recording -> (operation, parts without the session), as magsync calls them
REQUESTS: dict[str, tuple[str, list[tuple[str, Any]]]] = {
    "login": ("login", [("username", "etl"), ("apiKey", "etlpeerkey1234567890")]),
    "endsession": ("endSession", [("sessionId", SID)]),
    "customer_list_id_range": ("customerCustomerList", [("sessionId", SID),
                                                        ("filters", ID_RANGE)]),
    "customer_list_none": ("customerCustomerList",
                           [("sessionId", SID), ("filters", {"customer_id": {"from": 900000}})]),
    "customer_address_list_missing": ("customerAddressList",
                                      [("sessionId", SID), ("customerId", 999999)]),
    "customer_info_attrs": ("customerCustomerInfo", [("sessionId", SID), ("customerId", 2),
                                                     ("attributes",
                                                      ["email", "group_id", "gender"])]),
}


def _c14n(envelope: bytes | etree._Element) -> bytes:
    data = envelope if isinstance(envelope, bytes) else etree.tostring(envelope)
    masked = _SID.sub(rb"\g<1>" + SID.encode() + rb"\g<2>", data)
    return bytes(etree.tostring(codec.parse_xml(masked), method="c14n"))


@pytest.mark.parametrize("dialect", ["v2", "wsi"])
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_envelopes_match_the_recorded_requests(dialect: str, name: str) -> None:
    operation, parts = REQUESTS[name]
    built = v2_codec.request("urn:Magento", operation, parts, wsi=dialect == "wsi")
    assert _c14n(built) == _c14n((WIRE / f"{dialect}_{name}.request.xml").read_bytes())


def test_recorded_answers_decode() -> None:
    def body(name: str) -> etree._Element:
        return codec.body_element(codec.parse_xml((WIRE / f"{name}.response.xml").read_bytes()))

    v2 = v2_codec.answer(body("v2_customer_list_id_range"), "customerCustomerList", wsi=False)
    wsi = v2_codec.answer(body("wsi_customer_list_id_range"), "customerCustomerList", wsi=True)
    assert [r["customer_id"] for r in v2] == [1, 2, 3]
    assert [{k: str(v) for k, v in r.items()} for r in v2] == wsi
    assert v2_codec.answer(body("wsi_customer_list_none"), "customerCustomerList", wsi=True) == []
    assert v2_codec.answer(body("v2_customer_list_none"), "customerCustomerList", wsi=False) == []
    addresses = v2_codec.answer(body("wsi_customer_address_list"), "customerAddressList",
                                wsi=True)
    assert {a["is_default_billing"] for a in addresses} == {False}
    assert v2_codec.answer(body("wsi_endsession"), "endSession", wsi=True) is True


def test_urls() -> None:
    assert v2_urls("https://shop.example/") == ("https://shop.example/api/v2_soap/",
                                                "https://shop.example/api/v2_soap/?wsdl=1")
    assert v2_urls("https://shop.example/index.php/api/v2_soap/")[0] == (
        "https://shop.example/index.php/api/v2_soap/")


@pytest.fixture(params=["v2", "wsi"])
def emu(request: pytest.FixtureRequest) -> Iterator[RunningEmulator]:
    with run_emulator(generated_store(60, seed=3), namespace="urn:OpenMage",
                      users={"etl": "key"}, wsi=request.param == "wsi") as running:
        yield running


def _client(emu: RunningEmulator, api: str = "auto", **options: Any) -> MagentoV2Client:
    return MagentoV2Client(emu.url, "etl", "key", api=api, retries=2, backoff_base=0,
                           **options)


def test_reads_the_store_in_either_dialect(emu: RunningEmulator) -> None:
    with _client(emu) as client:
        rows = client.customer_list({"customer_id": {"from": 10, "to": 19}})
        addresses = client.address_list(int(rows[0]["customer_id"]))
        groups = client.group_list()
        info = client.customer_info(10, ["email", "gender"])
    assert [int(r["customer_id"]) for r in rows] == list(range(10, 20))
    assert "gender" not in rows[0] and "default_billing" not in rows[0]
    stored = emu.store.customer(10)
    assert stored is not None and info == {"customer_id": info["customer_id"],
                                           "email": stored["email"]}
    assert len(addresses) == len(emu.store.addresses_of(int(rows[0]["customer_id"])))
    assert all("vat_id" not in a for a in addresses)
    assert {int(g["customer_group_id"]) for g in groups} == {
        g["customer_group_id"] for g in emu.store.groups}
    assert emu.stats.operations.get("endSession") == 1


def test_auto_detection_and_a_mismatch(emu: RunningEmulator) -> None:
    served = "wsi" if emu._server.v2 is not None and emu._server.v2[0].wsi else "v2"
    assert _client(emu).dialect == served
    other = "v2" if served == "wsi" else "wsi"
    with pytest.raises(MagentoFatalError, match=f"use --api {served}"):
        _client(emu, api=other).login()


def test_faults_and_session_expiry(emu: RunningEmulator) -> None:
    with _client(emu) as client:
        with pytest.raises(MagentoCallFault) as missing:
            client.address_list(999999)
        assert missing.value.code == 101
        with pytest.raises(MagentoCallFault) as bad_filter:
            client.customer_list({"no_such_attr": {"eq": 1}})
        assert (bad_filter.value.code, bad_filter.value.resource) == (101, "customerCustomerList")
        emu.expire_sessions()
        assert len(client.group_list()) == len(emu.store.groups)  # logged in again
    with pytest.raises(MagentoAuthError):
        MagentoV2Client(emu.url, "etl", "wrong", retries=0).login()


def test_retries_dropped_requests() -> None:
    faults = FaultInjection(seed=5, drop_rate=0.3, expire_session_after_calls=4)
    with run_emulator(generated_store(40, seed=1), users={"etl": "key"}, faults=faults) as emu:
        with MagentoV2Client(emu.url, "etl", "key", retries=8, backoff_base=0) as client:
            found = [len(client.address_list(cid)) for cid in range(1, 41)]
        assert found == [len(emu.store.addresses_of(cid)) for cid in range(1, 41)]
        assert emu.stats.dropped > 0
