"""Cron expressions as Prefect's CronSchedule takes them: five fields, checked here so a
fleet file's mistake is found before anything is deployed."""

from __future__ import annotations

import re

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
NAMES = {3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
             "dec"),
         4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat")}
_PART = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")


def check_cron(expression: str) -> str:
    """The expression if it is a valid five-field cron, else ValueError saying why."""
    fields = expression.split()
    if len(fields) != len(FIELDS):
        raise ValueError(f"cron {expression!r}: five fields (minute hour day month "
                         f"weekday), not {len(fields)}")
    for index, (field, (what, low, high)) in enumerate(zip(fields, FIELDS, strict=True)):
        for part in field.lower().split(","):
            if not _part_ok(part, index, low, high):
                raise ValueError(f"cron {expression!r}: bad {what} field {field!r} "
                                 f"(values {low}-{high})")
    return expression


def _part_ok(part: str, index: int, low: int, high: int) -> bool:
    match = _PART.match(part)
    if match is None:
        return False
    span, step = match.groups()
    if step is not None and int(step) == 0:
        return False
    if span == "*":
        return True
    values = [_value(v, index) for v in span.split("-")]
    return all(v is not None and low <= v <= high for v in values) and values == sorted(
        values)  # type: ignore[type-var]


def _value(text: str, index: int) -> int | None:
    if text.isdigit():
        return int(text)
    names = NAMES.get(index, ())
    if text in names:
        return names.index(text) + (1 if index == 3 else 0)
    return None
