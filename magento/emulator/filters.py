"""customer.list filters: Magento's collection conditions evaluated over in-memory rows.

`{field: value}` is `eq`; `{field: {op: value}}` takes `from`/`to` together (both
inclusive), else the first known operator; a list of conditions is their OR (Magento's
prepareSqlCondition). Comparisons follow MySQL: NULL matches only `null`, integer columns
compare as numbers, strings under a case- and accent-insensitive collation, dates as
'YYYY-MM-DD HH:MM:SS' strings (an unparseable date is MySQL's zero date).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from magsync.magento.emulator.faults import ApiFault
from magsync.magento.emulator.fields import (
    CUSTOMER_FIELDS,
    CUSTOMER_INTS,
    DATE_FIELDS,
    collate,
    parse_datetime,
    php_string,
)

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

# Static columns of customer_entity that are no API attribute but still filter.
_CONSTANT_COLUMNS: dict[str, int] = {"entity_type_id": 1, "attribute_set_id": 0}
_FILTERABLE = frozenset(CUSTOMER_FIELDS) | frozenset(_CONSTANT_COLUMNS)
_OPERATORS = frozenset(
    {
        "eq",
        "neq",
        "like",
        "nlike",
        "in",
        "nin",
        "notnull",
        "null",
        "gt",
        "lt",
        "gteq",
        "lteq",
        "finset",
        "regexp",
        "from",
        "to",
        "seq",
        "sneq",
    }
)
_ZERO_DATE = "0000-00-00 00:00:00"


def compile_filters(filters: Any) -> Predicate:
    """Turn customer.list's filters argument into a row predicate; 101 on an unknown field."""
    if isinstance(filters, list):
        filters = {str(i): v for i, v in enumerate(filters)}
    if not isinstance(filters, Mapping):
        return lambda row: True  # PHP's foreach over a non-array: no filter at all
    predicates: list[Predicate] = []
    for field, condition in filters.items():
        name = "customer_id" if field in ("customer_id", "entity_id") else str(field)
        if name not in _FILTERABLE:
            raise ApiFault("101", f"Invalid attribute name: {field}")
        predicates.append(_condition(name, condition))
    return lambda row: all(p(row) for p in predicates)


def id_bounds(filters: Any) -> tuple[float, float]:
    """Inclusive bounds a customer_id condition puts on ids, to skip rows outside a window."""
    low, high = -math.inf, math.inf
    if not isinstance(filters, Mapping):
        return low, high
    for field, condition in filters.items():
        if field not in ("customer_id", "entity_id") or not isinstance(condition, Mapping):
            continue
        if condition.get("from") is None and condition.get("to") is None:
            continue  # other operators: no narrowing, the predicate decides
        if condition.get("from") is not None:
            low = max(low, _number(condition["from"]))
        if condition.get("to") is not None:
            high = min(high, _number(condition["to"]))
    return low, high


def _condition(field: str, condition: Any) -> Predicate:
    """One field's condition."""
    if isinstance(condition, list):
        parts = [_condition(field, c) for c in condition]
        return lambda row: any(p(row) for p in parts)
    if not isinstance(condition, Mapping):
        return _operator(field, "eq", "" if condition is None else condition)
    if condition.get("from") is not None or condition.get("to") is not None:
        bounds = [
            _operator(field, op, condition[op])
            for op in ("from", "to")
            if condition.get(op) is not None
        ]
        return lambda row: all(p(row) for p in bounds)
    for key, value in condition.items():
        if key in _OPERATORS:
            return _operator(field, key, value)
    return lambda row: False  # no known operator: matches none (see README)


def _operator(field: str, op: str, operand: Any) -> Predicate:
    """A predicate for one operator on one field."""
    if op in ("seq", "sneq"):
        empty = operand is None or operand == ""
        op = ("null" if op == "seq" else "notnull") if empty else op[1:]
    if op == "null":
        return lambda row: _value(row, field) is None
    if op == "notnull":
        return lambda row: _value(row, field) is not None
    if op in ("like", "nlike"):
        pattern = _like_regex(php_string(operand))
        want = op == "like"
        return _guard(field, lambda v: bool(pattern.fullmatch(_as_text(v))) == want)
    if op == "regexp":
        return _regexp(field, operand)
    if op == "finset":
        needle = collate(php_string(operand))
        return _guard(field, lambda v: needle in [collate(p) for p in _as_text(v).split(",")])
    if op in ("in", "nin"):
        items = operand if isinstance(operand, list) else [operand]
        keys = {_key(field, i) for i in items}
        if op == "in":
            return _guard(field, lambda v: _key(field, v) in keys)
        return _guard(field, lambda v: _key(field, v) not in keys)
    return _compare(field, op, _key(field, operand))


def _compare(field: str, op: str, right: Any) -> Predicate:
    """eq, neq, gt, lt, gteq, lteq, from (>=) and to (<=)."""
    tests: dict[str, Callable[[Any], bool]] = {
        "eq": lambda left: left == right,
        "neq": lambda left: left != right,
        "gt": lambda left: left > right,
        "lt": lambda left: left < right,
        "gteq": lambda left: left >= right,
        "from": lambda left: left >= right,
        "lteq": lambda left: left <= right,
        "to": lambda left: left <= right,
    }
    test = tests[op]
    return _guard(field, lambda v: test(_key(field, v)))


def _regexp(field: str, operand: Any) -> Predicate:
    """MySQL REGEXP: a case-insensitive search; a bad pattern matches nothing."""
    try:
        pattern = re.compile(php_string(operand), re.IGNORECASE)
    except re.error:
        return lambda row: False
    return _guard(field, lambda v: pattern.search(_as_text(v)) is not None)


def _guard(field: str, test: Callable[[Any], bool]) -> Predicate:
    """Apply a test to the row's value; SQL NULL never satisfies a comparison."""

    def predicate(row: Row) -> bool:
        value = _value(row, field)
        return value is not None and test(value)

    return predicate


def _value(row: Row, field: str) -> Any:
    """The row's value of a field, constant columns included."""
    if field in _CONSTANT_COLUMNS:
        return _CONSTANT_COLUMNS[field]
    return row.get(field)


def _key(field: str, value: Any) -> Any:
    """The comparison key of a value under the field's column type."""
    if field in CUSTOMER_INTS or field in _CONSTANT_COLUMNS:
        return _number(value)
    text = php_string(value)
    if field in DATE_FIELDS:
        parsed = parse_datetime(text)
        return _ZERO_DATE if parsed is None else parsed.strftime("%Y-%m-%d %H:%M:%S")
    return collate(text)


def _number(value: Any) -> float:
    """MySQL's numeric reading of a value: the leading number of a string, else 0."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    match = re.match(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", php_string(value))
    return float(match.group()) if match else 0.0


def _as_text(value: Any) -> str:
    """A value as the string LIKE and REGEXP see."""
    return php_string(value)


def _like_regex(pattern: str) -> re.Pattern[str]:
    """Translate an SQL LIKE pattern (%, _, backslash escapes) to a regex, case-insensitive."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
