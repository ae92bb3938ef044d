"""The run report page: reports/<run_id>/index.html, one self-contained file.

Inline CSS and SVG, no script, a CSP that forbids fetching anything: it opens from a mail
attachment or a bucket. Every shown value goes through `html.escape`; secret columns are
redacted and URL passwords masked even if a caller forgot to. Records are aggregated with
Arrow (counts per rule, a few examples each), so the page stays small for any run size.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from magsync.load.report import RECORD_SCHEMA
from magsync.transform.faults import REDACTED
from magsync.transform.schema import ENTITIES, NEVER_READ

PAGE_NAME = "index.html"
EXAMPLES_PER_RULE = 20
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SECRET_COLUMNS = frozenset({c for e in ENTITIES.values() for c in e.secret_names}
                           | NEVER_READ | {"api_key"})
ACTION_ORDER = ("created", "updated", "restored", "deleted", "skipped", "unchanged", "faulted")
ENTITY_ORDER = ("group", "customer", "address")
EXAMPLE_COLUMNS = ("entity", "key", "column", "value", "message", "source", "source_line")
FAULT_COLUMNS = ("rule", *EXAMPLE_COLUMNS)
_URL_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]*:)[^@/\s]+@")
_GUARDS = (("max_fault_ratio", "fault ratio guard (max_fault_ratio)"),
           ("would be deleted", "delete ratio guard (max_delete_ratio)"))


@dataclass
class RuleFaults:
    """One fault rule: how many records it faulted, on which entities, a few examples."""

    rule: str
    count: int
    entities: list[str]
    examples: list[dict[str, Any]]


@dataclass
class PageData:
    """What the page shows, aggregated from summary.json and records.parquet."""

    summary: dict[str, Any]
    faults: list[RuleFaults] = field(default_factory=list)
    changed: list[tuple[str, str, int]] = field(default_factory=list)  # entity, column, n
    links: list[tuple[str, str]] = field(default_factory=list)  # label, relative href


def mask(text: str | None) -> str:
    """`text` with any password in a URL replaced by ***."""
    return "" if text is None else _URL_PASSWORD.sub(r"\g<head>***@", str(text))


def load_page_data(report_dir: Path) -> PageData:
    """Reads the run's summary.json and aggregates its records.parquet."""
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    data = PageData(summary)
    parquet = report_dir / "records.parquet"
    if parquet.is_file():
        faults, updated = read_records(parquet)
        data.faults = fault_groups(faults)
        data.changed = changed_columns(updated)
    data.links = report_links(report_dir, summary)
    return data


def read_records(parquet: Path) -> tuple[pa.Table, pa.Table]:
    """The faulted records (example columns) and the updated ones (entity and changed
    columns), a row group at a time; a group with neither (a first load's `created`
    rows) is skipped after reading its action column alone."""
    faults, updated = [], []
    wanted = pa.array(["faulted", "updated"])
    columns = ["action", "changed_fields", *FAULT_COLUMNS]
    file = pq.ParquetFile(parquet)
    for group in range(file.num_row_groups):
        actions = file.read_row_group(group, columns=["action"])["action"]
        if not pc.any(pc.is_in(actions, wanted)).as_py():
            continue
        table = file.read_row_group(group, columns=columns)
        faults.append(table.filter(pc.equal(table["action"], "faulted"))
                      .select(list(FAULT_COLUMNS)))
        updated.append(table.filter(pc.equal(table["action"], "updated"))
                       .select(["entity", "changed_fields"]))
    return (_concat(faults, FAULT_COLUMNS), _concat(updated, ("entity", "changed_fields")))


def _concat(tables: list[pa.Table], names: tuple[str, ...]) -> pa.Table:
    """The tables as one (empty with the right columns when there are none)."""
    if tables:
        return pa.concat_tables(tables)
    return pa.schema([RECORD_SCHEMA.field(n) for n in names]).empty_table()


def fault_groups(faults: pa.Table, examples: int = EXAMPLES_PER_RULE) -> list[RuleFaults]:
    """Faulted records grouped by rule, most frequent first, with the first examples."""
    if faults.num_rows == 0:
        return []
    rules = pc.fill_null(faults["rule"], "(no rule)").combine_chunks().dictionary_encode()
    codes = rules.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(codes, minlength=len(rules.dictionary))
    names = rules.dictionary.to_pylist()
    entities = faults["entity"].combine_chunks()
    out = []
    for code in sorted(range(len(names)), key=lambda c: (-counts[c], names[c])):
        rows = np.flatnonzero(codes == code)  # integer compares: fast for any run size
        found = pc.unique(entities.take(pa.array(rows))).drop_null().to_pylist()
        head = faults.take(pa.array(rows[:examples])).select(list(EXAMPLE_COLUMNS))
        out.append(RuleFaults(names[code], int(counts[code]), sorted(found), head.to_pylist()))
    return out


def changed_columns(updated: pa.Table) -> list[tuple[str, str, int]]:
    """(entity, column, times changed) over the updated records, most changed first."""
    if updated.num_rows == 0:
        return []
    names = pc.split_pattern(pc.fill_null(updated["changed_fields"], ""), ",")
    parents = pc.list_parent_indices(names)
    flat = pa.table({"entity": pc.take(updated["entity"], parents),
                     "column": pc.list_flatten(names)})
    flat = flat.filter(pc.not_equal(flat["column"], ""))
    ranked = flat.group_by(["entity", "column"]).aggregate([("column", "count")])
    ranked = ranked.sort_by([("column_count", "descending"), ("entity", "ascending"),
                             ("column", "ascending")])
    return list(zip(ranked["entity"].to_pylist(), ranked["column"].to_pylist(),
                    ranked["column_count"].to_pylist(), strict=True))


def report_links(report_dir: Path, summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Relative links to the records files, the Data Docs and the exports that exist."""
    targets = [("records.csv", report_dir / "records.csv"),
               ("records.parquet", report_dir / "records.parquet")]
    if summary.get("data_docs"):
        targets.append(("Data Docs", Path(summary["data_docs"])))
    targets += [(f"export: {entity}", Path(path))
                for entity, path in sorted((summary.get("exports") or {}).items())]
    links = []
    for label, path in targets:
        if not path.exists():
            continue
        try:
            rel = os.path.relpath(path.resolve(), report_dir.resolve())
        except ValueError:  # another drive: no relative path
            continue
        # '=' stays as it is: the per-store folders (source=<name>) read as they are named
        links.append((label, "/".join(quote(part, safe="=") for part in Path(rel).parts)))
    return links


def write_page(report_dir: Path) -> Path:
    """Renders the run's page from its folder and writes it atomically."""
    path = report_dir / PAGE_NAME
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_page(load_page_data(report_dir)), encoding="utf-8")
    tmp.replace(path)
    return path


# -- rendering ----------------------------------------------------------------------------

def e(value: Any) -> str:
    """A value as escaped HTML text (None as empty)."""
    return "" if value is None else escape(str(value), quote=True)


def render_page(data: PageData) -> str:
    """The whole page as one HTML string."""
    s = data.summary
    title = f"magsync run {s.get('run_id', '')}: {s.get('status', '')}"
    body = "".join([
        f"<h1>{e(title)}</h1>",
        _banner(s),
        _header(s),
        _counts(s),
        _faults(data.faults),
        _changed(data.changed),
        _timings(s.get("timings_s") or {}),
        _notes(s.get("notes") or []),
        _links(data.links),
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{e(CSP)}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{e(title)}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n")


def _banner(s: dict[str, Any]) -> str:
    status, error = s.get("status"), s.get("error")
    if status == "refused":
        guard = next((name for marker, name in _GUARDS if marker in (error or "")), "a guard")
        return (f"<div class=\"banner refused\" id=\"refused\"><strong>Refused by the "
                f"<span id=\"guard\">{e(guard)}</span></strong>: "
                f"<span id=\"guard-detail\">{e(mask(error))}</span></div>")
    if error:
        return f"<div class=\"banner failed\" id=\"error\">{e(mask(error))}</div>"
    return ""


def _duration(s: dict[str, Any]) -> str:
    try:
        took = (datetime.fromisoformat(s["finished_at"])
                - datetime.fromisoformat(s["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return ""
    return f"{took:.1f} s"


def _header(s: dict[str, Any]) -> str:
    rows = [("run", s.get("run_id")), ("status", s.get("status")),
            ("source", s.get("source")), ("input", mask(s.get("input"))),
            ("target", mask(s.get("target"))), ("mode", s.get("mode")),
            ("dry run", "yes" if s.get("dry_run") else "no"),
            ("started", s.get("started_at")), ("finished", s.get("finished_at")),
            ("duration", _duration(s)), ("version", s.get("version"))]
    cells = "".join(f"<tr><th>{e(k)}</th><td id=\"run-{e(k.replace(' ', '-'))}\">{e(v)}"
                    "</td></tr>" for k, v in rows)
    return f"<table class=\"header\">{cells}</table>"


def _counts(s: dict[str, Any]) -> str:
    counts: dict[str, dict[str, int]] = s.get("counts") or {}
    present = {a for c in counts.values() for a in c}
    actions = [a for a in ACTION_ORDER if a in present or a != "skipped"]
    actions += sorted(present - set(actions))
    entities = [n for n in ENTITY_ORDER if n in counts] + sorted(set(counts) - set(ENTITY_ORDER))
    head = "<tr><th>entity</th>" + "".join(f"<th>{e(a)}</th>" for a in actions) + "</tr>"
    rows = "".join(
        f"<tr><th>{e(ent)}</th>" + "".join(
            f"<td class=\"num\" data-entity=\"{e(ent)}\" data-action=\"{e(a)}\">"
            f"{int(counts[ent].get(a, 0))}</td>" for a in actions) + "</tr>"
        for ent in entities)
    return f"<h2>Records</h2><table id=\"counts\">{head}{rows}</table>"


def _faults(groups: list[RuleFaults]) -> str:
    if not groups:
        return "<h2>Faults</h2><p id=\"faults\">No faulted records.</p>"
    total = sum(g.count for g in groups)
    parts = [f"<h2>Faults</h2><p>{total} faulted record(s) under {len(groups)} rule(s); "
             f"up to {EXAMPLES_PER_RULE} examples each, all in records.csv.</p>"
             "<table id=\"fault-rules\"><tr><th>rule</th><th>records</th><th>entities</th>"
             "</tr>"]
    parts += [f"<tr><td><a href=\"#rule-{i}\">{e(g.rule)}</a></td><td class=\"num\" "
              f"data-rule=\"{e(g.rule)}\">{g.count}</td><td>{e(', '.join(g.entities))}</td>"
              "</tr>" for i, g in enumerate(groups)]
    parts.append("</table>")
    for i, g in enumerate(groups):
        parts.append(f"<h3 id=\"rule-{i}\">{e(g.rule)} <small>({g.count})</small></h3>"
                     f"<table class=\"examples\" data-rule=\"{e(g.rule)}\"><tr>"
                     "<th>entity</th><th>key</th><th>column</th><th>value</th>"
                     "<th>message</th><th>file:line</th></tr>")
        parts += [_example(row) for row in g.examples]
        parts.append("</table>")
    return "".join(parts)


def _example(row: dict[str, Any]) -> str:
    secret = row.get("column") in SECRET_COLUMNS
    value = REDACTED if secret and row.get("value") is not None else row.get("value")
    message = REDACTED if secret else row.get("message")
    where = mask(row.get("source"))
    if row.get("source_line") is not None:
        where = f"{where}:{row['source_line']}"
    cells = (row.get("entity"), row.get("key"), row.get("column"), value, message, where)
    names = ("entity", "key", "column", "value", "message", "where")
    return "<tr>" + "".join(f"<td class=\"{n}\">{e(v)}</td>"
                            for n, v in zip(names, cells, strict=True)) + "</tr>"


def _changed(changed: list[tuple[str, str, int]]) -> str:
    if not changed:
        return "<h2>Changed columns</h2><p id=\"changed\">No updated records.</p>"
    rows = "".join(f"<tr><td>{e(ent)}</td><td>{e(col)}</td><td class=\"num\">{n}</td></tr>"
                   for ent, col, n in changed)
    return ("<h2>Changed columns</h2><table id=\"changed\"><tr><th>entity</th>"
            f"<th>column</th><th>records</th></tr>{rows}</table>")


def _timings(timings: dict[str, float]) -> str:
    """Stage timings as a horizontal bar chart in inline SVG."""
    if not timings:
        return ""
    longest = max(*timings.values(), 1e-9)
    bar_h, label_w, bar_w = 22, 90, 360
    bars = []
    for i, (stage, secs) in enumerate(timings.items()):
        y = i * bar_h
        width = max(1.0, bar_w * float(secs) / longest)
        bars.append(f"<text x=\"0\" y=\"{y + 15}\">{e(stage)}</text>"
                    f"<rect x=\"{label_w}\" y=\"{y + 3}\" width=\"{width:.1f}\" height=\"16\" "
                    "class=\"bar\"/>"
                    f"<text x=\"{label_w + width + 6:.1f}\" y=\"{y + 15}\">{float(secs):.3f} s"
                    "</text>")
    height = bar_h * len(timings)
    return ("<h2>Stage timings</h2><svg id=\"timings\" role=\"img\" aria-label=\"stage "
            f"timings\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{label_w + bar_w + 90}\" "
            f"height=\"{height}\">{''.join(bars)}</svg>")


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{e(mask(n))}</li>" for n in notes)
    return f"<h2>Notes</h2><ul id=\"notes\">{items}</ul>"


def _links(links: list[tuple[str, str]]) -> str:
    if not links:
        return ""
    items = "".join(f"<li><a href=\"{e(href)}\">{e(label)}</a></li>" for label, href in links)
    return f"<h2>Files</h2><ul id=\"links\">{items}</ul>"


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:80em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.header th{background:#f4f4f4}
td.value,td.key{font-family:ui-monospace,monospace;word-break:break-all;max-width:30em}
.banner{padding:.6em 1em;margin:1em 0;border-radius:4px}
.refused{background:#fff3cd;border:1px solid #e0b000}
.failed{background:#fde2e1;border:1px solid #d33}
svg text{font:12px system-ui,sans-serif;fill:#222}
svg .bar{fill:#4a7fb5}
"""
