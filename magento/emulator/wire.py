"""SOAP 1.1 envelopes as PHP's SoapServer writes them for Magento, byte for byte.

PHP declares each namespace on the Envelope the first time its serializer needs it, so the
order of the `xmlns:` declarations depends on the answer's shape (a Map starts with xsi, an
array of Maps with ns2, multiCall's FixedArray with xsd). `ResponseWriter` replays that
order: every encoder below touches namespaces in the order PHP's `php_encoding.c` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from magsync.magento.emulator.fields import xml_safe

ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
ENC_NS = "http://schemas.xmlsoap.org/soap/encoding/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
APACHE_NS = "http://xml.apache.org/xml-soap"
_XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def escape(text: str) -> str:
    """Escape character data as libxml2 does (&, <, > and carriage returns)."""
    return (
        xml_safe(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )


def fault_envelope(code: str, message: str) -> bytes:
    """A SOAP fault as Magento answers it (HTTP 200, bare faultcode, no detail)."""
    return (
        f'{_XML_DECL}<SOAP-ENV:Envelope xmlns:SOAP-ENV="{ENV_NS}"><SOAP-ENV:Body>'
        f"<SOAP-ENV:Fault><faultcode>{escape(code)}</faultcode>"
        f"<faultstring>{escape(message)}</faultstring></SOAP-ENV:Fault>"
        "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
    ).encode()


class ResponseWriter:
    """Serializes one rpc/encoded response, tracking PHP's namespace declaration order."""

    def __init__(self, namespace: str) -> None:
        self._uris = {
            "ns1": namespace,
            "xsd": XSD_NS,
            "xsi": XSI_NS,
            "SOAP-ENC": ENC_NS,
            "ns2": APACHE_NS,
        }
        self._used = ["ns1"]  # the method element comes first
        self._out: list[str] = []

    def envelope(self, operation: str, part: str, kind: str, value: Any) -> bytes:
        """The whole response: kind is 'any' (guessed), 'string', 'boolean' or 'fixed'."""
        if kind == "fixed":
            self._fixed_array(part, value)
        elif kind == "string":
            self._scalar(part, "xsd:string", str(value))
        elif kind == "boolean":
            self._scalar(part, "xsd:boolean", "true" if value else "false")
        else:
            self.value(part, value)
        self._use("xsd", "SOAP-ENC")  # serialize_response_call adds these last if missing
        declarations = "".join(f' xmlns:{p}="{self._uris[p]}"' for p in self._used)
        return (
            f'{_XML_DECL}<SOAP-ENV:Envelope xmlns:SOAP-ENV="{ENV_NS}"{declarations}'
            f' SOAP-ENV:encodingStyle="{ENC_NS}"><SOAP-ENV:Body>'
            f"<ns1:{operation}Response>{''.join(self._out)}</ns1:{operation}Response>"
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
        ).encode()

    def value(self, tag: str, value: Any) -> None:
        """Encode a value of declared type anyType: the type is guessed from the value."""
        if value is None:
            self._use("xsi")
            self._out.append(f'<{tag} xsi:nil="true"/>')
        elif isinstance(value, bool):
            self._scalar(tag, "xsd:boolean", "true" if value else "false")
        elif isinstance(value, int):
            self._scalar(tag, "xsd:int", str(value))
        elif isinstance(value, float):
            self._scalar(tag, "xsd:float", _php_float(value))
        elif isinstance(value, str):
            self._scalar(tag, "xsd:string", value)
        elif isinstance(value, Mapping) and value:
            self._map(tag, value)
        elif isinstance(value, Mapping | Sequence):
            self._array(tag, list(value.values()) if isinstance(value, Mapping) else value)
        else:
            self._scalar(tag, "xsd:string", str(value))

    def _use(self, *prefixes: str) -> None:
        for prefix in prefixes:
            if prefix not in self._used:
                self._used.append(prefix)

    def _scalar(self, tag: str, xsi_type: str, text: str) -> None:
        self._use("xsd", "xsi")  # type_to_string adds the type's namespace, then xsi:type
        self._out.append(f'<{tag} xsi:type="{xsi_type}">{escape(text)}</{tag}>')

    def _map(self, tag: str, value: Mapping[Any, Any]) -> None:
        """An apache Map: items first (keys add only xsi), the Map's own type last."""
        start = len(self._out)
        self._out.append("")
        for key, item in value.items():
            self._use("xsi")
            key_type = "xsd:int" if isinstance(key, int) else "xsd:string"
            self._out.append(f'<item><key xsi:type="{key_type}">{escape(str(key))}</key>')
            self.value("value", item)
            self._out.append("</item>")
        self._use("ns2", "xsi")
        self._out[start] = f'<{tag} xsi:type="ns2:Map">'
        self._out.append(f"</{tag}>")

    def _array(self, tag: str, items: Sequence[Any]) -> None:
        """A SOAP-ENC:Array whose element type is guessed as PHP's get_array_type does."""
        element = _element_type(items)
        if element is None:
            array_type, encoder_ns = "xsd:ur-type", "xsd"  # "xsd:anyType", no namespace use
        else:
            self._use(element[0])
            array_type, encoder_ns = f"{element[0]}:{element[1]}", element[0]
        self._use("SOAP-ENC", encoder_ns)
        self._items(tag, f"{array_type}[{len(items)}]", "SOAP-ENC:Array", items)

    def _fixed_array(self, tag: str, items: Sequence[Any]) -> None:
        """multiCall's typens:FixedArray (WSDL arrayType xsd:anyType[])."""
        self._use("xsd", "SOAP-ENC")
        self._items(tag, f"xsd:ur-type[{len(items)}]", "ns1:FixedArray", items)

    def _items(self, tag: str, array_type: str, xsi_type: str, items: Sequence[Any]) -> None:
        start = len(self._out)
        self._out.append("")
        for item in items:
            self.value("item", item)
        self._use(xsi_type.partition(":")[0], "xsi")
        attrs = f'SOAP-ENC:arrayType="{array_type}" xsi:type="{xsi_type}"'
        if len(self._out) == start + 1:
            self._out[start] = f"<{tag} {attrs}/>"
        else:
            self._out[start] = f"<{tag} {attrs}>"
            self._out.append(f"</{tag}>")


def _element_type(items: Sequence[Any]) -> tuple[str, str] | None:
    """The common element type of an array as (prefix, name), or None when mixed or empty."""
    kinds = {_kind(item) for item in items}
    if len(kinds) != 1:
        return None
    return _KIND_TYPES[kinds.pop()]


# PHP's zval types: true and false are distinct types, an empty array is no Map.
_KIND_TYPES: dict[str, tuple[str, str]] = {
    "null": ("xsi", "nil"),
    "true": ("xsd", "boolean"),
    "false": ("xsd", "boolean"),
    "int": ("xsd", "int"),
    "float": ("xsd", "float"),
    "string": ("xsd", "string"),
    "map": ("ns2", "Map"),
    "array": ("SOAP-ENC", "Array"),
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Mapping):
        return "map" if value else "array"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "array"
    return "string"


def _php_float(value: float) -> str:
    """A float as PHP's SOAP encoder prints it (serialize_precision -1)."""
    return str(int(value)) if value.is_integer() else repr(value)
