"""The v1 WSDL (rpc/encoded, soapAction urn:Action).

Three release shapes: Magento CE 1.9 and OpenMage declare a `types` section with
`FixedArray` for multiCall (OpenMage comments the SOAP-encoding import out, some 1.x
releases keep it); older 1.x releases have no `types` and type those parts
`soapenc:Array`. The schema's targetNamespace is `urn:Magento` in Magento's own file even
when the definitions use `urn:OpenMage`; `schema_namespace` reproduces or overrides that.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

# Magento fills {{var wsdl.handler}} before the handler is set: the names come out bare
# ("PortType", "Binding", soapAction "urn:Action").
_HANDLER = ""
_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
# operation -> (input parts, output part), each part (name, type); FIXED marks FixedArray.
_FIXED = "FIXED"
_OPERATIONS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, str], str]] = {
    "call": (
        (("sessionId", "xsd:string"), ("resourcePath", "xsd:string"), ("args", "xsd:anyType")),
        ("callReturn", "xsd:anyType"),
        "Call api functionality",
    ),
    "multiCall": (
        (("sessionId", "xsd:string"), ("calls", _FIXED), ("options", "xsd:anyType")),
        ("multiCallReturn", _FIXED),
        "Multiple calls of resource functionality",
    ),
    "endSession": (
        (("sessionId", "xsd:string"),),
        ("endSessionReturn", "xsd:boolean"),
        "End web service session",
    ),
    "login": (
        (("username", "xsd:string"), ("apiKey", "xsd:string")),
        ("loginReturn", "xsd:string"),
        "Login user and retrieve session id",
    ),
    "startSession": ((), ("startSessionReturn", "xsd:string"), "Start web service session"),
    "resources": (
        (("sessionId", "xsd:string"),),
        ("resourcesReturn", _FIXED),
        "List of available resources",
    ),
    "globalFaults": (
        (("sessionId", "xsd:string"),),
        ("globalFaultsReturn", _FIXED),
        "List of global faults",
    ),
    "resourceFaults": (
        (("resourceName", "xsd:string"), ("sessionId", "xsd:string")),
        ("resourceFaultsReturn", _FIXED),
        "List of resource faults",
    ),
}


@dataclass(frozen=True)
class WsdlOptions:
    """Which release's WSDL to serve."""

    types: bool = True  # False: the older shape, soapenc:Array parts and no types section
    import_encoding: bool = False  # declare the SOAP-encoding schema import (some releases)
    schema_namespace: str | None = "urn:Magento"  # None: the definitions' namespace


def render_wsdl(namespace: str, location: str, options: WsdlOptions = WsdlOptions()) -> bytes:
    """The WSDL document for a target namespace (`urn:Magento`, `urn:OpenMage`)."""
    name = namespace.removeprefix("urn:")
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<definitions xmlns:typens={quoteattr(namespace)}"
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"'
        f' xmlns:soapenc="{_ENCODING}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"'
        ' xmlns="http://schemas.xmlsoap.org/wsdl/"'
        f" name={quoteattr(name)} targetNamespace={quoteattr(namespace)}>",
    ]
    if options.types:
        lines += _types(options.schema_namespace or namespace, options.import_encoding)
    for operation, (inputs, output, _doc) in _OPERATIONS.items():
        lines += _message(operation, inputs, options.types)
        lines += _message(f"{operation}Response", (output,), options.types)
    lines += _port_type()
    lines += _binding(namespace)
    lines += [
        f"  <service name={quoteattr(name + 'Service')}>",
        f'    <port name="{_HANDLER}Port" binding="typens:{_HANDLER}Binding">',
        f"      <soap:address location={quoteattr(location)}/>",
        "    </port>",
        "  </service>",
        "</definitions>",
    ]
    return ("\n".join(lines) + "\n").encode()


def _types(schema_namespace: str, import_encoding: bool) -> list[str]:
    encoding_import = f'<import namespace="{_ENCODING}" schemaLocation="{_ENCODING}"/>'
    return [
        "  <types>",
        '    <schema xmlns="http://www.w3.org/2001/XMLSchema"'
        f" targetNamespace={quoteattr(schema_namespace)}>",
        f"      {encoding_import}" if import_encoding else f"      <!-- {encoding_import} -->",
        '      <complexType name="FixedArray">',
        "        <complexContent>",
        '          <restriction base="soapenc:Array">',
        '            <attribute ref="soapenc:arrayType" wsdl:arrayType="xsd:anyType[]"/>',
        "          </restriction>",
        "        </complexContent>",
        "      </complexType>",
        "    </schema>",
        "  </types>",
    ]


def _message(name: str, parts: tuple[tuple[str, str], ...], types: bool) -> list[str]:
    if not parts:
        return [f'  <message name="{name}"/>']
    lines = [f'  <message name="{name}">']
    for part, part_type in parts:
        if part_type != _FIXED:
            lines.append(f'    <part name="{part}" type="{part_type}"/>')
        elif types:
            lines.append(f'    <part name="{part}" type="typens:FixedArray"/>')
        else:
            lines.append(f'    <part name="{part}" type="soapenc:Array"/>')
    return [*lines, "  </message>"]


def _port_type() -> list[str]:
    lines = [f'  <portType name="{_HANDLER}PortType">']
    for operation, (_inputs, _output, doc) in _OPERATIONS.items():
        lines += [
            f'    <operation name="{operation}">',
            f"      <documentation>{doc}</documentation>",
            f'      <input message="typens:{operation}"/>',
            f'      <output message="typens:{operation}Response"/>',
            "    </operation>",
        ]
    return [*lines, "  </portType>"]


def _binding(namespace: str) -> list[str]:
    body = (
        f'<soap:body namespace={quoteattr(namespace)} use="encoded" encodingStyle="{_ENCODING}"/>'
    )
    lines = [
        f'  <binding name="{_HANDLER}Binding" type="typens:{_HANDLER}PortType">',
        '    <soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>',
    ]
    for operation in _OPERATIONS:
        lines += [
            f'    <operation name="{operation}">',
            f'      <soap:operation soapAction="urn:{_HANDLER}Action"/>',
            f"      <input>{body}</input>",
            f"      <output>{body}</output>",
            "    </operation>",
        ]
    return [*lines, "  </binding>"]
