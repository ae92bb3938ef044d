"""Record lists decoded column by column (magento/table.py): the same text as decoding
each Map and writing its values with as_text, on every recording and on odd spellings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from magsync.magento import codec
from magsync.magento.table import Table, as_text, decode_answers, decode_tables

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
RESPONSES = sorted(p.name.removesuffix(".response.xml") for p in WIRE.glob("v1_*.response.xml"))


def as_tables(value: Any) -> Any:
    """What decode_tables must give, from what codec.decode gives."""
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return Table.of_rows(value)
    if isinstance(value, list):
        return [as_tables(item) for item in value]
    return value


def payload(data: bytes) -> etree._Element:
    return codec.body_element(codec.parse_xml(data))[0]


@pytest.mark.parametrize("name", RESPONSES)
def test_every_recorded_answer_decodes_to_the_same_text(name: str) -> None:
    root = codec.parse_xml((WIRE / f"{name}.response.xml").read_bytes())
    if codec.parse_fault(root) is not None or not len(codec.body_element(root)):
        return
    element = codec.body_element(root)[0]
    assert decode_tables(element) == as_tables(codec.decode(element))


ODD = b"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:ns1="urn:Magento" xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/"
 xmlns:ns2="http://xml.apache.org/xml-soap"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><SOAP-ENV:Body><ns1:callResponse>
<callReturn SOAP-ENC:arrayType="ns2:Map[2]" xsi:type="SOAP-ENC:Array">
<item xsi:type="ns2:Map">
 <item><key xsi:type="xsd:string">id</key><value xsi:type="xsd:int"> 007 </value></item>
 <item><key xsi:type="xsd:string">ok</key><value xsi:type="xsd:boolean">true</value></item>
 <item><key xsi:type="xsd:string">gone</key><value xsi:nil="true"/></item>
 <item><key xsi:type="xsd:string">empty</key><value xsi:type="xsd:string"/></item>
 <item><key xsi:type="xsd:string">rate</key><value xsi:type="xsd:double">1.50</value></item>
 <item><value xsi:type="xsd:string">swapped</value><key xsi:type="xsd:string">sw</key></item>
 <item><key xsi:type="xsd:int">5</key><value xsi:type="xsd:string">numbered</value></item>
 <item><key xsi:type="xsd:string">lone</key></item>
 <item><key xsi:type="xsd:string">map</key><value xsi:type="ns2:Map"><item>
  <key xsi:type="xsd:string">b</key><value xsi:type="xsd:boolean">false</value></item>
  <item><key xsi:type="xsd:string">a</key><value xsi:type="xsd:int">1</value></item></value>
 </item>
</item>
<item xsi:type="ns2:Map">
 <item><key xsi:type="xsd:string">id</key><value xsi:type="xsd:int">8</value></item>
 <item><key xsi:type="xsd:string">note</key><value>untyped &amp; plain</value></item>
</item>
</callReturn></ns1:callResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"""


def test_odd_spellings_give_what_decode_and_as_text_give() -> None:
    element = payload(ODD)
    table = decode_tables(element)
    assert table == Table.of_rows(codec.decode(element))
    assert table.rows == 2
    assert table.columns["id"] == ["7", "8"]
    assert table.columns["ok"] == ["1", None]
    assert table.columns["gone"] == [None, None]
    assert table.columns["empty"] == ["", None]
    assert table.columns["rate"] == ["1.5", None]
    assert table.columns["sw"] == ["swapped", None]
    assert table.columns["5"] == ["numbered", None]
    assert table.columns["lone"] == [None, None]
    assert table.columns["map"] == ['{"a":1,"b":false}', None]
    assert table.columns["note"] == [None, "untyped & plain"]


def test_lists_that_are_not_all_maps_stay_lists() -> None:
    mixed = ODD.replace(b'<item xsi:type="ns2:Map">\n <item><key xsi:type="xsd:string">id'
                        b'</key><value xsi:type="xsd:int">8</value></item>',
                        b'<item xsi:type="xsd:string">x</item><item xsi:type="ns2:Map">'
                        b'<item><key xsi:type="xsd:string">id</key>'
                        b'<value xsi:type="xsd:int">8</value></item>', 1)
    element = payload(mixed)
    value = decode_tables(element)
    assert isinstance(value, list)
    assert value == codec.decode(element)


def test_multicall_answers_stay_a_list_even_when_all_are_faults() -> None:
    fault = {"isFault": True, "faultCode": "102", "faultMessage": "Customer not exists."}
    envelope = codec.new_envelope("urn:Magento", "multiCallResponse",
                                  [("multiCallReturn", [fault, fault])],
                                  fixed_arrays=frozenset({"multiCallReturn"}))
    element = payload(codec.to_bytes(envelope))
    assert isinstance(decode_tables(element), Table)  # read as one record list...
    assert decode_answers(element) == [fault, fault]  # ...but a multiCall's is answers
    recorded = payload((WIRE / "v1_multicall_50_address_list.response.xml").read_bytes())
    assert decode_answers(recorded) == as_tables(codec.decode(recorded))
    assert all(isinstance(answer, Table) for answer in decode_answers(recorded))


def test_table_slices_and_joins_keep_rows_aligned() -> None:
    a = Table.of_rows([{"id": 1, "x": "p"}, {"id": 2}])
    b = Table.of_rows([{"id": 3, "y": True}])
    joined = Table.concat([a, Table(0, {}), b])
    assert joined == Table(3, {"id": ["1", "2", "3"], "x": ["p", None, None],
                               "y": [None, None, "1"]})
    assert joined.take(1, 10) == Table(2, {"id": ["2", "3"], "x": [None, None],
                                           "y": [None, "1"]})
    assert joined.column("absent") == [None, None, None]
    assert as_text({"b": [1, None], "a": 1.5}) == '{"a":1.5,"b":[1,null]}'
