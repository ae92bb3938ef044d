"""A run's report in brief, for an orchestrator's UI: the counts as a Markdown table with
a link to the report page, and the faults as rows per rule and entity with a few
example keys. Built from the run's folder (summary.json, records.parquet) as the page
is, with the page's redaction: a secret column's value never shows, URL passwords are
masked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from magsync.load.report_page import (
    ACTION_ORDER,
    ENTITY_ORDER,
    PAGE_NAME,
    SECRET_COLUMNS,
    mask,
    read_records,
)
from magsync.transform.faults import REDACTED

COUNT_ACTIONS = ("created", "updated", "restored", "deleted", "unchanged", "faulted")
EXAMPLE_KEYS = 3
VALUE_CHARS = 80
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|<>~])")


def md(text: Any) -> str:
    """`text` as literal Markdown: special characters escaped, on one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def page_url(report_dir: Path) -> str:
    """The report page as a file:// URL (it opens on the machine that wrote it)."""
    return (report_dir / PAGE_NAME).resolve().as_uri()


def count_actions(summary: dict[str, Any]) -> list[str]:
    """The usual six columns, then any other action the run counted (skipped, warning)."""
    present = {a for counts in (summary.get("counts") or {}).values() for a in counts}
    extra = [a for a in ACTION_ORDER if a in present and a not in COUNT_ACTIONS]
    return [*COUNT_ACTIONS, *extra, *sorted(present - set(COUNT_ACTIONS) - set(extra))]


def summary_markdown(summary: dict[str, Any], report_dir: Path) -> str:
    """The run's status, its counts per entity and action, and the report page's link."""
    counts: dict[str, dict[str, int]] = summary.get("counts") or {}
    actions = count_actions(summary)
    entities = [e for e in ENTITY_ORDER if e in counts] + sorted(set(counts) - set(ENTITY_ORDER))
    lines = [f"## magsync run {md(summary.get('run_id', ''))}: {md(summary.get('status', ''))}",
             "", "| entity | " + " | ".join(actions) + " |",
             "|---|" + "---:|" * len(actions)]
    lines += ["| " + md(e) + " | " + " | ".join(str(int(counts[e].get(a, 0))) for a in actions)
              + " |" for e in entities]
    if summary.get("error"):
        lines += ["", f"**Error:** {md(mask(summary['error']))}"]
    notes = summary.get("notes") or []
    if notes:
        lines += ["", "**Notes:**", *(f"- {md(mask(note))}" for note in notes)]
    url = page_url(report_dir)
    lines += ["", f"Report page: [{md(report_dir.name + '/' + PAGE_NAME)}]({url}) "
              "(a file:// link: it opens on the machine that ran magsync, where the file is "
              f"`{(report_dir / PAGE_NAME).resolve()}`)"]
    return "\n".join(lines) + "\n"


def fault_rows(report_dir: Path, examples: int = EXAMPLE_KEYS) -> list[dict[str, Any]]:
    """The run's faulted records per rule and entity, most first: how many, which column,
    up to `examples` keys (a keyless record as its file line) and one value, redacted
    when its column is secret."""
    parquet = report_dir / "records.parquet"
    if not parquet.is_file():
        return []
    faults, _ = read_records(parquet)
    if faults.num_rows == 0:
        return []
    faults = faults.set_column(0, "rule", pc.fill_null(faults["rule"], "(no rule)"))
    ranked = faults.group_by(["rule", "entity"], use_threads=False).aggregate(
        [("rule", "count")]).sort_by([("rule_count", "descending"), ("rule", "ascending"),
                                      ("entity", "ascending")])
    rows = []
    for rule, entity, count in zip(ranked["rule"].to_pylist(), ranked["entity"].to_pylist(),
                                   ranked["rule_count"].to_pylist(), strict=True):
        mine = faults.filter(pc.and_(pc.equal(faults["rule"], rule),
                                     _same(faults["entity"], entity)))
        head = mine.slice(0, examples).to_pylist()
        rows.append({"rule": rule, "entity": entity, "records": int(count),
                     "column": head[0].get("column") or "",
                     "example keys": ", ".join(_example_key(r) for r in head),
                     "example value": _shown_value(head[0])})
    return rows


def _same(column: pa.ChunkedArray, value: str | None) -> pa.ChunkedArray:
    """Rows of `column` equal to `value` (null matches null)."""
    if value is None:
        return pc.is_null(column)
    return pc.fill_null(pc.equal(column, value), False)


def _example_key(row: dict[str, Any]) -> str:
    if row.get("key"):
        return str(row["key"])
    line = row.get("source_line")
    return f"(no key: line {line})" if line is not None else "(no key)"


def _shown_value(row: dict[str, Any]) -> str:
    """An example's value as the report page shows it: redacted for a secret column."""
    value = row.get("value")
    if value is None:
        return ""
    if row.get("column") in SECRET_COLUMNS:
        return REDACTED
    text = mask(" ".join(str(value).split()))
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def read_summary(report_dir: Path) -> dict[str, Any]:
    """The run's summary.json."""
    summary: dict[str, Any] = json.loads((report_dir / "summary.json").read_text("utf-8"))
    return summary
