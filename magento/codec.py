"""SOAP 1.1 encoding the way Magento 1 speaks it: PHP values in, plain Python values out.

Encoding follows what PHP's SoapClient sends (see tests/fixtures/wire): a dict is an
apache ``ns2:Map`` of ``<item><key/><value/></item>`` pairs, a list a ``SOAP-ENC:Array``
whose ``arrayType`` names the common item type (``xsd:ur-type`` when mixed or empty),
scalars carry ``xsi:type`` and None is ``xsi:nil``. Decoding follows ``xsi:type`` and walks
lxml directly (no zeep object graph): a 200-customer ``customer.list`` takes a few ms.

API (also used by the emulator in ``magento.emulator``):
    new_envelope(target_ns, element, parts) -> envelope   build a request or response
    fault_envelope(code, message) -> envelope              build a SOAP fault
    to_bytes(envelope) -> bytes                            serialise with PHP's XML declaration
    encode(parent, tag, value, array_type=None) -> element append one encoded value
    parse_xml(data) -> root                                parse safely (no DTD, no entities)
    body_element(root) -> element                          the operation, response or Fault
    decode(element) -> Any                                 one encoded value to Python
    decode_parts(element) -> dict[str, Any]                every part of an operation element
    parse_fault(root) -> SoapFaultInfo | None              the Fault in an envelope, if any
    inline_fault(value) -> SoapFaultInfo | None            a multiCall per-call fault, if any
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC_NS = "http://schemas.xmlsoap.org/soap/encoding/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
APACHE_NS = "http://xml.apache.org/xml-soap"

_XSI_TYPE = f"{{{XSI_NS}}}type"
_XSI_NIL = f"{{{XSI_NS}}}nil"
_ARRAY_TYPE = f"{{{SOAP_ENC_NS}}}arrayType"
_BODY = f"{{{SOAP_ENV_NS}}}Body"
_FAULT = f"{{{SOAP_ENV_NS}}}Fault"

UR_TYPE = "xsd:ur-type"
MAP_TYPE = "ns2:Map"
ARRAY_TYPE = "SOAP-ENC:Array"
FIXED_ARRAY_TYPE = "ns1:FixedArray"


class CodecError(ValueError):
    """A document the codec cannot accept."""


class ForbiddenXmlError(CodecError):
    """The document carries a DTD or entity declarations: refused, never parsed further."""


class MalformedXmlError(CodecError):
    """The document is not well-formed XML (empty, truncated, HTML...)."""


class NotSoapError(CodecError):
    """Well-formed XML, but not a SOAP 1.1 envelope with a body."""


@dataclass(frozen=True)
class SoapFaultInfo:
    """A SOAP fault: ``code`` is an int for Magento's numeric codes, else the raw text."""

    code: int | str
    message: str


# --- encoding -------------------------------------------------------------------------


def _uses_map(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    if isinstance(value, list | tuple):
        return any(_uses_map(item) for item in value)
    return False


def new_envelope(
    target_ns: str,
    element: str,
    parts: Iterable[tuple[str, Any]],
    *,
    fixed_arrays: frozenset[str] = frozenset(),
    array_type: str = FIXED_ARRAY_TYPE,
) -> etree._Element:
    """Build an rpc/encoded envelope ``<ns1:element>`` holding ``parts`` in order.

    Parts named in ``fixed_arrays`` (multiCall's ``calls`` and ``multiCallReturn``) are
    typed ``array_type`` with ``xsd:ur-type[N]`` items, as PHP does for a WSDL-typed part.
    The apache ``ns2`` prefix is declared only when a Map is present, as PHP does.
    """
    parts = list(parts)
    nsmap = {"SOAP-ENV": SOAP_ENV_NS, "ns1": target_ns, "xsd": XSD_NS, "xsi": XSI_NS}
    if any(_uses_map(value) for _, value in parts):
        nsmap["ns2"] = APACHE_NS
    nsmap["SOAP-ENC"] = SOAP_ENC_NS
    envelope = etree.Element(f"{{{SOAP_ENV_NS}}}Envelope", nsmap=nsmap)
    envelope.set(f"{{{SOAP_ENV_NS}}}encodingStyle", SOAP_ENC_NS)
    body = etree.SubElement(envelope, _BODY)
    operation = etree.SubElement(body, f"{{{target_ns}}}{element}")
    for name, value in parts:
        encode(operation, name, value, array_type=array_type if name in fixed_arrays else None)
    return envelope


def fault_envelope(code: int | str, message: str) -> etree._Element:
    """Build a fault envelope shaped like Magento's (bare faultcode, SOAP-ENV only)."""
    envelope = etree.Element(f"{{{SOAP_ENV_NS}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV_NS})
    fault = etree.SubElement(etree.SubElement(envelope, _BODY), _FAULT)
    etree.SubElement(fault, "faultcode").text = str(code)
    etree.SubElement(fault, "faultstring").text = message
    return envelope


def to_bytes(envelope: etree._Element) -> bytes:
    """Serialise an envelope with the XML declaration PHP writes."""
    serialised = bytes(etree.tostring(envelope, encoding="utf-8"))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + serialised


def _scalar_type(value: Any) -> str:
    if value is None:
        return UR_TYPE
    if isinstance(value, bool):
        return "xsd:boolean"
    if isinstance(value, int):
        return "xsd:int"
    if isinstance(value, float):
        return "xsd:double"
    if isinstance(value, str):
        return "xsd:string"
    if isinstance(value, dict):
        return MAP_TYPE
    if isinstance(value, list | tuple):
        return ARRAY_TYPE
    raise TypeError(f"cannot SOAP-encode a {type(value).__name__}")


def _item_type(items: list[Any] | tuple[Any, ...]) -> str:
    """PHP's rule: the items' common type, else (mixed or empty) xsd:ur-type."""
    kinds = {_scalar_type(item) for item in items}
    return kinds.pop() if len(kinds) == 1 else UR_TYPE


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("INF" if value > 0 else "-INF")
    return str(value)


def encode(
    parent: etree._Element, tag: str, value: Any, *, array_type: str | None = None
) -> etree._Element:
    """Append ``<tag>`` holding ``value`` SOAP-encoded; return the new element.

    ``parent`` must sit in an envelope from ``new_envelope`` (it declares the prefixes
    named in xsi:type values). ``array_type`` types a top-level list as that type with
    ``xsd:ur-type`` items (a WSDL-typed array part such as FixedArray).
    """
    element = etree.SubElement(parent, tag)
    if value is None:
        element.set(_XSI_NIL, "true")
    elif isinstance(value, dict):
        element.set(_XSI_TYPE, MAP_TYPE)
        for key, item in value.items():
            pair = etree.SubElement(element, "item")
            encode(pair, "key", key)
            encode(pair, "value", item)
    elif isinstance(value, list | tuple):
        item_type = UR_TYPE if array_type else _item_type(value)
        element.set(_ARRAY_TYPE, f"{item_type}[{len(value)}]")
        element.set(_XSI_TYPE, array_type or ARRAY_TYPE)
        for item in value:
            encode(element, "item", item)
    else:
        element.set(_XSI_TYPE, _scalar_type(value))
        element.text = _text(value)
    return element


# --- parsing --------------------------------------------------------------------------

_parsers = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers must not be used by two threads at once: keep one per thread.
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _parsers.parser = parser
    return parser


def parse_xml(data: bytes) -> etree._Element:
    """Parse a document, refusing DTDs and entity declarations; return its root."""
    if not data or not data.strip():
        raise MalformedXmlError("empty document")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:  # e.g. an external DTD it refused to load
            raise ForbiddenXmlError("XML with a DTD or entity declarations is refused") from None
        raise MalformedXmlError(f"not well-formed XML ({exc.msg})") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ForbiddenXmlError("XML with a DTD or entity declarations is refused")
    return root


def body_element(root: etree._Element) -> etree._Element:
    """Return the first element in the envelope's Body (operation, response or Fault)."""
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise NotSoapError(f"not a SOAP 1.1 envelope (root element {root.tag!r})")
    for child in root:
        if child.tag == _BODY:
            for element in child:
                return element
            raise NotSoapError("empty SOAP Body")
    raise NotSoapError("SOAP envelope without a Body")


def parse_fault(root: etree._Element) -> SoapFaultInfo | None:
    """Return the envelope's fault (numeric codes as int), or None when it has none."""
    element = body_element(root)
    if element.tag != _FAULT:
        return None
    code = (element.findtext("faultcode") or "").strip()
    message = (element.findtext("faultstring") or "").strip()
    return SoapFaultInfo(int(code) if code.isdigit() else code, message)


def inline_fault(value: Any) -> SoapFaultInfo | None:
    """Return the fault in a multiCall result item (``{isFault: true, ...}``), else None."""
    if not isinstance(value, dict) or value.get("isFault") not in (True, 1, "1", "true"):
        return None
    code = str(value.get("faultCode", "")).strip()
    return SoapFaultInfo(int(code) if code.isdigit() else code, str(value.get("faultMessage")))


# --- decoding -------------------------------------------------------------------------


def _boolean(text: str) -> bool:
    return text.strip() in ("true", "1")


def _number(text: str) -> float:
    special = {"INF": math.inf, "-INF": -math.inf, "NaN": math.nan}
    stripped = text.strip()
    return special[stripped] if stripped in special else float(stripped)


def _integer(text: str) -> int:
    return int(text.strip())


_SCALARS: dict[str, Callable[[str], Any]] = {
    "string": str,
    "int": _integer,
    "integer": _integer,
    "long": _integer,
    "short": _integer,
    "byte": _integer,
    "boolean": _boolean,
    "double": _number,
    "float": _number,
    "decimal": _number,
}
_TRUE = ("true", "1")


def decode(element: etree._Element) -> Any:
    """Decode one SOAP-encoded element into int, str, bool, float, None, list or dict.

    Types match by the local name of ``xsi:type`` (PHP's prefixes vary; the names do not
    collide): Map -> dict, Array/FixedArray (or any type with SOAP-ENC:arrayType) -> list,
    other compound types (v2 entities, SOAP-ENC:Struct) -> dict by child tag.
    """
    xsi_type = element.get(_XSI_TYPE)
    text = element.text
    if text is None and not len(element) and element.get(_XSI_NIL) in _TRUE:
        return None
    if xsi_type is None:
        return _decode_untyped(element)
    local = xsi_type.rpartition(":")[2]
    scalar = _SCALARS.get(local)
    if scalar is not None:
        return scalar(text or "")
    if local == "Map":
        return _decode_map(element)
    if local in ("Array", "FixedArray") or element.get(_ARRAY_TYPE) is not None:
        return [decode(child) for child in element]
    if len(element):
        return {child.tag: decode(child) for child in element}
    return text or ""


def _decode_map(element: etree._Element) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for item in element:
        try:
            key, value = item
        except ValueError:  # not exactly <key/><value/>: look the pair up by name
            key, value = item.find("key"), item.find("value")
            if key is None:
                continue
            result[decode(key)] = None if value is None else decode(value)
            continue
        if key.tag != "key":
            key, value = value, key
        # Fast paths for PHP's usual spelling; anything else goes through decode().
        name = (key.text or "") if key.get(_XSI_TYPE) == "xsd:string" else decode(key)
        kind = value.get(_XSI_TYPE)
        if kind == "xsd:string":
            result[name] = value.text or ""
        elif kind == "xsd:int":
            result[name] = int(value.text or "")
        else:
            result[name] = decode(value)
    return result


def _decode_untyped(element: etree._Element) -> Any:
    """Best effort for untyped content (fault details, WS-I literal responses)."""
    if not len(element):
        return element.text or ""
    first = element[0]
    if first.tag == "item" and len(first) and first[0].tag == "key":
        return _decode_map(element)
    tags = {child.tag for child in element}
    if len(tags) == 1 and (len(element) > 1 or first.tag in ("item", "complexObjectArray")):
        return [decode(child) for child in element]
    return {child.tag: decode(child) for child in element}


def decode_parts(element: etree._Element) -> dict[str, Any]:
    """Decode every part of an operation or response element, keyed by part name."""
    return {child.tag: decode(child) for child in element}
