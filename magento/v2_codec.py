"""Request envelopes and answers of SOAP v2 (rpc/encoded) and WS-I (document/literal).

Requests are built in the shapes PHP's SoapClient sent to the recorded store
(tests/fixtures/wire/v2_*, wsi_*): zeep 4.3 renders v2's `complexFilterArray` (a
restriction of SOAP-ENC:Array) as bare, untyped children without `<item>` wrappers,
which PHP cannot read, so envelopes are built here and zeep posts them (see
magento.transport.EnvelopePlugin). A filter is given as v1's Map
(`{"customer_id": {"from": 1, "to": 500}}`, a bare value meaning eq) and sent as a
`complex_filter`. Answers decode with magento.codec; WS-I's are untyped text, so its
booleans are read back here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from magsync.magento import codec

_XSI_TYPE = f"{{{codec.XSI_NS}}}type"
_ARRAY_TYPE = f"{{{codec.SOAP_ENC_NS}}}arrayType"
BOOLEAN_FIELDS = frozenset({"is_default_billing", "is_default_shipping", "confirmation"})
LIST_OPERATIONS = frozenset({"customerCustomerList", "customerAddressList", "customerGroupList"})
_INT_PARTS = frozenset({"customerId", "addressId"})


def conditions(filters: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A v1 filter Map as (field, operator, value) conditions, values as text."""
    out = []
    for field, condition in filters.items():
        pairs = condition.items() if isinstance(condition, Mapping) else [("eq", condition)]
        for operator, value in pairs:
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            out.append((str(field), str(operator), text))
    return out


def request(namespace: str, operation: str, parts: Iterable[tuple[str, Any]], *,
            wsi: bool) -> etree._Element:
    """The envelope of one v2 or WS-I request."""
    return _wsi_request(namespace, operation, parts) if wsi else _v2_request(
        namespace, operation, parts)


def _v2_request(namespace: str, operation: str,
                parts: Iterable[tuple[str, Any]]) -> etree._Element:
    nsmap = {"SOAP-ENV": codec.SOAP_ENV_NS, "ns1": namespace, "xsd": codec.XSD_NS,
             "xsi": codec.XSI_NS, "SOAP-ENC": codec.SOAP_ENC_NS}
    envelope = etree.Element(f"{{{codec.SOAP_ENV_NS}}}Envelope", nsmap=nsmap)
    envelope.set(f"{{{codec.SOAP_ENV_NS}}}encodingStyle", codec.SOAP_ENC_NS)
    body = etree.SubElement(envelope, f"{{{codec.SOAP_ENV_NS}}}Body")
    element = etree.SubElement(body, f"{{{namespace}}}{operation}")
    for name, value in parts:
        if name == "filters":
            _v2_filters(element, value or {})
        elif name == "attributes":
            _v2_strings(element, name, value)
        else:
            _typed(element, name, "xsd:int" if name in _INT_PARTS else "xsd:string", value)
    return envelope


def _typed(parent: etree._Element, tag: str, xsi_type: str, value: Any) -> etree._Element:
    node = etree.SubElement(parent, tag)
    node.set(_XSI_TYPE, xsi_type)
    node.text = str(value)
    return node


def _v2_filters(parent: etree._Element, filters: Mapping[str, Any]) -> None:
    node = etree.SubElement(parent, "filters")
    node.set(_XSI_TYPE, "ns1:filters")
    items = conditions(filters)
    array = etree.SubElement(node, "complex_filter")
    array.set(_ARRAY_TYPE, f"ns1:complexFilter[{len(items)}]")
    array.set(_XSI_TYPE, "ns1:complexFilterArray")
    for field, operator, value in items:
        item = etree.SubElement(array, "item")
        item.set(_XSI_TYPE, "ns1:complexFilter")
        _typed(item, "key", "xsd:string", field)
        pair = etree.SubElement(item, "value")
        pair.set(_XSI_TYPE, "ns1:associativeEntity")
        _typed(pair, "key", "xsd:string", operator)
        _typed(pair, "value", "xsd:string", value)


def _v2_strings(parent: etree._Element, tag: str, values: list[str] | None) -> None:
    node = etree.SubElement(parent, tag)
    if values is None:
        node.set(f"{{{codec.XSI_NS}}}nil", "true")
    else:
        node.set(_ARRAY_TYPE, f"xsd:string[{len(values)}]")
        for value in values:
            _typed(node, "item", "xsd:string", value)
    node.set(_XSI_TYPE, "ns1:ArrayOfString")


def _wsi_request(namespace: str, operation: str,
                 parts: Iterable[tuple[str, Any]]) -> etree._Element:
    nsmap = {"SOAP-ENV": codec.SOAP_ENV_NS, "ns1": namespace}
    envelope = etree.Element(f"{{{codec.SOAP_ENV_NS}}}Envelope", nsmap=nsmap)
    body = etree.SubElement(envelope, f"{{{codec.SOAP_ENV_NS}}}Body")
    wrapper = "Param" if operation in ("login", "endSession") else "RequestParam"
    element = etree.SubElement(body, f"{{{namespace}}}{operation}{wrapper}")
    for name, value in parts:
        if name == "filters":
            node = etree.SubElement(etree.SubElement(element, "filters"), "complex_filter")
            for field, operator, text in conditions(value or {}):
                item = etree.SubElement(node, "complexObjectArray")
                etree.SubElement(item, "key").text = field
                pair = etree.SubElement(item, "value")
                etree.SubElement(pair, "key").text = operator
                etree.SubElement(pair, "value").text = text
        elif name == "attributes":
            if value is not None:
                node = etree.SubElement(element, name)
                for text in value:
                    etree.SubElement(node, "complexObjectArray").text = text
        else:
            etree.SubElement(element, name).text = str(value)
    return envelope


def answer(payload: etree._Element, operation: str, *, wsi: bool) -> Any:
    """The decoded answer of `operation` from the response element (its first part)."""
    if not len(payload):
        return [] if operation in LIST_OPERATIONS else None
    part = payload[0]
    if not wsi:
        return codec.decode(part)
    if operation in LIST_OPERATIONS:
        return [_wsi_record(item) for item in part if isinstance(item.tag, str)]
    if len(part):
        return _wsi_record(part)
    text = part.text or ""
    return text == "true" if operation == "endSession" else text


def _wsi_record(element: etree._Element) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        text = child.text or ""
        record[child.tag] = text == "true" if child.tag in BOOLEAN_FIELDS else text
    return record
