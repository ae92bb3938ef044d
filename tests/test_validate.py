"""Great Expectations suites and the mapping of their results back to records."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
import pytest

from magsync.transform.faults import Stage
from magsync.transform.schema import (
    ADDRESS,
    CUSTOMER,
    EXTRA_COL,
    GROUP,
    KEY_COL,
    LINE_COL,
    LOAD_ORDER,
    PANDAS_DTYPES,
    SOURCE_COL,
    Entity,
)
from magsync.transform.validate import (
    DERIVED_COL,
    SecretColumnError,
    SuiteError,
    SuiteValidator,
    ValidationOutcome,
    build_data_docs,
)

SUITES = Path(__file__).resolve().parents[1] / "expectations"
RUN_STARTED = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SENTINEL = "SENTINEL-secret-7f3a"


def frame(entity: Entity, rows: list[dict[str, Any]], *, secrets: bool = False) -> pd.DataFrame:
    """A staged frame with the schema's dtypes; `_line` counts from 2 (after a header)."""
    cols = entity.columns if secrets else tuple(entity.public_columns)
    df = pd.DataFrame(
        {
            c.name: pd.Series([r.get(c.name) for r in rows], dtype=PANDAS_DTYPES[c.kind])
            for c in cols
        }
    )
    df[KEY_COL] = pd.Series([r.get(KEY_COL, f"[{i}]") for i, r in enumerate(rows)], dtype="str")
    df[SOURCE_COL] = pd.Series([f"{entity.name}.csv"] * len(rows), dtype="str")
    df[LINE_COL] = pd.Series(range(2, 2 + len(rows)), dtype="Int64")
    df[EXTRA_COL] = pd.Series([None] * len(rows), dtype="str")
    return df


GOOD_CUSTOMER = {
    "customer_id": 1,
    "website_id": 1,
    "store_id": 1,
    "email": "anna@example.com",
    "firstname": "Anna",
    "lastname": "Berg",
    "gender": 2,
    "dob": "1980-05-01",
    "created_at": "2015-03-01T10:00:00Z",
}
GOOD_ADDRESS = {
    "customer_key": "[1]",
    "street": "Hauptstr. 1",
    "city": "Berlin",
    "country_id": "DE",
    "postcode": "10115",
    "telephone": "+49 30 1234",
}


def customers(bad: dict[str, Any] | None = None, n_good: int = 3) -> pd.DataFrame:
    """`n_good` good customers, then one with `bad` applied: it sits on the last line."""
    rows = [{**GOOD_CUSTOMER, "customer_id": i + 1, KEY_COL: f"[{i + 1}]"} for i in range(n_good)]
    if bad is not None:
        rows.append({**GOOD_CUSTOMER, "customer_id": 99, KEY_COL: "[99]", **bad})
    return frame(CUSTOMER, rows)


@pytest.mark.parametrize("entity", [CUSTOMER, ADDRESS, GROUP])
def test_shipped_suites_are_plain_gx_suites(entity: Entity) -> None:
    data = json.loads((SUITES / f"{entity.name}.json").read_text())
    suite = gx.ExpectationSuite(**data)
    assert suite.name == entity.name and len(suite.expectations) == len(data["expectations"])


@pytest.fixture(scope="module")
def validator() -> SuiteValidator:
    return SuiteValidator(SUITES, RUN_STARTED)


Where = tuple[str, str | None, str | None, int | None]


def summary(outcome: ValidationOutcome) -> set[Where]:
    """(rule, column, value, line) of each fault."""
    return {(f.rule, f.column, f.value, f.source_line) for f in outcome.faults}


@pytest.mark.parametrize(
    ("bad", "rule", "column", "value"),
    [
        ({"email": None}, "email_required", "email", None),
        ({"email": "anna.example.com"}, "email_syntax", "email", "anna.example.com"),
        ({"email": "anna@example"}, "email_syntax", "email", "anna@example"),
        ({"email": "an na@example.com"}, "email_syntax", "email", "an na@example.com"),
        ({"website_id": None}, "website_required", "website_id", None),
        ({"firstname": None}, "firstname_required", "firstname", None),
        ({"lastname": None}, "lastname_required", "lastname", None),
        ({"dob": "2026-01-16"}, "dob_not_future", "dob", "2026-01-16"),
        (
            {"created_at": "2006-12-31T23:59:59Z"},
            "created_at_range",
            "created_at",
            "2006-12-31T23:59:59+00:00",
        ),
        (
            {"created_at": "2026-01-15T12:00:01Z"},
            "created_at_range",
            "created_at",
            "2026-01-15T12:00:01+00:00",
        ),
        ({"gender": 3}, "gender_code", "gender", "3"),
        ({"website_id": 9}, "website_code", "website_id", "9"),
        ({"store_id": 9}, "store_code", "store_id", "9"),
    ],
)
def test_each_customer_rule_faults_its_row(
    validator: SuiteValidator, bad: dict[str, Any], rule: str, column: str, value: str | None
) -> None:
    df = customers(bad)
    outcome = validator.validate(CUSTOMER, df)
    assert summary(outcome) == {(rule, column, value, 5)}
    fault = outcome.faults[0]
    assert (fault.stage, fault.entity, fault.key, fault.source) == (
        Stage.VALIDATE,
        "customer",
        "[99]",
        "customer.csv",
    )
    assert fault.message
    assert outcome.good.tolist() == [True, True, True, False]
    assert outcome.failed and not outcome.table_failures


def test_bounds_are_inclusive_and_nulls_pass(validator: SuiteValidator) -> None:
    edge = {"dob": "2026-01-15", "created_at": "2007-01-01T00:00:00Z", "gender": None}
    outcome = validator.validate(CUSTOMER, customers(edge))
    assert outcome.faults == [] and outcome.good.all() and not outcome.failed
    assert outcome.result is None


def test_a_row_failing_two_rules_is_one_bad_row_with_two_faults(
    validator: SuiteValidator,
) -> None:
    outcome = validator.validate(CUSTOMER, customers({"email": "nope", "gender": 7}))
    assert {f.rule for f in outcome.faults} == {"email_syntax", "gender_code"}
    assert {f.source_line for f in outcome.faults} == {5}
    assert outcome.bad_rows == 1


def test_results_map_back_by_index_label(validator: SuiteValidator) -> None:
    df = customers({"gender": 5}).set_axis(["d", "c", "b", "a"])
    outcome = validator.validate(CUSTOMER, df.iloc[::-1])
    assert outcome.good.index.tolist() == ["a", "b", "c", "d"]
    assert outcome.good.to_dict() == {"a": False, "b": True, "c": True, "d": True}
    assert summary(outcome) == {("gender_code", "gender", "5", 5)}


@pytest.mark.parametrize(
    ("bad", "rule", "column", "value"),
    [
        ({"customer_key": None}, "customer_required", "customer_key", None),
        ({"street": None}, "street_required", "street", None),
        ({"city": None}, "city_required", "city", None),
        ({"country_id": "XX"}, "country_code", "country_id", "XX"),
        ({"country_id": "de"}, "country_code", "country_id", "de"),
        ({"postcode": None}, "postcode_required", "postcode", None),
        ({"telephone": None}, "telephone_required", "telephone", None),
    ],
)
def test_each_address_rule_faults_its_row(
    validator: SuiteValidator, bad: dict[str, Any], rule: str, column: str, value: str | None
) -> None:
    rows = [
        {**GOOD_ADDRESS, KEY_COL: f"[{i}]", "country_id": c} for i, c in enumerate(["DE", "FR"])
    ]
    df = frame(ADDRESS, [*rows, {**GOOD_ADDRESS, KEY_COL: "[9]", **bad}])
    outcome = validator.validate(ADDRESS, df)
    assert {(f.rule, f.column, f.value) for f in outcome.faults} == {(rule, column, value)}
    assert {f.source_line for f in outcome.faults} == {4}


def groups(derived: list[bool]) -> pd.DataFrame:
    rows = [
        {"customer_group_id": 1, "customer_group_code": "General", KEY_COL: "[1]"},
        {"customer_group_id": 2, KEY_COL: "[2]"},
        {"customer_group_id": 3, KEY_COL: "[3]"},
    ]
    return frame(GROUP, rows).assign(**{DERIVED_COL: pd.array(derived, dtype="boolean")})


def test_group_code_is_required_unless_the_group_was_derived(validator: SuiteValidator) -> None:
    outcome = validator.validate(GROUP, groups([False, False, True]))
    assert summary(outcome) == {("group_code_required", "customer_group_code", None, 3)}
    assert outcome.good.tolist() == [True, False, True]


def test_group_frame_without_derived_flag_is_refused(validator: SuiteValidator) -> None:
    with pytest.raises(SuiteError, match=DERIVED_COL):
        validator.validate(GROUP, groups([False] * 3).drop(columns=DERIVED_COL))


def test_secret_columns_never_reach_great_expectations(validator: SuiteValidator) -> None:
    df = frame(CUSTOMER, [{**GOOD_CUSTOMER, "password_hash": SENTINEL}], secrets=True)
    with pytest.raises(SecretColumnError, match="password_hash"):
        validator.validate(CUSTOMER, df)


def test_empty_frame_passes(validator: SuiteValidator) -> None:
    outcome = validator.validate(CUSTOMER, customers(n_good=0))
    assert outcome.good.empty and not outcome.failed


@pytest.fixture
def suite_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SUITES, tmp_path / "expectations"))


def edit_suite(suite_dir: Path, name: str, edit: Any) -> None:
    path = suite_dir / f"{name}.json"
    data = json.loads(path.read_text())
    edit(data["expectations"])
    path.write_text(json.dumps(data, indent=2))


def test_removing_a_rule_from_the_json_changes_the_outcome(
    validator: SuiteValidator, suite_copy: Path
) -> None:
    df = customers({"email": "not-an-email"})
    assert summary(validator.validate(CUSTOMER, df)) == {
        ("email_syntax", "email", "not-an-email", 5)
    }

    def drop_email_syntax(exps: list[dict[str, Any]]) -> None:
        exps[:] = [e for e in exps if e["meta"].get("rule") != "email_syntax"]

    edit_suite(suite_copy, "customer", drop_email_syntax)
    edited = SuiteValidator(suite_copy, RUN_STARTED)
    outcome = edited.validate(CUSTOMER, df)
    assert outcome.good.all() and outcome.faults == []


def test_rule_defaults_to_the_expectation_type_and_params_fill_sets(suite_copy: Path) -> None:
    def websites_from_settings(exps: list[dict[str, Any]]) -> None:
        for e in exps:
            if e["meta"].get("rule") == "website_code":
                e["kwargs"]["value_set"] = "$website_ids"
                e["meta"] = {}
                del e["description"]

    edit_suite(suite_copy, "customer", websites_from_settings)
    edited = SuiteValidator(suite_copy, RUN_STARTED, params={"website_ids": [1, 5]})
    outcome = edited.validate(CUSTOMER, customers({"website_id": 2}))
    assert summary(outcome) == {("expect_column_values_to_be_in_set", "website_id", "2", 5)}
    assert "website_id" in outcome.faults[0].message


def test_table_level_failure_faults_no_row_but_fails(suite_copy: Path) -> None:
    def add_row_count(exps: list[dict[str, Any]]) -> None:
        exps.append({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}})

    edit_suite(suite_copy, "customer", add_row_count)
    outcome = SuiteValidator(suite_copy, RUN_STARTED).validate(CUSTOMER, customers())
    assert outcome.failed and outcome.faults == [] and outcome.good.all()
    assert len(outcome.table_failures) == 1
    assert "expect_table_row_count_to_be_between" in outcome.table_failures[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"column": "password_hash"}, "secret"),
        ({"column": "no_such_column"}, "unknown column"),
        ({"column": "dob", "max_value": "$nobody_set_this"}, "unknown parameter"),
    ],
)
def test_bad_suites_are_refused_at_start(suite_copy: Path, kwargs: dict, match: str) -> None:
    def add(exps: list[dict[str, Any]]) -> None:
        exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": kwargs})

    edit_suite(suite_copy, "customer", add)
    with pytest.raises(SuiteError, match=match):
        SuiteValidator(suite_copy, RUN_STARTED)


def test_missing_suite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"customer\.json"):
        SuiteValidator(tmp_path, RUN_STARTED, entities=[CUSTOMER])


@pytest.fixture
def docs_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "report" / "data_docs"


def test_data_docs_show_failing_chunks_without_secrets(
    validator: SuiteValidator, docs_dir: Path
) -> None:
    rows = [{**GOOD_CUSTOMER, KEY_COL: f"[{i}]", "email": f"bad{i:02d}"} for i in range(30)]
    staged = frame(CUSTOMER, [{**r, "password_hash": SENTINEL} for r in rows], secrets=True)
    failing = validator.validate(CUSTOMER, staged.drop(columns=CUSTOMER.secret_names))
    passing = validator.validate(CUSTOMER, customers())
    assert failing.bad_rows == 30 and not passing.failed

    index = build_data_docs([failing, passing], docs_dir)

    assert index == docs_dir / "index.html" and index.exists()
    pages = [p for p in docs_dir.rglob("*.html") if p.name != "index.html"]
    assert [p.parent.parent.name for p in pages] == [failing.label]
    text = "\n".join(p.read_text(errors="replace") for p in docs_dir.rglob("*") if p.is_file())
    assert SENTINEL not in text
    shown = {f"bad{i:02d}" for i in range(30) if f">bad{i:02d}<" in text}
    assert 0 < len(shown) <= 20  # a sample, never every unexpected value


def test_no_data_docs_when_nothing_failed(validator: SuiteValidator, docs_dir: Path) -> None:
    assert build_data_docs([validator.validate(CUSTOMER, customers())], docs_dir) is None
    assert not docs_dir.exists()


def test_warming_builds_every_definition_off_the_caller_and_changes_no_outcome() -> None:
    warmed = SuiteValidator(SUITES, RUN_STARTED)
    warmed.warm()
    assert warmed._warming is not None and warmed._warming.name == "magsync-gx-warm"
    warmed._warming.join(timeout=120)
    assert set(warmed._definitions) == {e.name for e in LOAD_ORDER}  # built by the thread
    bad = customers({"email": "not-an-email", "gender": 7})
    assert summary(warmed.validate(CUSTOMER, bad)) == summary(
        SuiteValidator(SUITES, RUN_STARTED).validate(CUSTOMER, bad))
    assert summary(warmed.validate(CUSTOMER, bad))  # the rules still fault the row
