"""The codec against the recorded envelopes in tests/fixtures/wire (no network)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from magsync.magento import codec

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
RESPONSES = sorted(p.name.removesuffix(".response.xml") for p in WIRE.glob("*.response.xml"))
V1_REQUESTS = sorted(p.name.removesuffix(".request.xml") for p in WIRE.glob("v1_*.request.xml"))


def root_of(name: str, kind: str = "response") -> etree._Element:
    return codec.parse_xml((WIRE / f"{name}.{kind}.xml").read_bytes())


def answer(name: str) -> Any:
    """The decoded return value of a recorded response, or its SoapFaultInfo."""
    root = root_of(name)
    fault = codec.parse_fault(root)
    if fault is not None:
        return fault
    payload = codec.body_element(root)
    return codec.decode(payload[0]) if len(payload) else None


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n")


# --- every recorded response -----------------------------------------------------------


def _customers(ids: list[int] | list[str]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert [row["customer_id"] for row in value] == ids
        assert all(isinstance(row, dict) and "email" in row for row in value)

    return check


def _fault(code: int | str, message: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert value == codec.SoapFaultInfo(code, message)

    return check


def _equals(expected: Any) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert value == expected
        assert type(value) is type(expected)

    return check


def _zoe(value: Any) -> None:
    assert value["customer_id"] == 1
    assert (value["firstname"], value["lastname"]) == ("Zoë", "Łukasiewicz")
    assert value["middlename"] is None and value["default_shipping"] is None
    assert value["gender"] == 2 and value["default_billing"] == 1
    assert value["created_at"] == "2023-01-06T03:11:59+01:00"  # store-local with offset


def _jose(value: Any) -> None:
    assert (value["customer_id"], value["firstname"], value["middlename"]) == (2, "José", "María")
    assert value["lastname"] == "Müller"
    assert value["increment_id"] is None


def _address_info(value: Any) -> None:
    assert value["customer_address_id"] == 4 and value["firstname"] == "José"
    assert value["company"] == "ACME GmbH & Co. KG"  # &amp; decoded
    assert value["is_default_billing"] is False and value["region_id"] is None


def _address_list(value: Any) -> None:
    assert [a["customer_address_id"] for a in value] == [4, 3, 2]
    assert value[1]["street"] == "36 Main Street\nApt 3"
    assert value[2]["street"].endswith("Straße No. 1\nHinterhaus, 3. OG links\nc/o Zoë")
    assert all(isinstance(a["is_default_shipping"], bool) for a in value)


def _groups(value: Any) -> None:
    assert [g["customer_group_id"] for g in value] == list(range(7))
    assert value[0]["customer_group_code"] == "NOT LOGGED IN"
    assert value[4]["customer_group_code"] == "VIP Ünïcode Kunden"
    assert value[6]["customer_group_code"] == "Staff & Friends <test>"


def _list_all(value: Any) -> None:
    assert [row["customer_id"] for row in value] == list(range(1, 201))
    assert value[9]["firstname"] == "محمد" and value[9]["default_billing"] == 15
    assert value[9]["disable_auto_group_change"] == 0
    assert "middlename" not in value[9]  # nulls are left out of customer.list rows
    assert sum("password_hash" in row for row in value) == 100


def _updated_from(value: Any) -> None:
    assert len(value) == 20 and all(r["updated_at"] >= "2026-06-15 10:00:00" for r in value)


def _updated_from_to(value: Any) -> None:
    assert [r["customer_id"] for r in value] == [*range(100, 110), 192]
    assert all("2026-06-15 10:00:00" <= r["updated_at"] <= "2026-07-01 00:00:00" for r in value)


def _updated_gt(value: Any) -> None:
    assert len(value) == 10 and all(r["updated_at"] > "2026-06-15 10:00:00" for r in value)


def _website_eq(value: Any) -> None:
    assert len(value) == 16
    assert all(r["website_id"] == 2 and r["group_id"] in (5, 6) for r in value)


def _email_like(value: Any) -> None:
    assert [r["email"] for r in value] == ["First.Last+tag@Example.COM"]


def _multicall_3(value: Any) -> None:
    info, addresses, groups = value
    _zoe(info)
    assert [a["customer_address_id"] for a in addresses] == [1]
    _groups(groups)


def _multicall_50(value: Any) -> None:
    assert len(value) == 50 and all(isinstance(addresses, list) for addresses in value)
    assert len(value[1]) == 3 and value[3] == []  # customers 2 and 4, as in their own lists


def _with_fault(length: int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert len(value) == length
        assert value[0]["firstname"] == "민준" and codec.inline_fault(value[0]) is None
        assert codec.inline_fault(value[1]) == codec.SoapFaultInfo(102, "Customer not exists.")
        if length == 3:
            _groups(value[2])

    return check


def _v2_info(value: Any) -> None:
    assert (value["customer_id"], value["firstname"], value["group_id"]) == (1, "Zoë", 5)


def _v2_addresses(value: Any) -> None:
    assert [a["customer_address_id"] for a in value] == [4, 3, 2]
    assert value[0]["is_default_billing"] is False


def _v2_list(value: Any) -> None:
    assert len(value) == 10 and value[0]["customer_id"] == 100
    assert value[0]["confirmation"] is True


def _wsi_list(value: Any) -> None:
    # WS-I literal carries no xsi:type: values stay text.
    assert len(value) == 11 and value[0]["customer_id"] == "100"
    assert value[2]["lastname"] == "Novák"


def _countries(value: Any) -> None:
    assert len(value) == 246 and value[0] == {
        "country_id": "AD", "iso2_code": "AD", "iso3_code": "AND", "name": "Andorra"}


def _regions_at(value: Any) -> None:
    assert len(value) == 9 and value[-1] == {"region_id": 95, "code": "WI", "name": "Wien"}


def _region(region_id: int | None) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert (value["region"], value["region_id"]) == ("Wien", region_id)
    return check


def _address_4(customer_address_id: int | str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert (value["customer_address_id"], value["city"], value["company"]) == (
            customer_address_id, "London", "ACME GmbH & Co. KG")
    return check


def _wsi_addresses(value: Any) -> None:
    # WS-I literal: the same list as v2's, every value text.
    assert [a["customer_address_id"] for a in value] == ["4", "3", "2"]


def _wsi_groups(value: Any) -> None:
    assert len(value) == 7
    assert value[0] == {"customer_group_id": "0", "customer_group_code": "NOT LOGGED IN"}


def _wsi_info(value: Any) -> None:
    assert (value["customer_id"], value["website_id"]) == ("2", "1")


EXPECTED: dict[str, Callable[[Any], None]] = {
    "v1_acl_denied": _fault(2, "Access denied."),
    "v1_call_after_endsession": _fault(5, "Session expired. Try to relogin."),
    "v1_customer_address_create": _equals("306"),
    "v1_customer_address_create_invalid": _fault(
        100,
        "Please enter the last name.\nPlease enter the street.\nPlease enter the city.\n"
        "Please enter the telephone number.\nPlease enter the zip/postal code.\n"
        "Please enter the country.",
    ),
    "v1_customer_address_delete": _equals(True),
    "v1_customer_address_delete_missing": _fault(102, "Address not exists."),
    "v1_customer_address_info": _address_info,
    "v1_customer_address_info_missing": _fault(102, "Address not exists."),
    "v1_customer_address_list": _address_list,
    "v1_customer_address_list_empty": _equals([]),
    "v1_customer_address_list_missing": _fault(101, "Customer not exists."),
    "v1_customer_address_update": _equals(True),
    "v1_customer_create_dup_email": _fault(100, "This customer email already exists"),
    "v1_customer_create_no_email": _fault(100, "Customer email is required"),
    "v1_customer_create_ok": _equals("221"),
    "v1_customer_create_with_password_hash": _equals("226"),
    "v1_customer_delete": _equals(True),
    "v1_customer_delete_missing": _fault(102, "Customer not exists."),
    "v1_customer_group_list": _groups,
    "v1_customer_info": _jose,
    "v1_customer_info_attrs": _equals(
        {"customer_id": 3, "firstname": "太郎", "email": "peer.customer003@example.com"}
    ),
    "v1_customer_info_missing": _fault(102, "Customer not exists."),
    "v1_customer_info_unicode": _zoe,
    "v1_customer_list_all": _list_all,
    "v1_customer_list_bad_filter": _fault(101, "Invalid attribute name: no_such_attr"),
    "v1_customer_list_bare_map": _fault("SOAP-ENV:Server", "Unknown named parameter $customer_id"),
    "v1_customer_list_email_like": _email_like,
    "v1_customer_list_id_range": _customers([10, 11, 12, 13, 14]),
    "v1_customer_list_updated_at_from": _updated_from,
    "v1_customer_list_updated_at_from_to": _updated_from_to,
    "v1_customer_list_updated_at_gt": _updated_gt,
    "v1_customer_list_website_eq": _website_eq,
    "v1_customer_update": _equals(True),
    "v1_endsession": _equals(True),
    "v1_invalid_api_path": _fault(3, "Invalid api path."),
    "v1_login": _equals("ed5f256c15afd85bddefd93232b95d83"),
    "v1_login_badkey": _fault(2, "Access denied."),
    "v1_multicall_3": _multicall_3,
    "v1_multicall_50_address_list": _multicall_50,
    "v1_multicall_with_fault": _with_fault(3),
    "v1_multicall_with_fault_break": _with_fault(2),
    "v1_directory_country_list": _countries,
    "v1_directory_region_list_at": _regions_at,
    "v1_directory_region_list_gb": _equals([]),
    "v1_directory_region_list_unknown": _fault(101, "Country not exists."),
    "v1_customer_address_create_region_name_only": _equals("302"),
    "v1_customer_address_create_region_id": _equals("303"),
    "v1_customer_address_info_region_name_only": _region(None),
    "v1_customer_address_info_region_id": _region(95),
    "v2_customer_address_list": _v2_addresses,
    "v2_customer_group_list": _groups,
    "v2_customer_info": _v2_info,
    "v2_customer_list_complex_filter": _v2_list,
    "wsi_customer_info_missing": _fault(102, "Customer not exists."),
    "wsi_customer_list_complex_filter": _wsi_list,
    "v2_call_after_endsession": _fault(5, "Session expired. Try to relogin."),
    "v2_customer_address_info": _address_4(4),
    "v2_customer_address_list_missing": _fault(101, "Customer not exists."),
    "v2_customer_info_attrs": _equals(
        {"customer_id": 2, "email": "peer.customer002@example.com", "group_id": 3}),
    "v2_customer_info_missing": _fault(102, "Customer not exists."),
    "v2_customer_list_bad_filter": _fault(101, "Invalid attribute name: no_such_attr"),
    "v2_customer_list_id_range": _customers([1, 2, 3]),
    "v2_customer_list_none": _equals([]),
    "v2_endsession": _equals(True),
    "v2_login": _equals("8e55156ffb5815f19640ecd50c0dd5dc"),
    "v2_login_badkey": _fault(2, "Access denied."),
    "wsi_call_after_endsession": _fault(5, "Session expired. Try to relogin."),
    "wsi_customer_address_info": _address_4("4"),
    "wsi_customer_address_list": _wsi_addresses,
    "wsi_customer_address_list_missing": _fault(101, "Customer not exists."),
    "wsi_customer_group_list": _wsi_groups,
    "wsi_customer_info": _wsi_info,
    "wsi_customer_info_attrs": _equals(
        {"customer_id": "2", "email": "peer.customer002@example.com", "group_id": "3"}),
    "wsi_customer_list_bad_filter": _fault(101, "Invalid attribute name: no_such_attr"),
    "wsi_customer_list_id_range": _customers(["1", "2", "3"]),
    "wsi_customer_list_none": _equals(""),  # literal: an empty result is an empty element
    "wsi_endsession": _equals("true"),
    "wsi_login": _equals("e8a68b65132714709da4d858c947d814"),
    "wsi_login_badkey": _fault(2, "Access denied."),
}


def test_every_recording_has_an_expectation() -> None:
    assert set(EXPECTED) == set(RESPONSES)


@pytest.mark.parametrize("name", RESPONSES)
def test_recorded_response_decodes(name: str) -> None:
    EXPECTED[name](answer(name))


# --- encoding reproduces PHP's shapes --------------------------------------------------


@pytest.mark.parametrize("name", V1_REQUESTS)
def test_recorded_request_reencodes_c14n_equal(name: str) -> None:
    root = root_of(name, "request")
    operation = codec.body_element(root)
    qname = etree.QName(operation)
    parts = list(codec.decode_parts(operation).items())
    rebuilt = codec.new_envelope(
        qname.namespace or "", qname.localname, parts, fixed_arrays=frozenset({"calls"})
    )
    assert c14n(codec.parse_xml(codec.to_bytes(rebuilt))) == c14n(root)


@pytest.mark.parametrize("name", [n for n in RESPONSES if n.startswith("v1_")])
def test_recorded_response_reencodes_c14n_equal(name: str) -> None:
    root = root_of(name)
    fault = codec.parse_fault(root)
    if fault is not None:
        rebuilt = codec.fault_envelope(fault.code, fault.message)
    else:
        element = codec.body_element(root)
        qname = etree.QName(element)
        rebuilt = codec.new_envelope(
            qname.namespace or "",
            qname.localname,
            list(codec.decode_parts(element).items()),
            fixed_arrays=frozenset({"multiCallReturn"}),
        )
    assert c14n(rebuilt) == c14n(root)


VALUES = [
    None,
    True,
    False,
    0,
    -7,
    2**40,
    3.25,
    "",
    "Zoë & <Łukasiewicz>\nline 2",
    [],
    {},
    [1, 2, 3],
    ["a", 1, None, True],
    {"customer_id": {"from": 10, "to": 14}, "website_id": 2},
    [{"a": [1, {"b": None}]}, [["x"], []]],
    {7: "int key", "s": 1.5},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_encode_decode_round_trip(value: Any) -> None:
    envelope = codec.new_envelope("urn:Magento", "call", [("args", value)])
    element = codec.body_element(codec.parse_xml(codec.to_bytes(envelope)))
    assert codec.decode_parts(element) == {"args": value}


@pytest.mark.parametrize(
    ("value", "array_type"),
    [
        ([1, 2], "xsd:int[2]"),
        (["a"], "xsd:string[1]"),
        ([True], "xsd:boolean[1]"),
        ([1.5], "xsd:double[1]"),
        ([{"a": 1}, {}], "ns2:Map[2]"),
        ([[1], [2]], "SOAP-ENC:Array[2]"),
        ([1, "a"], "xsd:ur-type[2]"),
        ([], "xsd:ur-type[0]"),
    ],
)
def test_array_type_follows_php(value: list[Any], array_type: str) -> None:
    envelope = codec.new_envelope("urn:Magento", "call", [("args", value)])
    args = codec.body_element(envelope)[0]
    assert args.get(f"{{{codec.SOAP_ENC_NS}}}arrayType") == array_type


def test_fixed_array_part_is_typed_ur_type() -> None:
    envelope = codec.new_envelope(
        "urn:OpenMage",
        "multiCall",
        [("calls", [["customer_group.list"]])],
        fixed_arrays=frozenset({"calls"}),
    )
    calls = codec.body_element(envelope)[0]
    assert calls.get(f"{{{codec.XSI_NS}}}type") == "ns1:FixedArray"
    assert calls.get(f"{{{codec.SOAP_ENC_NS}}}arrayType") == "xsd:ur-type[1]"
    assert envelope.nsmap["ns1"] == "urn:OpenMage"


def test_apache_namespace_declared_only_with_maps() -> None:
    plain = codec.new_envelope("urn:Magento", "call", [("args", [1])])
    mapped = codec.new_envelope("urn:Magento", "call", [("args", [[{"a": 1}]])])
    assert "ns2" not in plain.nsmap and mapped.nsmap["ns2"] == codec.APACHE_NS


def test_encode_refuses_unknown_types() -> None:
    with pytest.raises(TypeError, match="bytes"):
        codec.new_envelope("urn:Magento", "call", [("args", [b"raw"])])


# --- parsing safety and faults ---------------------------------------------------------

ENVELOPE = b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>%s</e:Body></e:Envelope>'


@pytest.mark.parametrize(
    "document",
    [
        b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>' + ENVELOPE % b"<x>&b;</x>",
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + ENVELOPE % b"<x>&e;</x>",
        b'<!DOCTYPE x SYSTEM "http://evil.invalid/x.dtd">' + ENVELOPE % b"<x/>",
        b"<!DOCTYPE html><html/>",
    ],
    ids=["entity-expansion", "external-entity", "external-dtd", "doctype"],
)
def test_dtd_and_entities_are_refused(document: bytes) -> None:
    with pytest.raises(codec.ForbiddenXmlError):
        codec.parse_xml(document)


@pytest.mark.parametrize("document", [b"", b"  \n", b"<html><body>502 Bad Gateway", b"plain"])
def test_malformed_documents(document: bytes) -> None:
    with pytest.raises(codec.MalformedXmlError):
        codec.parse_xml(document)


def test_truncated_recording_is_malformed() -> None:
    data = (WIRE / "v1_customer_list_all.response.xml").read_bytes()
    with pytest.raises(codec.MalformedXmlError):
        codec.parse_xml(data[: len(data) // 2])


@pytest.mark.parametrize(
    "document", [b"<a/>", ENVELOPE.replace(b"e:Body", b"e:Header") % b"", ENVELOPE % b""]
)
def test_not_soap(document: bytes) -> None:
    with pytest.raises(codec.NotSoapError):
        codec.body_element(codec.parse_xml(document))


def test_fault_envelope_round_trip() -> None:
    root = codec.parse_xml(codec.to_bytes(codec.fault_envelope(102, "Customer not exists.")))
    assert codec.parse_fault(root) == codec.SoapFaultInfo(102, "Customer not exists.")
    assert codec.parse_fault(root_of("v1_customer_info")) is None


def test_inline_fault_needs_the_flag() -> None:
    assert codec.inline_fault({"faultCode": "102"}) is None
    assert codec.inline_fault(["isFault"]) is None
    assert codec.inline_fault({"isFault": True, "faultCode": "1", "faultMessage": "x"}) == (
        codec.SoapFaultInfo(1, "x")
    )


def test_nil_with_a_type_is_none() -> None:
    element = codec.body_element(root_of("v2_customer_info", "request"))
    assert codec.decode_parts(element)["attributes"] is None


def test_decode_speed_customer_list_all(record_property: Callable[[str, object], None]) -> None:
    data = (WIRE / "v1_customer_list_all.response.xml").read_bytes()
    best_parse = best_decode = float("inf")
    for _ in range(15):
        started = time.perf_counter()
        root = codec.parse_xml(data)
        parsed = time.perf_counter()
        rows = codec.decode(codec.body_element(root)[0])
        best_parse = min(best_parse, parsed - started)
        best_decode = min(best_decode, time.perf_counter() - parsed)
    assert len(rows) == 200
    record_property("parse_ms", round(best_parse * 1e3, 2))
    record_property("decode_ms", round(best_decode * 1e3, 2))
    print(
        f"customer.list of 200: parse {best_parse * 1e3:.1f} ms, decode {best_decode * 1e3:.1f} ms"
    )
    assert best_decode < 0.05  # a few ms here; generous for slow CI machines


def test_session_ids_in_recordings_look_like_md5() -> None:
    # Guards the masking done in test_client: every recorded session id is 32 hex digits.
    for name in V1_REQUESTS:
        parts = codec.decode_parts(codec.body_element(root_of(name, "request")))
        if "sessionId" in parts:
            assert re.fullmatch(r"[0-9a-f]{32}", parts["sessionId"])
