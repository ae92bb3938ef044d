"""Arrays of Maps decoded column by column: what a list call (``customer.list``,
``customer_address.list``) answers, without a dict per record.

A record list is most of what a sync reads; decoding each Map into a dict and then the
dicts into columns cost about as much CPU again as the decoding, on the thread that keeps
the store's slots busy. ``decode_tables`` walks the answer once and fills one list per key.

Values become text the way ``as_text`` writes them (the text a normaliser reads): strings
as sent, nil as None, integers and floats as Python writes them, booleans as 1 and 0,
Maps and Arrays inside a record as canonical JSON. Every value goes through the same rules
as ``codec.decode`` (so a Table holds exactly ``as_text`` of what ``decode`` gives).

API:
    decode_tables(element) -> Any      decode(), but every Array of Maps is a Table
    Table.of_rows(rows) -> Table       dict records (the v2 client's) as a Table
    as_text(value) -> str | None       one decoded value as text
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from magsync.magento import codec

_XSI_TYPE = f"{{{codec.XSI_NS}}}type"
_XSI_NIL = f"{{{codec.XSI_NS}}}nil"
_ARRAY_TYPE = f"{{{codec.SOAP_ENC_NS}}}arrayType"
_ARRAYS = ("Array", "FixedArray")
_TRUE = ("true", "1")


def as_text(value: Any) -> str | None:
    """A decoded value as text: booleans as 1 and 0, Maps and Arrays as canonical JSON."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class Table:
    """Records as columns: ``columns[key][row]`` is the row's value as text, None where the
    record holds nil or lacks the key. Keys keep their first-seen order."""

    rows: int
    columns: dict[str, list[str | None]]

    def __len__(self) -> int:
        return self.rows

    def column(self, key: str) -> list[str | None]:
        """The key's values, all None when no record has it."""
        found = self.columns.get(key)
        return found if found is not None else [None] * self.rows

    def take(self, start: int, stop: int) -> Table:
        """Rows start to stop (a slice)."""
        rows = len(range(start, min(stop, self.rows)))
        return Table(rows, {k: v[start:stop] for k, v in self.columns.items()})

    def with_column(self, key: str, values: list[str | None]) -> Table:
        """This table with `key` set (added or replaced) to `values`."""
        return Table(self.rows, {**self.columns, key: values})

    @staticmethod
    def concat(tables: Iterable[Table]) -> Table:
        """The tables' rows one after the other; keys missing in a table are None there."""
        parts = [t for t in tables if t.rows]
        keys: dict[str, None] = {}
        for part in parts:
            keys.update(dict.fromkeys(part.columns))
        columns: dict[str, list[str | None]] = {k: [] for k in keys}
        for part in parts:
            for key, out in columns.items():
                values = part.columns.get(key)
                out.extend(values if values is not None else [None] * part.rows)
        return Table(sum(p.rows for p in parts), columns)

    @staticmethod
    def of_rows(rows: Sequence[Mapping[Any, Any]]) -> Table:
        """Decoded records (dicts) as a Table, their values through ``as_text``."""
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        columns = {str(k): [as_text(row.get(k)) for row in rows] for k in keys}
        return Table(len(rows), columns)


def decode_tables(element: etree._Element) -> Any:
    """``codec.decode``, except that every Array whose items are all Maps (a record list)
    comes back as a Table, also inside other Arrays (a multiCall's answers)."""
    if not _is_array(element):
        return codec.decode(element)
    items = list(element)
    table = _table(items)
    return table if table is not None else [decode_tables(item) for item in items]


def decode_answers(element: etree._Element) -> Any:
    """A multiCall's answers: a list (even when every answer is a Map, such as faults),
    each answer through ``decode_tables``."""
    if not _is_array(element):
        return codec.decode(element)
    return [decode_tables(item) for item in element]


def _is_array(element: etree._Element) -> bool:
    """Whether ``codec.decode`` reads `element` as an Array (same tests, same order)."""
    xsi_type = element.get(_XSI_TYPE)
    if xsi_type is None:
        return False
    if element.text is None and not len(element) and element.get(_XSI_NIL) in _TRUE:
        return False
    local = xsi_type.rpartition(":")[2]
    if local == "Map" or local in codec.SCALAR_TYPES:
        return False
    return local in _ARRAYS or element.get(_ARRAY_TYPE) is not None


def _table(maps: list[etree._Element]) -> Table | None:
    """Maps into columns, each pair read as ``codec``'s Map decoding reads it; None when
    an item is not a Map."""
    rows = len(maps)
    columns: dict[str, list[str | None]] = {}
    for row, record in enumerate(maps):
        kind = record.get(_XSI_TYPE)
        if kind is None or kind.rpartition(":")[2] != "Map" or (
                not len(record) and record.text is None and record.get(_XSI_NIL) in _TRUE):
            return None  # not a Map, or nil: decode() says what it is
        for item in record:
            try:
                key, value = item
            except ValueError:  # not exactly <key/><value/>: as codec reads such a pair
                found = codec.irregular_pair(item)
                if found is None:
                    continue
                name, text = as_text(found[0]) or "", as_text(found[1])
            else:
                if key.tag != "key":
                    key, value = value, key
                # PHP's usual spelling first; anything else goes through decode().
                name = (key.text or "") if key.get(_XSI_TYPE) == "xsd:string" else (
                    as_text(codec.decode(key)) or "")
                kind = value.get(_XSI_TYPE)
                if kind == "xsd:string":
                    text = value.text or ""
                elif kind == "xsd:int":
                    text = str(int(value.text or ""))
                else:
                    text = as_text(codec.decode(value))
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * rows
            column[row] = text
    return Table(rows, columns)
