"""The reading progress: the meter's arithmetic and its line as pure functions, bytes
counted as the CSV reader takes them (compressed bytes for gzip), and the line on a real
pseudo-terminal, never without one or with --quiet. The runs are forked from the CLI
launcher (tests/launcher.py): what is tested is where the output goes, not start-up."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import pytest

from magsync.extract.csv_source import CsvSource
from magsync.extract.progress import (
    CLEAR,
    Meter,
    Snapshot,
    TerminalLine,
    duration,
    meter_for,
    metered,
    render,
    size,
)
from tests.csvbuild import address_fields, customer_row, write_csv
from tests.launcher import Launcher

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("n", "shown"), [(0, "0 B"), (999, "999 B"), (1000, "1.0 KB"),
                                          (1_234_567, "1.2 MB"), (5e12, "5.0 TB")])
def test_size(n: float, shown: str) -> None:
    assert size(n) == shown


@pytest.mark.parametrize(("secs", "shown"), [(0, "0:00"), (59.6, "1:00"), (61, "1:01"),
                                             (3600, "1:00:00"), (3725, "1:02:05")])
def test_duration(secs: float, shown: str) -> None:
    assert duration(secs) == shown


def test_meter_arithmetic() -> None:
    clock = Clock()
    read = [0]
    meter = Meter(bytes_read=lambda: read[0], bytes_total=1_000_000, clock=clock)
    meter.add("customer", 300)
    meter.add("address", 50)
    meter.add("customer", 200)
    clock.now += 4
    read[0] = 250_000
    snap = meter.snapshot()
    assert snap.rows == {"customer": 500, "address": 50}
    assert snap.elapsed == 4
    assert snap.fraction == 0.25
    assert snap.byte_rate == 62_500
    assert snap.eta == 12  # 750 kB left at 62.5 kB/s
    assert snap.row_rate("customer") == 125
    assert snap.row_rate("group") == 0


def test_snapshot_without_size_or_time() -> None:
    assert Snapshot(0, {}).fraction is None
    assert Snapshot(0, {}, bytes_read=10, bytes_total=0).fraction is None
    assert Snapshot(0, {}, bytes_read=10).eta is None
    assert Snapshot(0, {"customer": 5}).row_rate("customer") is None
    assert Snapshot(2, {}, bytes_read=30, bytes_total=20).fraction == 1.0


def test_render_a_csv_read() -> None:
    snap = Snapshot(4, {"customer": 12_345, "address": 678}, bytes_read=250_000,
                    bytes_total=1_000_000)
    assert render(snap) == ("reading: customer 12,345  address 678  250.0 KB of 1.0 MB "
                            "(25%)  62.5 KB/s  ETA 0:12")


def test_render_a_soap_read() -> None:
    snap = Snapshot(10, {"group": 4, "customer": 4_000, "address": 7_000}, pages=8)
    assert render(snap) == ("reading: group 4  customer 4,000  address 7,000  8 pages  "
                            "400 customers/s")
    assert render(Snapshot(0, {}, pages=1)) == "reading: 1 page"


def test_render_fits_the_terminal() -> None:
    snap = Snapshot(4, {"customer": 12_345, "address": 678}, bytes_read=1, bytes_total=9)
    line = render(snap, width=30)
    assert len(line) == 29 and line.endswith("…")


def test_terminal_line_redraws_at_most_every_interval_and_clears() -> None:
    clock = Clock()
    out = io.StringIO()
    line = TerminalLine(out, width=80, interval=0.25, clock=clock)
    line.clear()
    assert out.getvalue() == ""  # nothing drawn, nothing to clear
    for rows in (1, 2, 3):
        line.show(Snapshot(1, {"customer": rows}))
        clock.now += 0.1
    clock.now += 0.1
    line.show(Snapshot(1, {"customer": 4}))
    line.clear()
    assert out.getvalue() == ("\rreading: customer 1\x1b[K" "\rreading: customer 4\x1b[K"
                              + CLEAR)


def small_export(folder: Path, customers: int = 200) -> Path:
    folder.mkdir()
    rows = [customer_row(f"c{i}@example.com", **address_fields()) for i in range(customers)]
    return write_csv(folder / "customers.csv", rows)


@pytest.mark.parametrize("gzipped", [False, True])
def test_bytes_are_counted_as_the_reader_takes_them(tmp_path: Path, gzipped: bool) -> None:
    path = small_export(tmp_path / "in")
    if gzipped:
        data = path.read_bytes()
        path.unlink()
        path = path.with_suffix(".csv.gz")
        path.write_bytes(gzip.compress(data))
    source = CsvSource(path.parent, batch_size=20, website_codes={"base": 1},
                       block_bytes=1024)
    assert source.bytes.total == path.stat().st_size  # compressed bytes for gzip
    meter = meter_for(source)
    seen: list[Snapshot] = []
    batches = list(metered(source, meter, seen.append))
    assert [s.bytes_read for s in seen] == sorted(s.bytes_read or 0 for s in seen)
    assert seen[-1].bytes_read == source.bytes.total
    assert seen[-1].rows == {"customer": 200, "address": 200}
    assert len(batches) == len(seen)
    if not gzipped:
        assert seen[0].bytes_read < source.bytes.total  # counted as read, not at open


def sample_args(out: Path, *more: str) -> list[str]:
    return ["sync", "--input", str(SAMPLE), "--full", "--output-dir", str(out),
            "--batch-size", "100", *more]


def on_terminal(launcher: Launcher, *args: str) -> str:
    """`magsync ARGS` with its stdout and stderr on a pseudo-terminal; all it wrote."""
    code, shown = launcher.run_on_terminal(*args)
    assert code == 0, shown
    return shown


def test_progress_line_on_a_terminal(cli_launcher: Launcher, tmp_path: Path) -> None:
    shown = on_terminal(cli_launcher, *sample_args(tmp_path / "out"))
    assert "\rreading: " in shown
    assert "customer " in shown.split("\rreading: ", 1)[1]
    assert " of " in shown and "ETA" in shown  # bytes of a known size
    assert CLEAR in shown  # erased once reading ends
    table = re.search(r"run \S+: done", shown)
    assert table is not None
    assert shown.index(CLEAR) < table.start()  # erased before the end-of-run table
    quiet = on_terminal(cli_launcher, *sample_args(tmp_path / "quiet", "--quiet"))
    assert "reading: " not in quiet and "\x1b[K" not in quiet
    assert "customer" in quiet  # the table still shows


def test_no_progress_line_without_a_terminal(cli_launcher: Launcher, tmp_path: Path) -> None:
    done = cli_launcher.run(*sample_args(tmp_path / "out"), logs=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reading: " not in done.stderr + done.stdout
    assert "\r" not in done.stderr and "\x1b" not in done.stderr


def test_soap_pages_and_customers_are_metered() -> None:
    from magsync.magento.emulator import run_emulator
    from tests.test_soap_sync import KEY, simple_store, source_for

    with run_emulator(simple_store(list(range(1, 36))), users={"etl": KEY}) as emu:
        source = source_for(emu.url)  # windows of 10 ids: 4 full pages, then empty probes
        seen: list[Snapshot] = []
        meter = meter_for(source)
        list(metered(source, meter, seen.append))
    pages = [s.pages or 0 for s in seen]
    assert pages == sorted(pages) and pages[-1] >= 4
    assert meter.snapshot().pages == source.requests["customer.list"]  # the probes after
    assert seen[-1].rows["customer"] == 35 and seen[-1].rows["address"] == 35
    assert seen[-1].bytes_read is None and seen[-1].fraction is None
    assert f"{seen[-1].pages} pages" in render(seen[-1])


def test_a_log_line_erases_the_progress_line_first() -> None:
    import logging

    from magsync.flows.watch import logs_clear

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("magsync")
    logger.addHandler(handler)
    try:
        line = TerminalLine(out, width=80, interval=0)
        with logs_clear(line):
            line.show(Snapshot(1, {"customer": 1}))
            logger.warning("something happened")
            line.show(Snapshot(1, {"customer": 2}))
        logger.warning("after reading")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == ("\rreading: customer 1\x1b[K" + CLEAR + "something happened\n"
                              "\rreading: customer 2\x1b[K" "after reading\n")
