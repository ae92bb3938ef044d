"""The run report page: a real run's page in headless Chromium, escaping, secrets, size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from magsync.load.report import RecordsWriter, RunReport
from magsync.load.report_page import (
    EXAMPLES_PER_RULE,
    PageData,
    RuleFaults,
    render_page,
    write_page,
)
from magsync.transform.faults import Fault, Stage
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.synchelp import sync

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
VOID = frozenset({"meta", "br", "link", "img", "input", "hr"})
SENTINELS = {"password_hash": "SENTINELHASH0001:salt", "password": "SENTINELPLAIN0002",
             "rp_token": "SENTINELTOKEN0003", "confirmation": "SENTINELCONF0004"}


class Dom(HTMLParser):
    """Elements with their attributes and text, from Chromium's serialised DOM."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "children": []}
        if self._open:
            self._open[-1]["children"].append(element)
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        if any(el["tag"] == tag for el in self._open):
            while self._open.pop()["tag"] != tag:
                pass

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, Any]]:
        """Elements with this tag (any when None) and these attribute values."""
        return [el for el in self.elements if (tag is None or el["tag"] == tag)
                and all(el["attrs"].get(k.rstrip("_").replace("_", "-")) == v
                        for k, v in attrs.items())]


def rows(element: dict[str, Any]) -> list[list[str]]:
    """The cell texts of a table's rows (Chromium adds a tbody; raw HTML has none)."""
    found = []
    for child in element["children"]:
        if child["tag"] == "tr":
            found.append([c["text"] for c in child["children"] if c["tag"] in ("td", "th")])
        else:
            found += rows(child)
    return found


def chromium() -> str | None:
    """The Chromium binary, or a skip (a failure in CI) when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("MAGSYNC_REQUIRE_BROWSER") == "1":
            pytest.fail("MAGSYNC_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return found


def browse(page: Path, screenshot: Path) -> Dom:
    """The page's DOM as Chromium builds it; writes a screenshot."""
    binary = chromium()
    common = [str(binary), "--headless", "--no-sandbox", "--disable-gpu",
              f"--user-data-dir={screenshot.parent / 'chromium-profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True)
    subprocess.run([*common, f"--screenshot={screenshot}", "--window-size=1200,2000",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    return Dom(dom.stdout)


def two_runs(tmp_path: Path) -> dict[str, Any]:
    """A first full load, then a full run with updates, deletes and planted faults."""
    first = [customer_row(f"c{i}@example.com", first=f"F{i}", **SENTINELS,
                          **address_fields(city=f"City{i}")) for i in range(1, 11)]
    first.append(continuation(city="Second10"))
    out = tmp_path / "out"
    state, report = sync(write_csv(tmp_path / "v1.csv", first), out, full=True)
    assert state.is_completed(), state.message
    second = [customer_row(f"c{i}@example.com", first="Renamed" if i in (2, 3) else f"F{i}",
                           **SENTINELS, **address_fields(city="Moved" if i == 4 else f"City{i}"))
              for i in range(1, 10)]  # c10 is gone: deleted with its two addresses
    second += [customer_row(f"x{n}@example.com", first=text, dob=text, **SENTINELS)
               for n, text in enumerate(XSS)]
    second.append(customer_row("late@example.com", dob="31/31/2020", **SENTINELS))
    second.append(customer_row("not-an-email", **SENTINELS))
    state, report = sync(write_csv(tmp_path / "v2.csv", second), out, full=True,
                         allow_mass_delete=True, max_fault_ratio=0.9)
    assert state.is_completed(), state.message
    return report


def test_real_run_page_in_chromium(tmp_path: Path) -> None:
    summary = two_runs(tmp_path)
    folder = (Path(summary["output_dir"]) / "reports" / f"source={summary['source']}"
              / summary["run_id"])
    assert summary["counts"]["customer"]["updated"] == 2
    assert summary["counts"]["customer"]["deleted"] == 1
    assert summary["counts"]["address"]["deleted"] == 2
    shot = tmp_path / "page.png"
    dom = browse(folder / "index.html", shot)
    assert shot.stat().st_size > 10_000

    for entity, counts in summary["counts"].items():
        for action, n in counts.items():
            [cell] = dom.find("td", data_entity=entity, data_action=action)
            assert int(cell["text"]) == n, (entity, action)
    records = pq.read_table(folder / "records.parquet").to_pylist()
    faulted = [r for r in records if r["action"] == "faulted"]
    assert dom.find("td", data_rule="bad_date") and faulted
    shown_counts = {el["attrs"]["data-rule"]: int(el["text"]) for el in dom.find("td")
                    if "data-rule" in el["attrs"]}
    assert shown_counts == Counter(r["rule"] for r in faulted)
    for rule in shown_counts:
        [table] = dom.find("table", data_rule=rule)
        shown = rows(table)[1:]
        expected = [r for r in faulted if r["rule"] == rule][:EXAMPLES_PER_RULE]
        assert [(row[1], row[2], row[3]) for row in shown] == [
            (r["key"] or "", r["column"] or "", r["value"] or "") for r in expected]
        assert [row[5] for row in shown] == [f"{r['source']}:{r['source_line']}"
                                             for r in expected]
    changed = dom.find("table", id="changed")[0]["text"]
    assert "firstname" in changed and "city" in changed

    # planted markup is shown as text, never parsed into elements
    values = [el["text"] for el in dom.find("td") if el["attrs"].get("class") == "value"]
    for text in XSS:
        assert text in values
    assert not dom.find("script") and not dom.find("img")
    assert [el["attrs"]["content"] for el in dom.find("meta", http_equiv=(
        "Content-Security-Policy"))] == ["default-src 'none'; style-src 'unsafe-inline'; "
                                         "img-src data:"]
    html = (folder / "index.html").read_text(encoding="utf-8")
    for secret in SENTINELS.values():
        assert secret not in html
    hrefs = {el["attrs"]["href"] for el in dom.find("a") if "#" not in el["attrs"]["href"]}
    exports = {os.path.relpath(p, folder) for p in summary["exports"].values()}
    assert len(exports) == 3
    assert all(p.startswith("../../../exports/source=default/") for p in exports), exports
    assert hrefs >= {"records.csv", "records.parquet", *exports}, hrefs


def test_page_redacts_secrets_and_masks_passwords() -> None:
    summary = {"run_id": "r1", "status": "failed", "target":
               "postgresql+psycopg://etl:SENTINELDBPW@db/magento",
               "error": "cannot connect to mysql+pymysql://root:SENTINELDBPW@h/x",
               "counts": {"customer": {"faulted": 1}}, "notes": []}
    example = {"entity": "customer", "key": "k", "column": "password_hash",
               "value": "SENTINELHASH0001:salt", "message": "SENTINELHASH0001:salt is odd",
               "source": "https://u:SENTINELAPIKEY@shop/api", "source_line": 1}
    html = render_page(PageData(summary, [RuleFaults("odd", 1, ["customer"], [example])]))
    for secret in ("SENTINELDBPW", "SENTINELHASH0001", "SENTINELAPIKEY"):
        assert secret not in html
    assert "etl:***@db" in html and "&lt;redacted&gt;" in html


def test_refused_run_names_the_guard(tmp_path: Path) -> None:
    report = RunReport("r2", "csv", "in.csv", "sqlite:///x", "1", "full", False,
                       datetime.now(UTC), finished_at=datetime.now(UTC), status="refused",
                       error="customer: 7 of 10 stored records would be deleted (70.0% > "
                             "50%); rerun with --allow-mass-delete if that is intended")
    RecordsWriter(tmp_path, "r2").close()
    report.write_summary(tmp_path)
    html = write_page(tmp_path).read_text(encoding="utf-8")
    assert "delete ratio guard (max_delete_ratio)" in html
    assert "7 of 10 stored records would be deleted (70.0% &gt; 50%)" in html


def test_page_of_100k_faults_stays_small(tmp_path: Path) -> None:
    writer = RecordsWriter(tmp_path, "big")
    for start in range(0, 100_000, 10_000):
        writer.write_faults(
            Fault("customer", Stage.NORMALISE, f"rule_{i % 13}", f"bad value in row {i}",
                  key=f'[1,"c{i}@example.com"]', column="dob", value=f"{i}-" + "x" * 198,
                  source="/data/in/customers.csv", source_line=i + 2)
            for i in range(start, start + 10_000))
    writer.close()
    report = RunReport("big", "csv", "in", "sqlite:///x", "1", "full", False,
                       datetime.now(UTC), finished_at=datetime.now(UTC), status="done")
    report.count("customer", "faulted", 100_000)
    report.write_summary(tmp_path)
    page = write_page(tmp_path)
    assert page.stat().st_size < 1_000_000
    dom = Dom(page.read_text(encoding="utf-8"))
    counts = [int(el["text"]) for el in dom.find("td") if "data-rule" in el["attrs"]]
    assert sum(counts) == 100_000 and len(counts) == 13
    for table in dom.find("table", class_="examples"):
        assert len(rows(table)) == 1 + EXAMPLES_PER_RULE
    assert json.loads((tmp_path / "summary.json").read_text())["counts"] == {
        "customer": {"faulted": 100_000}}
