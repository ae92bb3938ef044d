"""The stray-quote bench at 300 customers: the quotes are planted where asked, read back
as written, and every record is accounted for. Counts only, no timings."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench import stray_quote


def test_every_record_is_read_and_the_stray_quotes_kept(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    code = stray_quote.main(["--scale", "300", "--out", str(tmp_path)])

    printed = capsys.readouterr().out
    assert code == 0, printed
    with (tmp_path / "customers.csv").open(encoding="utf-8", newline="") as fh:
        expected = sum(1 for _ in csv.reader(fh)) - 1
    assert f"records expected {expected}, read {expected}, faulted 0, lost 0" in printed
    planted = [ln for ln in printed.splitlines() if ln.startswith("line ")]
    assert len(planted) == 2
    for line in planted:
        value = line.split("planted ")[1].split(",")[0]
        assert value.startswith("'O\"") and line.endswith(f"read {value}")


def test_planting_changes_only_the_last_names(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.csv", tmp_path / "b.csv"
    src.write_bytes(b'email,lastname,street\n'
                    b'a@x,Smith,"1 Main\nSt"\n'  # lines 2-3: quoted, skipped
                    b',Smith,2 Side St\n'  # line 4: an address row, skipped
                    b'b@x,Jones,3 High St\n')  # line 5
    assert stray_quote.plant(src, dst, [2]) == {5: 'O"Jones'}
    assert dst.read_bytes() == src.read_bytes().replace(b"Jones", b'O"Jones')
    with dst.open(encoding="utf-8", newline="") as fh:
        assert list(csv.reader(fh))[-1] == ["b@x", 'O"Jones', "3 High St"]
