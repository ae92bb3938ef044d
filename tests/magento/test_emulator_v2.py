"""The emulator's SOAP v2 and WS-I endpoint over real HTTP: every v2_* and wsi_* recording
replayed against the recorded store, the answer C14N-equal to the recorded one (session
ids masked); then the WSDL each instance serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from lxml import etree

from magsync.magento import codec
from magsync.magento.emulator import run_emulator
from tests.magento.test_emulator import API_KEY, NOW, USERS, recorded_store

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
V2 = sorted(p.name.removesuffix(".request.xml") for p in WIRE.glob("v2_*.request.xml"))
WSI = sorted(p.name.removesuffix(".request.xml") for p in WIRE.glob("wsi_*.request.xml"))
_SID = re.compile(rb"(<sessionId[^>]*>)[0-9a-f]{32}(</sessionId>)")
_RETURNED = re.compile(rb"(<(?:loginReturn|result)[^>]*>)[0-9a-f]{32}(<)")
# created_at of info answers is local time: the recordings were taken with the store's
# timezone at Berlin (v2 customer info) and at UTC (the others).
_UTC = {"v2_customer_address_info", "wsi_customer_info", "wsi_customer_address_info"}


def _post(url: str, body: bytes) -> bytes:
    response = requests.post(url, data=body, timeout=10,
                             headers={"Content-Type": "text/xml; charset=utf-8"})
    assert response.status_code == 200
    return response.content


def _c14n(envelope: bytes) -> bytes:
    masked = _RETURNED.sub(rb"\g<1>" + b"0" * 32 + rb"\g<2>", envelope)
    return bytes(etree.tostring(codec.parse_xml(masked), method="c14n"))


def _login(endpoint: str, wsi: bool) -> str:
    name = "wsi_login" if wsi else "v2_login"
    answer = codec.parse_xml(_post(endpoint, (WIRE / f"{name}.request.xml").read_bytes()))
    return str(codec.body_element(answer)[0].text)


@pytest.mark.parametrize("name", V2 + WSI)
def test_replayed_v2_recording_is_c14n_equal(name: str) -> None:
    wsi = name.startswith("wsi_")
    store = recorded_store()
    store.clock = lambda: NOW
    # The v2 and WS-I recordings were taken when customer 2 had no password yet.
    store.put_customer({**(store.customer(2) or {}), "password_hash": None})
    if name in _UTC:
        from zoneinfo import ZoneInfo

        store.timezone = ZoneInfo("UTC")
    with run_emulator(store, users=USERS, wsi=wsi) as emu:
        endpoint = emu.url + "api/v2_soap/"
        sid = _login(endpoint, wsi)
        if name.endswith("_call_after_endsession"):
            ended = (WIRE / f"{name[:3].rstrip('_')}_endsession.request.xml").read_bytes()
            _post(endpoint, _SID.sub(rb"\g<1>" + sid.encode() + rb"\g<2>", ended))
        sent = (WIRE / f"{name}.request.xml").read_bytes()
        got = _post(endpoint, _SID.sub(rb"\g<1>" + sid.encode() + rb"\g<2>", sent))
    want = (WIRE / f"{name}.response.xml").read_bytes()
    assert _c14n(got) == _c14n(want)


def test_every_v2_and_wsi_recording_is_replayed() -> None:
    names = {p.name.removesuffix(".request.xml") for p in WIRE.glob("*.request.xml")}
    assert {n for n in names if not n.startswith("v1_")} == set(V2 + WSI)
    assert len(V2) == 15 and len(WSI) == 15


@pytest.mark.parametrize("wsi", [False, True])
def test_the_instance_serves_its_wsdl_at_the_v2_path(wsi: bool) -> None:
    with run_emulator(namespace="urn:OpenMage", users={"etl": API_KEY}, wsi=wsi) as emu:
        wsdl = requests.get(emu.v2_wsdl_url, timeout=5)
        v1 = requests.get(emu.wsdl_url, timeout=5)
    root = codec.parse_xml(wsdl.content)
    assert root.get("targetNamespace") == "urn:OpenMage"
    style = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}binding").get("style")
    assert style == ("document" if wsi else "rpc")
    assert b"index.php/api/v2_soap/index/" in wsdl.content
    assert b"customerCustomerList" in wsdl.content and b"multiCall" not in wsdl.content
    assert b"multiCall" in v1.content


def test_v1_and_v2_share_sessions() -> None:
    store = recorded_store()
    with run_emulator(store, users=USERS) as emu:
        sid = _login(emu.url + "api/v2_soap/", wsi=False)
        body = codec.new_envelope("urn:Magento", "call", [("sessionId", sid),
                                                         ("resourcePath", "customer_group.list"),
                                                         ("args", None)])
        answer = codec.parse_xml(_post(emu.endpoint, codec.to_bytes(body)))
    assert codec.parse_fault(answer) is None
    assert len(codec.decode(codec.body_element(answer)[0])) == 7


def test_users_and_api_key_from_recordings() -> None:
    assert USERS["etl"] == API_KEY
