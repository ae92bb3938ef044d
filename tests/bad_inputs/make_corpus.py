"""Write tests/bad_inputs/: one small bad input per case of tests/test_bad_inputs.py.

Run `python tests/bad_inputs/make_corpus.py` from anywhere; every run writes the same
bytes. Every case starts from the same base: the header and the first 20 records of
data/sample/customers.csv (8 customers, 20 addresses: each customer row carries its
first address, continuation rows the others), then plants one problem. README.md in this
folder lists each case with its expected outcome.
"""

from __future__ import annotations

import csv
import gzip
import io
import unicodedata
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1] / "data" / "sample" / "customers.csv"
N_RECORDS = 20  # the first 8 customers with all their addresses
Rows = list[list[str]]

# Rows of the base (0-based): c1 0-1, c2 2-4, c3 5-6, c4 7-9, c5 10-11, c6 12-14,
# c7 15-17, c8 18-19.
C1, C2, C3, C4, C5, C8 = 0, 2, 5, 7, 10, 18
FORMULA = '=HYPERLINK("x")'
# A name no target column can hold: over MariaDB's TEXT (65,535 bytes) and any varchar.
LONG_NAME = "L" * 70_000
# 262 characters: a syntactically plain address over the 255 of the email column.
LONG_EMAIL = "betty.schmidt3@" + "d" * 243 + ".com"
# The sample's values with letters outside ASCII, as the cp1252 case spells them.
ASCII = {"Дмитриевич": "Dmitrievich", "丸の内": "Marunouchi", "東京都": "Tokyo-to",
         "東京": "Tokyo", "Łódzkie": "Lodzkie", "Łódź": "Lodz", "민준": "Minjun", "김": "Kim"}


def base() -> tuple[list[str], Rows]:
    """The header and first records of the sample export."""
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [next(reader) for _ in range(N_RECORDS)]
    return header, rows


def text(header: list[str], rows: Rows, *, delimiter: str = ",", crlf: bool = False) -> str:
    """CSV text as Magento writes it (minimal quoting)."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n").writerows(
        [header, *rows])
    return buf.getvalue()


def setcol(header: list[str], rows: Rows, row: int, column: str, value: str) -> Rows:
    """A copy of `rows` with one cell changed."""
    out = [list(r) for r in rows]
    out[row][header.index(column)] = value
    return out


def line_of(header: list[str], rows: Rows, row: int) -> int:
    """The 1-based physical line where record `row` starts (the header is line 1)."""
    return 1 + text(header, rows[:row]).count("\n")


def write(name: str, data: str | bytes) -> None:
    """Writes one case file under this folder."""
    path = HERE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def read_semantics(h: list[str], rows: Rows) -> None:
    """Quotes, field counts and line endings."""
    # A quote inside an unquoted field is a literal; csv.writer would quote it, so splice.
    write("quote_in_field.csv", text(h, setcol(h, rows, C2, "lastname", "ONEIL"))
          .replace(",ONEIL,", ',O"Neil,'))
    extra = [list(r) for r in rows]
    extra[C4].append("surplus")
    write("field_count.csv", text(h, extra))
    # The last customer keeps one address; its last field opens a quote that never closes.
    short = setcol(h, rows[:-1], C8, "loyalty_tier", "OPEN")
    write("unterminated_quote.csv", text(h, short).removesuffix(",OPEN\n") + ',"gold')
    write("crlf.csv", text(h, rows, crlf=True))
    write("trailing_blank_lines.csv", text(h, rows) + "\n\n   \n\n")
    write("no_final_newline.csv", text(h, rows).removesuffix("\n"))
    comma = [list(r) for r in rows]
    comma[C2 + 1].append("")
    write("trailing_comma.csv", text(h, comma))
    write("spaced_header.csv", text([f" {n} " for n in h], rows))
    street = "\n".join(f"Block {i} " + "x" * 90 for i in range(40))
    long_street = setcol(h, rows, C1, "_address_street", street)
    long_street = setcol(h, long_street, C5, "dob", "1985-13-45 00:00:00")
    write("long_multiline_street.csv", text(h, long_street))


def duplicates(h: list[str], rows: Rows) -> None:
    """A customer exported twice: the later record wins with its one address."""
    later = list(rows[C2])
    later[h.index("firstname")] = "Sarah-Later"
    later[h.index("_address_street")] = "1 Later Street"
    write("duplicate_key.csv", text(h, [*rows, later]))


def formats(h: list[str], rows: Rows) -> None:
    """Headers, compression, encodings, delimiters, folders and non-CSV files."""
    gone = h.index("_website")
    write("missing_website.csv", text([n for i, n in enumerate(h) if i != gone],
                                      [[v for i, v in enumerate(r) if i != gone] for r in rows]))
    write("upper_header.csv", text([n.upper() for n in h], rows))
    plain = text(h, rows).encode("utf-8")
    write("customers.csv.gz", gzip.compress(plain, mtime=0))
    write("gzip_named_csv.csv", gzip.compress(plain, mtime=0))
    write("utf16_bom.csv", text(h, rows).encode("utf-16"))  # BOM, then little-endian
    write("semicolon.csv", text(h, rows, delimiter=";"))
    write("folder_with_txt/customers.csv", plain)
    write("folder_with_txt/notes.txt", "Exported by hand on Monday; see the ticket.\n")
    write("empty.csv", b"")
    write("bom_only.csv", b"\xef\xbb\xbf")
    dup = list(h)
    dup[h.index("middlename")] = "firstname"
    write("duplicate_header.csv", text(dup, rows))
    write("html_page.csv", "<!DOCTYPE html>\n<html><head><title>Admin - Magento</title>"
                           "</head>\n<body><p>Your session has expired.</p></body></html>\n")


def cp1252(h: list[str], rows: Rows) -> None:
    """A Windows-1252 export: one non-ASCII name, every other value ASCII."""
    def ascii_only(value: str) -> str:
        for old, new in ASCII.items():
            value = value.replace(old, new)
        latin = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
        assert latin.strip() or not value.strip(), value  # no value may vanish
        return latin

    plain = [[ascii_only(v) for v in r] for r in rows]
    write("cp1252.csv", text(h, setcol(h, plain, C1, "firstname", "Renée")).encode("cp1252"))


def values(h: list[str], rows: Rows) -> None:
    """Values a target column cannot hold, all on customer 3 (two addresses)."""
    cases: dict[str, tuple[str, str]] = {
        "nul_in_name.csv": ("firstname", "Bet\x00ty"),
        "control_character.csv": ("firstname", "Bet\x1bty"),
        "long_email.csv": ("email", LONG_EMAIL),
        "long_name.csv": ("lastname", LONG_NAME),
        "unknown_website.csv": ("_website", "mars"),
        "zero_date.csv": ("dob", "0000-00-00 00:00:00"),
    }
    for name, (column, value) in cases.items():
        changed = setcol(h, rows, C3, column, value)
        if name == "unknown_website.csv":
            changed = setcol(h, changed, C3, "website_id", "")
        write(name, text(h, changed))
    write("website_mismatch.csv", text(h, setcol(h, rows, C3, "website_id", "2")))


def spreadsheet(h: list[str], rows: Rows) -> None:
    """Values a spreadsheet would run as formulas: one loads, four fault with the value."""
    out = setcol(h, rows, C1, "firstname", FORMULA)
    out = setcol(h, out, C2, "gender", '=HYPERLINK("y")')
    out = setcol(h, out, C3, "email", "@evil.example.com")
    out = setcol(h, out, C4, "dob", "-1")
    out = setcol(h, out, C5, "gender", "+cmd")
    write("formula_values.csv", text(h, out))


STEPS: tuple[Callable[[list[str], Rows], None], ...] = (
    read_semantics, duplicates, formats, cp1252, values, spreadsheet)


def main() -> None:
    """Writes every case file."""
    header, rows = base()
    for step in STEPS:
        step(header, rows)
    street = setcol(header, rows, C1, "_address_street",
                    "\n".join(f"Block {i} " + "x" * 90 for i in range(40)))
    print(f"long_multiline_street.csv: customer 5 starts at line "
          f"{line_of(header, street, C5)}")


if __name__ == "__main__":
    main()
