"""SOAP v2 (rpc/encoded) and v2 in WS-I compliance mode (document/literal) for the emulator.

One emulator instance serves one of the two at `/api/v2_soap/`, as the store's admin
setting "WS-I Compliance" does: its WSDL (trimmed from the recorded 1.9 ones in
magento/resources, namespace and soap:address filled in) and its answers. The customer
operations run on the v1 resources (same store, same faults, same ACL by v1 resource
path, same session table); answers take the WSDL types' field order and leave out nulls
and fields the types lack (v2 has no gender, default_billing, default_shipping,
disable_auto_group_change, vat_id), and are laid out as PHP's SoapServer writes them (a
newline after each element), which the recordings show.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
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
from magsync.magento.emulator.fields import to_id
from magsync.magento.emulator.handler import Answer, ApiUser, SessionTable
from magsync.magento.emulator.resources import Resources, store_fault
from magsync.magento.emulator.store import EmulatorStore
from magsync.magento.emulator.wire import escape
from magsync.magento.transport import local_resource

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
V2_PATHS = frozenset({"/api/v2_soap", "/api/v2_soap/index", "/index.php/api/v2_soap",
                      "/index.php/api/v2_soap/index"})
RECORDED_NAMESPACE = "urn:Magento"  # the namespace the trimmed WSDLs were recorded with
RECORDED_LOCATION = "http://127.0.0.1:8093/api/v2_soap/"
_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
_ENV = codec.SOAP_ENV_NS
_V2_ROOT = (f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{_ENV}" xmlns:ns1="{{ns}}"'
            f' xmlns:SOAP-ENC="{codec.SOAP_ENC_NS}" xmlns:xsd="{codec.XSD_NS}"'
            f' xmlns:xsi="{codec.XSI_NS}" SOAP-ENV:encodingStyle="{codec.SOAP_ENC_NS}">\n')
_WSI_ROOT = f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{_ENV}" xmlns:ns1="{{ns}}">\n'

# operation -> the v1 resource path its ACL and behaviour follow
RESOURCE_OF = {
    "customerCustomerList": "customer.list",
    "customerCustomerInfo": "customer.info",
    "customerAddressList": "customer_address.list",
    "customerAddressInfo": "customer_address.info",
    "customerGroupList": "customer_group.list",
}


@dataclass(frozen=True)
class V2Types:
    """What the WSDL says about answers: part names, and each entity type's fields."""

    parts: dict[str, tuple[str, str]]  # operation -> (v2 output part, its type)
    fields: dict[str, tuple[tuple[str, str], ...]]  # complexType -> ((field, xsd type), ...)
    items: dict[str, str]  # array type -> item type


@cache
def v2_types() -> V2Types:
    """Read the trimmed v2 WSDL (package data) once."""
    root = codec.parse_xml(local_resource("v2.wsdl.xml"))
    xsd = codec.XSD_NS
    fields: dict[str, tuple[tuple[str, str], ...]] = {}
    items: dict[str, str] = {}
    for node in root.iter(f"{{{xsd}}}complexType"):
        name = node.get("name", "")
        elements = node.findall(f"{{{xsd}}}all/{{{xsd}}}element")
        if elements:
            fields[name] = tuple((e.get("name", ""), _local(e.get("type", ""))) for e in elements)
        for attr in node.iter(f"{{{xsd}}}attribute"):
            array_type = attr.get(f"{{{WSDL_NS}}}arrayType")
            if array_type:
                items[name] = _local(array_type).removesuffix("[]")
    parts: dict[str, tuple[str, str]] = {}
    for message in root.iterfind(f"{{{WSDL_NS}}}message"):
        name = message.get("name", "")
        part = message.find(f"{{{WSDL_NS}}}part")
        if name.endswith("Response") and part is not None:
            parts[name.removesuffix("Response")] = (part.get("name", ""),
                                                    _local(part.get("type", "")))
    return V2Types(parts, fields, items)


def render_v2_wsdl(namespace: str, location: str, *, wsi: bool) -> bytes:
    """The trimmed recorded WSDL (v2, or WS-I), in `namespace`, advertising `location`."""
    text = local_resource("wsi.wsdl.xml" if wsi else "v2.wsdl.xml").decode()
    text = text.replace(f'"{RECORDED_NAMESPACE}"', f'"{escape(namespace)}"')
    return text.replace(f'location="{RECORDED_LOCATION}"', f'location="{escape(location)}"'
                        ).encode()


def _local(qname: str) -> str:
    return qname.rpartition(":")[2]


@dataclass
class V2Handler:
    """Answers v2 (or WS-I) requests for one store; safe to share across server threads."""

    store: EmulatorStore
    namespace: str
    users: Mapping[str, ApiUser]
    sessions: SessionTable
    wsi: bool = False

    def handle(self, body: bytes) -> Answer:
        """Answer one POSTed envelope; every outcome is an envelope (HTTP 200)."""
        try:
            element = codec.body_element(codec.parse_xml(body))
            name = _operation(etree.QName(element).localname)
            parts = {etree.QName(child).localname: child for child in element}
        except codec.ForbiddenXmlError:
            return Answer(fault_body("SOAP-ENV:Client", "DTD are not supported by SOAP"))
        except codec.CodecError:
            return Answer(fault_body("SOAP-ENV:Client", "Bad Request"))
        try:
            kind, value, calls = self._dispatch(name, parts)
        except ApiFault as fault:
            return Answer(fault_body(fault.code, fault.message), operation=name)
        except PhpError as error:
            return Answer(fault_body("SOAP-ENV:Server", error.message), operation=name)
        return Answer(self._envelope(name, kind, value), calls, name)

    # --- operations -------------------------------------------------------------------

    def _dispatch(self, name: str, parts: dict[str, etree._Element]) -> tuple[str, Any, int]:
        if name == "login":
            return "string", self._login(_text(parts.get("username")),
                                         _text(parts.get("apiKey"))), 0
        if name == "endSession":
            self.sessions.close(_text(parts.get("sessionId")))
            return "boolean", True, 0
        path = RESOURCE_OF.get(name)
        if path is None:
            raise PhpError(f"Procedure '{name}' not present")
        user = self._session_user(_text(parts.get("sessionId")))
        if not user.allows(path):
            raise ApiFault.of(faults.ACCESS_DENIED)
        resources = Resources(self.store)
        try:
            value = self._run(resources, name, parts)
        except (CustomerNotFoundError, AddressNotFoundError) as exc:
            raise store_fault(exc) from None
        return "entity", value, 1

    def _run(self, resources: Resources, name: str, parts: dict[str, etree._Element]) -> Any:
        if name == "customerCustomerList":
            return resources.customer_list(parse_filters(parts.get("filters")))
        if name == "customerCustomerInfo":
            return resources.customer_info(to_id(_text(parts.get("customerId"))),
                                           _strings(parts.get("attributes")))
        if name == "customerAddressList":
            return resources.address_list(to_id(_text(parts.get("customerId"))))
        if name == "customerAddressInfo":
            return resources.address_info(to_id(_text(parts.get("addressId"))))
        return resources.group_list()

    def _login(self, username: str | None, api_key: str | None) -> str:
        if not username or not api_key:
            raise ApiFault.of(faults.PARAM_MISSING)
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(api_key, user.api_key):
            raise ApiFault.of(faults.ACCESS_DENIED)
        return self.sessions.open(username)

    def _session_user(self, sid: str | None) -> ApiUser:
        name = self.sessions.use(sid)
        if name is None or name not in self.users:
            raise ApiFault.of(faults.SESSION_EXPIRED)
        return self.users[name]

    # --- answers ----------------------------------------------------------------------

    def _envelope(self, operation: str, kind: str, value: Any) -> bytes:
        part, part_type = v2_types().parts[operation]
        if self.wsi:
            head = _WSI_ROOT.replace("{ns}", escape(self.namespace))
            inner = _wsi_value("result", part_type, kind, value)
            wrapper = f"ns1:{operation}ResponseParam"
        else:
            head = _V2_ROOT.replace("{ns}", escape(self.namespace))
            inner = _v2_value(part, part_type, kind, value)
            wrapper = f"ns1:{operation}Response"
        return (f"{_DECL}{head}<SOAP-ENV:Body>\n<{wrapper}>\n{inner}\n</{wrapper}>\n"
                "</SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n").encode()


def fault_body(code: str, message: str) -> bytes:
    """A fault as the v2 and WS-I endpoints write it (one element a line)."""
    return (f'{_DECL}<SOAP-ENV:Envelope xmlns:SOAP-ENV="{_ENV}">\n<SOAP-ENV:Body>\n'
            f"<SOAP-ENV:Fault>\n<faultcode>{escape(code)}</faultcode>\n"
            f"<faultstring>{escape(message)}</faultstring>\n</SOAP-ENV:Fault>\n"
            "</SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n").encode()


def _operation(element: str) -> str:
    """The operation a request element names: WS-I wraps it as `xRequestParam` (`xParam`
    for login and endSession)."""
    for suffix in ("RequestParam", "Param"):
        if element.endswith(suffix):
            return element.removesuffix(suffix)
    return element


def _scalar_text(xsd_type: str, value: Any) -> str:
    if xsd_type == "boolean":
        return "true" if _php_bool(value) else "false"
    if xsd_type == "int":
        number = to_id(value)
        return str(number if number is not None else 0)
    return escape(str(value))


def _php_bool(value: Any) -> bool:
    """PHP's (bool) cast: "" and "0" are false."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def _struct_lines(type_name: str, row: Mapping[str, Any], wsi: bool) -> str:
    out = []
    for name, xsd_type in v2_types().fields[type_name]:
        value = row.get(name)
        if value is None:
            continue
        typed = "" if wsi else f' xsi:type="xsd:{xsd_type}"'
        out.append(f"<{name}{typed}>{_scalar_text(xsd_type, value)}</{name}>\n")
    return "".join(out)


def _v2_value(tag: str, type_name: str, kind: str, value: Any) -> str:
    if kind != "entity":
        return f'<{tag} xsi:type="xsd:{kind}">{_scalar_text(kind, value)}</{tag}>'
    item_type = v2_types().items.get(type_name)
    if item_type is None:
        return (f'<{tag} xsi:type="ns1:{type_name}">\n'
                f"{_struct_lines(type_name, value, False)}</{tag}>")
    head = (f'<{tag} SOAP-ENC:arrayType="ns1:{item_type}[{len(value)}]"'
            f' xsi:type="ns1:{type_name}"')
    if not value:
        return head + "/>"
    items = "".join(f'<item xsi:type="ns1:{item_type}">\n{_struct_lines(item_type, row, False)}'
                    "</item>\n" for row in value)
    return f"{head}>\n{items}</{tag}>"


def _wsi_value(tag: str, type_name: str, kind: str, value: Any) -> str:
    if kind != "entity":
        return f"<{tag}>{_scalar_text(kind, value)}</{tag}>"
    item_type = v2_types().items.get(type_name)
    if item_type is None:
        return f"<{tag}>\n{_struct_lines(type_name, value, True)}</{tag}>"
    if not value:
        return f"<{tag}/>"
    items = "".join(f"<complexObjectArray>\n{_struct_lines(item_type, row, True)}"
                    "</complexObjectArray>\n" for row in value)
    return f"<{tag}>\n{items}</{tag}>"


# --- request values -------------------------------------------------------------------


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.get(f"{{{codec.XSI_NS}}}nil") in ("true", "1"):
        return None
    return element.text or ""


def _child(element: etree._Element, name: str) -> etree._Element | None:
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return child
    return None


def _strings(element: etree._Element | None) -> list[str] | None:
    """An ArrayOfString (v2 items, WS-I complexObjectArray); None when nil or empty."""
    if element is None or _text(element) is None:
        return None
    values = [child.text or "" for child in element if isinstance(child.tag, str)]
    return values or None


_SPLIT_OPERATORS = frozenset({"in", "nin", "finset"})


def parse_filters(element: etree._Element | None) -> dict[str, Any]:
    """A v2 `filters` value as the v1 filter Map Mage_Api_Helper_Data::parseFilters makes.

    `filter` pairs are equalities; `complex_filter` items `{key: field, value: {key: op,
    value}}` are conditions, merged per field (from + to on one field both apply, as
    the recorded complex filter shows); in, nin and finset split their value on commas.
    """
    result: dict[str, Any] = {}
    if element is None:
        return result
    simple, complex_ = _child(element, "filter"), _child(element, "complex_filter")
    for item in simple if simple is not None else ():
        key, value = _child(item, "key"), _child(item, "value")
        if key is not None and key.text:
            result[key.text] = _text(value)
    for item in complex_ if complex_ is not None else ():
        key, condition = _child(item, "key"), _child(item, "value")
        if key is None or not key.text or condition is None:
            continue
        operator, operand = _text(_child(condition, "key")), _text(_child(condition, "value"))
        if not operator:
            continue
        split = operator in _SPLIT_OPERATORS and isinstance(operand, str)
        current = result.get(key.text)
        merged = current if isinstance(current, dict) else {}
        merged[operator] = operand.split(",") if split and operand is not None else operand
        result[key.text] = merged
    return result
