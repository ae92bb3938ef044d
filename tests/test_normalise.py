"""Normalisation on tiny frames."""

from __future__ import annotations

import pandas as pd
import pytest

from magsync.transform.normalise import clean_street, clean_strings, normalise, to_bool, to_date
from magsync.transform.schema import ADDRESS, CUSTOMER

GENDERS = {"Male": 1, "Female": 2}


def s(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="str")


@pytest.mark.parametrize(("raw", "clean"), [
    ("  Ann ", "Ann"),
    ("", None),
    ("   ", None),
    ("Zoe\u0308", "Zoë"),  # decomposed -> NFC
    (None, None),
])
def test_clean_strings(raw: str | None, clean: str | None) -> None:
    out = clean_strings(s(raw))
    assert (out.iloc[0] if clean is not None else None) == clean or pd.isna(out.iloc[0])
    if clean is not None:
        assert out.iloc[0] == clean


def test_street_lines_joined_with_newline() -> None:
    out = clean_street(s(" 1 Main St \r\n Apt 2 ", "Single"))
    assert out.tolist() == ["1 Main St\nApt 2", "Single"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-05-15 03:58:20", "2024-05-15T03:58:20+00:00"),
    ("2024-05-15T05:58:20+02:00", "2024-05-15T03:58:20+00:00"),
])
def test_timestamps_become_utc(raw: str, expected: str) -> None:
    frame = pd.DataFrame({"created_at": s(raw), "email": s("a@x.com"), "website_id": s("1")})
    out = normalise(CUSTOMER, frame, GENDERS)
    assert out.frame["created_at"].iloc[0] == pd.Timestamp(expected)
    assert not out.faults


def test_dates_and_bad_values_fault_per_row() -> None:
    frame = pd.DataFrame({
        "email": s(" Ann@Example.COM ", "b@x.com", "c@x.com"),
        "website_id": s("1", "1", "x"),
        "dob": s("1980-02-03 00:00:00", "1985-13-45 00:00:00", ""),
        "gender": s("female", "Divers", "2"),
        "_line": pd.Series([2, 3, 4]),
    })
    out = normalise(CUSTOMER, frame, GENDERS)
    assert out.frame["email"].iloc[0] == "ann@example.com"
    assert out.frame["dob"].iloc[0] == pd.Timestamp("1980-02-03")
    assert out.frame["gender"].tolist()[0] == 2
    rules = {label: sorted(f.rule for f in faults) for label, faults in out.faults.items()}
    assert rules == {1: ["bad_date", "unknown_gender"], 2: ["not_an_integer"]}
    assert out.faults[1][0].source_line == 3


def test_flags_country_and_postcode_as_text() -> None:
    frame = pd.DataFrame({"is_default_billing": s("1", "", "0"),
                          "country_id": s("gb", "De", None),
                          "postcode": s("06612", " 0123 ", None)})
    out = normalise(ADDRESS, frame, GENDERS)
    assert out.frame["is_default_billing"].tolist()[0] is True
    assert out.frame["is_default_billing"].isna().tolist() == [False, True, False]
    assert out.frame["country_id"].tolist()[:2] == ["GB", "DE"]
    assert out.frame["postcode"].tolist()[:2] == ["06612", "0123"]


def test_to_bool_and_to_date_flag_garbage() -> None:
    _, bad = to_bool(s("maybe", "1"))
    assert bad.tolist() == [True, False]
    _, bad = to_date(s("2020-02-30", "2020-02-29"))
    assert bad.tolist() == [True, False]


@pytest.mark.parametrize("zero", ["0000-00-00 00:00:00", "0000-00-00", " 0000-00-00T00:00:00"])
def test_mysql_zero_date_reads_as_null(zero: str) -> None:
    frame = pd.DataFrame({"email": s("a@x.com", "b@x.com"), "website_id": s("1", "1"),
                          "dob": s(zero, "0000-00-00 10:00:00"), "updated_at": s(zero, zero)})
    out = normalise(CUSTOMER, frame, GENDERS)
    assert out.frame["dob"].isna().tolist() == [True, True]
    assert out.frame["updated_at"].isna().all()
    assert {label: [f.rule for f in faults] for label, faults in out.faults.items()} == {
        1: ["bad_date"]}  # only the bare zero date is Magento's null
