"""The CSV source's input side: compression, encodings, delimiters, headers, folders, and
files that are no CSV export, each with real files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from magsync.extract.csv_source import CsvSource
from magsync.transform.errors import SourceFatalError
from magsync.transform.prepare import prepare
from magsync.transform.schema import KEY_COL
from tests.csvbuild import CE_HEADER, address_fields, continuation, customer_row, write_csv

CODES = {"base": 1, "eu": 2}


def rows() -> list[list[str]]:
    """A CE export with accents in customer and address columns and a multi-line street."""
    return [
        customer_row("zoe@example.com", first="Zoé", **address_fields(
            street="1 rue de l'Église\nBât. 2", city="Orléans")),
        continuation(street="2 Côte", city="Besançon"),
        customer_row("bob@example.com", first="Bob"),
        customer_row("ann@example.com", website="eu", **address_fields(city="Köln")),
        continuation(city="Düsseldorf"),
    ]


def utf8_export(tmp_path: Path, name: str = "export.csv") -> bytes:
    """The bytes of the CE export above, as Magento writes it (UTF-8)."""
    return write_csv(tmp_path / name, rows()).read_bytes()


def read(path: Path, **options: str) -> dict[str, pd.DataFrame]:
    """Every prepared batch, concatenated per entity; faults under 'faults'."""
    source = CsvSource(path, batch_size=2, website_codes=CODES, block_bytes=64, **options)
    frames: dict[str, list[pd.DataFrame]] = {}
    faults = []
    for raw in source:
        prepared = prepare(raw, {"Male": 1, "Female": 2})
        frames.setdefault(raw.entity.name, []).append(prepared.frame)
        faults.extend(prepared.faults)
    out = {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}
    out["faults"] = pd.DataFrame([f.to_dict() for f in faults])
    out["notes"] = pd.DataFrame({"note": source.notes})
    return out


def assert_read_in_full(out: dict[str, pd.DataFrame]) -> None:
    """Every customer and address of `rows()`, accents intact, no fault."""
    assert out["customer"][KEY_COL].tolist() == [
        '[1,"zoe@example.com"]', '[1,"bob@example.com"]', '[2,"ann@example.com"]']
    assert out["customer"]["firstname"].tolist() == ["Zoé", "Bob", "Ann"]
    assert out["address"]["city"].tolist() == ["Orléans", "Besançon", "Köln", "Düsseldorf"]
    assert out["address"]["street"].iloc[0] == "1 rue de l'Église\nBât. 2"
    assert out["address"]["_line"].tolist() == [2, 4, 6, 7]
    assert out["faults"].empty


def fatal(path: Path, **options: str) -> str:
    """The SourceFatalError message of opening `path`."""
    with pytest.raises(SourceFatalError) as err:
        CsvSource(path, batch_size=10, website_codes=CODES, **options)
    return str(err.value)


# Compression

def test_csv_gz_files_in_a_folder_are_read(tmp_path: Path) -> None:
    data = utf8_export(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "export.csv.gz").write_bytes(gzip.compress(data))
    assert_read_in_full(read(folder))


def test_gzip_found_by_its_magic_bytes_whatever_the_name(tmp_path: Path) -> None:
    data = utf8_export(tmp_path)
    path = tmp_path / "export-renamed.csv"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    out = read(path)
    assert_read_in_full(out)
    assert "gzip" in CsvSource(path, batch_size=2, website_codes=CODES).describe()


def test_a_damaged_gzip_file_is_a_fatal_error_naming_it(tmp_path: Path) -> None:
    big = b"".join(utf8_export(tmp_path).splitlines(keepends=True)[1:] * 200)
    packed = gzip.compress(utf8_export(tmp_path) + big)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])  # header readable, the rest cut off
    with pytest.raises(SourceFatalError, match=r"cut\.csv\.gz: cannot be read"):
        read(path)


# Encodings

@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_a_bom_is_transcoded(tmp_path: Path, codec: str) -> None:
    text = utf8_export(tmp_path).decode("utf-8")
    path = tmp_path / "export.csv"
    path.write_bytes(("\ufeff" + text).encode(codec))
    assert_read_in_full(read(path))


def test_a_bom_decides_even_against_the_encoding_setting(tmp_path: Path) -> None:
    text = utf8_export(tmp_path).decode("utf-8")
    path = tmp_path / "export.csv"
    path.write_bytes(("\ufeff" + text).encode("utf-16-le"))
    assert_read_in_full(read(path, encoding="cp1252"))


def test_cp1252_is_read_with_the_encoding_setting(tmp_path: Path) -> None:
    text = utf8_export(tmp_path).decode("utf-8")
    path = tmp_path / "export.csv"
    path.write_bytes(text.replace("\n", "\r\n").encode("cp1252"))
    assert_read_in_full(read(path, encoding="cp1252"))


def test_cp1252_bytes_that_decode_to_nothing_fault_their_record(tmp_path: Path) -> None:
    text = utf8_export(tmp_path).decode("utf-8")
    data = text.encode("cp1252").replace(b"Bob", b"B\x81b")  # 0x81: unassigned in cp1252
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    out = read(path, encoding="cp1252")
    assert list(zip(out["faults"]["rule"], out["faults"]["source_line"], strict=True)) == [
        ("encoding", 5)]
    assert "bob@example.com" not in " ".join(out["customer"][KEY_COL])
    assert out["address"]["city"].tolist() == ["Orléans", "Besançon", "Köln", "Düsseldorf"]


def test_cp1252_read_as_utf8_is_refused_with_a_hint(tmp_path: Path) -> None:
    text = utf8_export(tmp_path).decode("utf-8")
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode("cp1252"))
    assert fatal(path) == (f"{path}: 5 of its first 7 lines are not valid UTF-8: if the file "
                           "is a Windows export, pass --encoding cp1252 (or the encoding it "
                           "was written in)")


def mostly_ascii_cp1252(path: Path, clean: int) -> Path:
    """`clean` plain customers, then the accented CE rows, written in cp1252."""
    plain = [customer_row(f"c{i}@example.com", first="Plain") for i in range(clean)]
    text = write_csv(path, plain + rows()).read_text("utf-8")
    path.write_bytes(text.encode("cp1252"))
    return path


def test_bad_utf8_rows_of_a_ce_export_fault_as_their_entity(tmp_path: Path) -> None:
    out = read(mostly_ascii_cp1252(tmp_path / "export.csv", 20))
    faults = out["faults"]
    by_entity = faults[faults["rule"] == "encoding"].groupby("entity")["source_line"]
    # After 20 plain customers (lines 2-21): Zoé's row (a customer, line 22), Besançon
    # (an address, 24), Köln (a customer, 26), Düsseldorf (an address, 27); Bob's row
    # (25) is plain ASCII and reads. The customer rows carry their first address, which
    # faults with them (counted, not lost).
    assert by_entity.apply(list).to_dict() == {"address": [22, 24, 26, 27],
                                               "customer": [22, 26]}
    assert len(out["customer"]) == 21
    assert out["address"].empty
    assert out["notes"].empty


def mostly_bad_past_the_head(path: Path) -> Path:
    """A cp1252 file whose first 64 KB are one good record, followed by 5 bad ones."""
    long_street = "x" * 65_500  # the street column holds 65,535 bytes; the record passes 64 KB
    good = customer_row("ok@x.com", **address_fields(street=long_street))
    bad = [customer_row(f"{i}é@x.com") for i in range(5)]
    write_csv(path, [good, *bad])
    path.write_bytes(path.read_text("utf-8").encode("cp1252"))
    return path


def test_a_file_mostly_not_utf8_past_its_head_says_so_in_a_note(tmp_path: Path) -> None:
    path = mostly_bad_past_the_head(tmp_path / "export.csv")
    out = read(path)
    assert out["faults"]["rule"].tolist() == ["encoding"] * 5
    assert out["notes"]["note"].tolist() == [
        f"5 of 6 records of {path} are not valid UTF-8 and were faulted: if the file is a "
        "Windows export, pass --encoding cp1252"]


def test_a_few_bad_bytes_in_utf8_fault_quietly(tmp_path: Path) -> None:
    data = utf8_export(tmp_path).replace(b"Bob", b"B\xe9b")
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    out = read(path)
    assert out["faults"]["rule"].tolist() == ["encoding"]
    assert out["faults"]["entity"].tolist() == ["customer"]
    assert out["notes"].empty


def test_utf16_without_a_bom_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(utf8_export(tmp_path).decode("utf-8").encode("utf-16-le"))
    assert fatal(path) == (f"{path}: not a CSV export: NUL bytes in its first line (UTF-16 "
                           "without a byte order mark? pass --encoding utf-16-le)")
    assert_read_in_full(read(path, encoding="utf-16-le"))


# Delimiters

def semicolon_export(tmp_path: Path) -> Path:
    """The CE export written with ';' between fields (as a European Excel saves it)."""
    import csv

    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\n")
        writer.writerow(CE_HEADER)
        writer.writerows(rows())
    return path


def test_a_semicolon_header_says_which_delimiter_to_pass(tmp_path: Path) -> None:
    path = semicolon_export(tmp_path)
    assert fatal(path) == (f"{path}: the header splits on ';', not on ',': "
                           "pass --delimiter ';'")


def test_the_delimiter_setting_reads_a_semicolon_file(tmp_path: Path) -> None:
    assert_read_in_full(read(semicolon_export(tmp_path), delimiter=";"))


def test_a_tab_header_says_tab(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("\t".join(CE_HEADER) + "\n")
    assert fatal(path).endswith("the header splits on tab, not on ',': pass --delimiter tab")


# Headers

def test_header_names_match_ignoring_case_and_spaces(tmp_path: Path) -> None:
    header = [f" {name.upper()} " if i % 2 else name.title() for i, name in
              enumerate(CE_HEADER)]
    assert_read_in_full(read(write_csv(tmp_path / "export.csv", rows(), header)))


def test_a_name_twice_in_the_header_is_fatal(tmp_path: Path) -> None:
    header = [*CE_HEADER[:-1], "Email"]
    path = write_csv(tmp_path / "export.csv", rows(), header)
    assert fatal(path) == (f"{path}: the header names the same column twice (names "
                           "compared ignoring case): email")


def test_a_ce_export_without_website_is_refused(tmp_path: Path) -> None:
    keep = [i for i, name in enumerate(CE_HEADER) if name != "_website"]
    path = write_csv(tmp_path / "export.csv", [[r[i] for i in keep] for r in rows()],
                     [CE_HEADER[i] for i in keep])
    assert fatal(path) == (f"{path}: a Magento CE customer export without the _website "
                           "column (the customer's website code, always written by "
                           "Magento): add it or export again")


def test_ee_addresses_without_website_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "addresses.csv"
    path.write_text("_email,_entity_id,street,city\na@x.com,1,S,C\n")
    assert "Customer Addresses export without the _website column" in fatal(path)


# Empty files and files that are no CSV

@pytest.mark.parametrize(("data", "suffix"), [
    (b"", ""), (b"\xef\xbb\xbf", " (only a byte order mark)"),
    (b"\xff\xfe", " (only a byte order mark)"), (b"\n\r\n", "")])
def test_an_empty_file_is_one_clear_error(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    assert fatal(path) == f"{path} is empty{suffix}"


def test_an_empty_gzip_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "export.csv.gz"
    path.write_bytes(gzip.compress(b""))
    assert fatal(path) == f"{path} is empty"


def test_a_header_only_file_has_no_records(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", [])
    out = read(path)
    assert "customer" not in out
    assert out["faults"].empty


@pytest.mark.parametrize(("data", "what"), [
    (b"\n  <!DOCTYPE html>\n<html><body>Login</body></html>", "HTML"),
    (b"<html>\n<head>", "HTML"),
    (b'<?xml version="1.0"?>\n<customers/>', "XML"),
    (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive (an Excel .xlsx workbook?)"),
    (b'{"email": "a@x.com"}', "JSON"),
])
def test_content_that_is_no_csv_is_named(tmp_path: Path, data: bytes, what: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    assert fatal(path) == f"{path}: not a CSV export: looks like {what}"


def test_an_unknown_header_names_its_file(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("id,name\n1,a\n")
    assert fatal(path).startswith(f"{path}: unrecognised CSV header")


# Folders

def test_every_file_of_a_folder_is_read_or_named(tmp_path: Path) -> None:
    utf8_export(tmp_path, "customers.csv")
    (tmp_path / "b.xlsx").write_bytes(b"PK\x03\x04")
    (tmp_path / "a.txt").write_text("notes")
    (tmp_path / "old").mkdir()
    out = read(tmp_path)
    assert_read_in_full(out)
    assert out["notes"]["note"].tolist() == [
        f"skipped 2 file(s) that are not CSV (.csv, .csv.gz) in {tmp_path}: a.txt, b.xlsx",
        f"skipped 1 subfolder(s) of {tmp_path} (folders are not searched): old"]


def test_a_folder_without_csv_names_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "export.xlsx").write_bytes(b"PK\x03\x04")
    assert fatal(tmp_path) == (f"no CSV files (.csv, .csv.gz) in {tmp_path}; it holds "
                               "only: export.xlsx")


# Settings, command line and the run report

def test_encoding_and_delimiter_settings_are_checked() -> None:
    from pydantic import ValidationError

    from magsync.flows.source_settings import SourceSettings

    assert SourceSettings(encoding="Windows-1252", delimiter="tab").model_dump(
        include={"encoding", "delimiter"}) == {"encoding": "cp1252", "delimiter": "\t"}
    assert SourceSettings().delimiter == ","
    assert SourceSettings().encoding is None
    with pytest.raises(ValidationError, match="unknown encoding 'latin-9000'"):
        SourceSettings(encoding="latin-9000")
    for bad in (";;", '"', "\n", "§"):
        with pytest.raises(ValidationError, match="a delimiter is one ASCII character"):
            SourceSettings(delimiter=bad)


def test_the_command_line_sets_encoding_and_delimiter() -> None:
    from magsync.flows.cli import build_parser, sync_overrides

    args = build_parser().parse_args(["sync", "--encoding", "cp1252", "--delimiter", ";"])
    assert sync_overrides(args)["source"] == {"encoding": "cp1252", "delimiter": ";"}
    assert "source" not in sync_overrides(build_parser().parse_args(["sync"]))


def sync_report(folder: Path, out: Path, **source: str) -> dict[str, object]:
    """One run of the sync's steps (no Prefect API) over `folder`; its report."""
    from magsync.flows.settings import load_settings
    from magsync.flows.sync import run_sync

    settings = load_settings(source={"input": str(folder), **source}, output_dir=str(out),
                             validation=False, max_fault_ratio=1.0)
    return run_sync(settings, orchestrated=False)


def test_the_run_report_counts_per_entity_and_carries_the_notes(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    mostly_ascii_cp1252(folder / "export.csv", 20)
    (folder / "readme.txt").write_text("exported by hand")
    report = sync_report(folder, tmp_path / "out")
    counts: dict[str, dict[str, int]] = report["counts"]  # type: ignore[assignment]
    assert (counts["customer"].get("created"), counts["customer"].get("faulted")) == (21, 2)
    # 2 address rows, and the 2 addresses on the faulted customers' own rows
    assert (counts["address"].get("created"), counts["address"].get("faulted")) == (None, 4)
    notes: list[str] = report["notes"]  # type: ignore[assignment]
    assert f"skipped 1 file(s) that are not CSV (.csv, .csv.gz) in {folder}: readme.txt" \
        in notes
    again = sync_report(folder, tmp_path / "out", encoding="cp1252")
    counts = again["counts"]  # type: ignore[assignment]
    assert (counts["customer"].get("created"), counts["customer"].get("faulted")) == (2, None)
    assert (counts["address"].get("created"), counts["address"].get("faulted")) == (4, None)
    assert "cp1252" in str(again["input"])


def test_notes_found_while_reading_reach_the_run_report(tmp_path: Path) -> None:
    path = mostly_bad_past_the_head(tmp_path / "export.csv")
    report = sync_report(path, tmp_path / "out")
    assert (f"5 of 6 records of {path} are not valid UTF-8 and were faulted: if the file is "
            "a Windows export, pass --encoding cp1252") in report["notes"]  # type: ignore[operator]
