"""Bad input never loses data silently: the `magsync` command on every file of
tests/bad_inputs/, each case's expected outcome as in tests/bad_inputs/README.md.

Every case starts from 8 customers with 20 addresses (the start of data/sample), so each
run must account for every planted record: loaded (created, updated, restored or
unchanged) plus faulted equals what the file holds, per entity.

A `magsync` process spends most of its time importing (Great Expectations, pandas:
4-7 s here), which over 40 runs would cost minutes. So the cases run through a launcher
(tests/launcher.py): one process imports the CLI once, then forks a fresh child per run
that does what the console script does, `sys.exit(flows.cli.main())`, with its own
stdout, stderr and exit code (an uncaught exception prints its Traceback as it would from
the shell).
`--version` and `--ful` go through the installed `magsync` script itself.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tests.launcher import Launcher
from tests.prefect_server import PrefectServer
from tests.servers import target_for
from tests.synchelp import REPORTS
from tests.test_cli import magsync

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).resolve().parent / "bad_inputs"
DIALECTS = ("sqlite", "postgresql", "mariadb")
LOADED = ("created", "updated", "restored", "unchanged")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FAULTS_OK = ("--max-fault-ratio", "1")  # the cases check faults, not the run's threshold


@dataclass(frozen=True)
class Outcome:
    """What a run did, in the terms a case states: counts and faulted records."""

    counts: dict[str, tuple[int, int]]  # entity -> (loaded, faulted)
    faults: list[tuple[str, str, int | None]]  # (entity, rule, source_line), sorted
    read: dict[str, int | None]  # the summary's records read per entity, when it has them


@dataclass(frozen=True)
class Run:
    """One finished `magsync sync`: its process, report folder and target."""

    proc: Any
    out: Path
    target: str

    @property
    def report_dir(self) -> Path:
        """The run's report folder."""
        return next((self.out / REPORTS).iterdir())

    def summary(self) -> dict[str, Any]:
        """summary.json."""
        data: dict[str, Any] = json.loads((self.report_dir / "summary.json").read_text())
        return data

    def records(self) -> list[dict[str, str]]:
        """records.csv, as a spreadsheet would read it."""
        with (self.report_dir / "records.csv").open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))

    def outcome(self) -> Outcome:
        """Counts per entity and the faulted records."""
        summary = self.summary()["counts"]
        counts = {e: (sum(summary.get(e, {}).get(a, 0) for a in LOADED),
                      summary.get(e, {}).get("faulted", 0)) for e in ("customer", "address")}
        faults = sorted((r["entity"], r["rule"], int(r["source_line"]) if r["source_line"]
                         else None) for r in self.records() if r["action"] == "faulted")
        read = {e: summary.get(e, {}).get("read") for e in ("customer", "address")}
        return Outcome(counts, faults, read)

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the target."""
        engine = sa.create_engine(self.target)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()


Check = Callable[[Run], None]


@dataclass(frozen=True)
class Case:
    """One row of tests/bad_inputs/README.md."""

    name: str
    path: str  # under tests/bad_inputs/
    exit_code: int
    customers: tuple[int, int] = (8, 0)  # (loaded, faulted), when the run exits 0
    addresses: tuple[int, int] = (20, 0)
    rules: tuple[tuple[str, str], ...] = ()  # (entity, rule) faulted at least once
    lines: tuple[tuple[str, str, int], ...] = ()  # (entity, rule, line) faulted exactly so
    message: str = ""  # in the `magsync:` line (failures), else in what the run printed
    args: tuple[str, ...] = ()
    dialects: tuple[str, ...] = ("sqlite",)
    check: Check | None = None


def customer(run: Run, email: str, column: str) -> Any:
    """One column of an active customer on the target."""
    rows = run.query(f"SELECT {column} FROM customers WHERE email = :e AND deleted_at IS NULL",
                     e=email)
    assert len(rows) == 1, (email, rows)
    return rows[0][0]


def check_literal_quote(run: Run) -> None:
    assert customer(run, "sarah.young2@example.net", "lastname") == 'O"Neil'


def check_last_wins(run: Run) -> None:
    assert customer(run, "sarah.young2@example.net", "firstname") == "Sarah-Later"
    key = customer(run, "sarah.young2@example.net", "record_key")
    streets = run.query("SELECT street FROM customer_addresses WHERE customer_key = :k "
                        "AND deleted_at IS NULL", k=key)
    assert streets == [("1 Later Street",)]


def check_cp1252_decoded(run: Run) -> None:
    assert customer(run, "sophie.smith1@example.com", "firstname") == "Renée"


def check_zero_date_is_null(run: Run) -> None:
    assert customer(run, "betty.schmidt3@example.com", "dob") is None


def check_txt_noted(run: Run) -> None:
    notes = [line for line in run.proc.stdout.splitlines() if line.startswith("note:")]
    assert any("notes.txt" in line for line in notes), run.proc.stdout
    assert any("notes.txt" in note for note in run.summary()["notes"])


def check_spreadsheet_safe(run: Run) -> None:
    raw = (run.report_dir / "records.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "records.csv must be UTF-8 with a BOM"
    cells = [cell for row in run.records() for cell in row.values()]
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    assert {"'=HYPERLINK(\"y\")", "'@evil.example.com", "'-1", "'+cmd"} <= set(cells)
    kept = pq.read_table(run.report_dir / "records.parquet").column("value").to_pylist()
    assert '=HYPERLINK("y")' in kept, "records.parquet keeps the true value"
    exported = pq.read_table(run.summary()["exports"]["customer"]).column("firstname")
    assert '=HYPERLINK("x")' in exported.to_pylist(), "exports keep the true value"


def customer3_faults(name: str, path: str, **more: Any) -> Case:
    """A case where customer 3 faults, with its two addresses, and the rest loads."""
    return Case(name, path, 0, customers=(7, 1), addresses=(18, 2), args=FAULTS_OK, **more)


def value_case(name: str, rule: str) -> Case:
    """Customer 3 holds a value no target can store: it faults alike on every dialect."""
    return customer3_faults(name, f"{name}.csv", rules=(("customer", rule),),
                            dialects=DIALECTS)


CASES: list[Case] = [
    # Standard CSV semantics
    Case("quote_in_field", "quote_in_field.csv", 0, check=check_literal_quote),
    Case("field_count", "field_count.csv", 0, customers=(7, 1), addresses=(17, 3),
         lines=(("customer", "field_count", 11),), args=FAULTS_OK),
    Case("unterminated_quote", "unterminated_quote.csv", 0, customers=(7, 1),
         addresses=(18, 1), lines=(("customer", "unterminated_quote", 22),), args=FAULTS_OK),
    Case("duplicate_key", "duplicate_key.csv", 0, customers=(8, 1), addresses=(18, 3),
         lines=(("customer", "duplicate_key", 5),), args=FAULTS_OK, check=check_last_wins),
    # Formats
    Case("missing_website", "missing_website.csv", 2, message="_website"),
    Case("upper_header", "upper_header.csv", 0),
    Case("gzip", "customers.csv.gz", 0),
    Case("gzip_named_csv", "gzip_named_csv.csv", 0),
    Case("utf16_bom", "utf16_bom.csv", 0),
    Case("cp1252", "cp1252.csv", 0, customers=(7, 1), addresses=(18, 2),
         rules=(("customer", "encoding"),), message="--encoding", args=FAULTS_OK),
    Case("cp1252_encoding_option", "cp1252.csv", 0, args=("--encoding", "cp1252"),
         check=check_cp1252_decoded),
    Case("semicolon", "semicolon.csv", 2, message="--delimiter"),
    Case("semicolon_delimiter_option", "semicolon.csv", 0, args=("--delimiter", ";")),
    Case("folder_with_txt", "folder_with_txt", 0, check=check_txt_noted),
    Case("empty", "empty.csv", 2),
    Case("bom_only", "bom_only.csv", 2),
    Case("duplicate_header", "duplicate_header.csv", 2, message="firstname"),
    Case("html_page", "html_page.csv", 2),
    # Values the target cannot hold: faults, the same on every dialect
    value_case("nul_in_name", "control_character"),
    value_case("control_character", "control_character"),
    value_case("long_email", "too_long"),
    value_case("long_name", "too_long"),
    # Codes
    customer3_faults("unknown_website", "unknown_website.csv"),
    customer3_faults("website_mismatch", "website_mismatch.csv"),
    Case("zero_date", "zero_date.csv", 0, check=check_zero_date_is_null),
    # Spreadsheet safety
    Case("formula_values", "formula_values.csv", 0, customers=(4, 4), addresses=(10, 10),
         rules=(("customer", "unknown_gender"), ("customer", "email_syntax"),
                ("customer", "bad_date")), args=FAULTS_OK, check=check_spreadsheet_safe),
    # More of the kind real exports carry
    Case("crlf", "crlf.csv", 0),
    # An empty line is skipped; a line of spaces is a record, as csv.reader reads it: one
    # field where the header has many, so a field_count fault at its line, not a silence.
    Case("trailing_blank_lines", "trailing_blank_lines.csv", 0, addresses=(20, 1),
         lines=(("address", "field_count", 26),), args=FAULTS_OK),
    Case("no_final_newline", "no_final_newline.csv", 0),
    Case("trailing_comma", "trailing_comma.csv", 0, addresses=(19, 1),
         lines=(("address", "field_count", 6),), args=FAULTS_OK),
    Case("spaced_header", "spaced_header.csv", 0),
    Case("long_multiline_street", "long_multiline_street.csv", 0, customers=(7, 1),
         addresses=(18, 2), lines=(("customer", "bad_date", 52),), args=FAULTS_OK),
]


@pytest.fixture
def launcher(cli_launcher: Launcher) -> Launcher:
    """The session's launcher: untracked, so no run needs a Prefect server."""
    return cli_launcher


def sync(launcher: Launcher, case: Case, out: Path, target: str) -> Run:
    """Runs `magsync sync` on the case's input; checks what every run must hold."""
    proc = launcher.run("sync", "--input", str(CORPUS / case.path), "--full",
                        "--output-dir", str(out), "--target", target, *case.args,
                        logs=out.parent)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == case.exit_code, proc.stdout[-2000:] + proc.stderr[-3000:]
    return Run(proc, out, target)


def check_failure(case: Case, run: Run) -> None:
    """A failed run says why in exactly one `magsync:` line."""
    lines = [line for line in run.proc.stderr.splitlines() if line.startswith("magsync:")]
    assert len(lines) == 1, run.proc.stderr[-3000:]
    assert case.message.lower() in lines[0].lower(), lines[0]


def check_outcome(case: Case, run: Run) -> Outcome:
    """Counts, conservation, fault rules and lines, the message and the case's own check."""
    outcome = run.outcome()
    assert outcome.counts == {"customer": case.customers, "address": case.addresses}, \
        outcome
    for entity, read in outcome.read.items():
        if read is not None:  # conservation as the run itself counts it
            assert read == sum(outcome.counts[entity]), (entity, outcome)
    faulted = Counter((e, r) for e, r, _ in outcome.faults)
    for entity, rule in case.rules:
        assert faulted[(entity, rule)] >= 1, (entity, rule, outcome.faults)
    for entity, rule, line in case.lines:
        assert (entity, rule, line) in outcome.faults, (entity, rule, line, outcome.faults)
    if case.message:
        said = run.proc.stdout + run.proc.stderr + " ".join(
            r["message"] for r in run.records())
        assert case.message in said, said[-3000:]
    if case.check is not None:
        case.check(run)
    return outcome


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, launcher: Launcher, tmp_path: Path) -> None:
    outcomes = {}
    for dialect in case.dialects:
        out = tmp_path / dialect / "out"
        out.mkdir(parents=True)
        with target_for(dialect, str(out)) as url:
            run = sync(launcher, case, out, url)
            if case.exit_code:
                check_failure(case, run)
                return
            outcomes[dialect] = check_outcome(case, run)
    first = outcomes[case.dialects[0]]
    for dialect, outcome in outcomes.items():
        assert outcome == first, (dialect, outcome, first)


def test_every_corpus_file_has_a_case() -> None:
    helpers = {"README.md", "make_corpus.py"}
    on_disk = {p.name for p in CORPUS.iterdir() if p.name not in helpers
               and not p.name.startswith(".") and p.name != "__pycache__"}
    assert on_disk == {c.path for c in CASES}


def test_readme_lists_every_case() -> None:
    rows = {}
    for line in (CORPUS / "README.md").read_text(encoding="utf-8").splitlines():
        found = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|\s*`([^`]+)`\s*\|\s*(\d)\s*\|", line)
        if found:
            rows[found[1]] = (found[2].rstrip("/"), int(found[3]))
    assert rows == {c.name: (c.path, c.exit_code) for c in CASES}


def test_abbreviated_option_is_rejected(untracked: PrefectServer, tmp_path: Path) -> None:
    run = magsync(untracked, "sync", "--input", str(CORPUS / "crlf.csv"), "--ful",
                  "--output-dir", str(tmp_path / "out"))
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "--ful" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out" / REPORTS).exists(), "--ful must not start a run"


def test_version(untracked: PrefectServer) -> None:
    from importlib.metadata import version

    run = magsync(untracked, "--version")
    assert run.returncode == 0, run.stderr[-2000:]
    assert version("magsync") in run.stdout + run.stderr
