"""Validation with Great Expectations: suites kept as JSON, results mapped back to rows.

A `SuiteValidator` loads one suite per entity from `<suite_dir>/<entity>.json` (the
format `ExpectationSuite.to_json_dict()` writes) and builds the Great Expectations
objects once per run. `validate` turns each failed row-level expectation into one
`Fault` per unexpected row; `build_data_docs` renders the failing chunks as HTML.

Semantics: a row failing two expectations gets two faults but is one bad row in `good`.
An expectation that passes faults nothing, even when `mostly` < 1 let some rows through.
A failed expectation that names no row (table-level, or one that raised) faults no
record and lands in `table_failures`: the chunk failed, the caller decides what to do.
Suites may hold parameters, GX's `{"$PARAMETER": "name"}` or the short `"$name"`,
replaced when the suite is loaded: `run_started` (the run's start, UTC) and the `params`
given. `min_value`/`max_value` on date and timestamp columns may be ISO strings: both
become UTC Timestamps.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from magsync.transform.errors import ConfigError, MagsyncError
from magsync.transform.faults import Fault, Stage, shown_value
from magsync.transform.gx_import import import_great_expectations
from magsync.transform.integrity import plain, row_faults
from magsync.transform.schema import (
    ENTITIES,
    EXTRA_COL,
    HASH_COL,
    KEY_COL,
    LINE_COL,
    LOAD_ORDER,
    RAW_DIGEST_COL,
    SOURCE_COL,
    Entity,
    Kind,
)
from magsync.transform.suite_identity import row_local, suite_digest

# The suites shipped with magsync (expectations/, installed as magsync/expectations).
BUNDLED_SUITES = Path(__file__).resolve().parent.parent / "expectations"

if TYPE_CHECKING:  # Great Expectations takes 2-3 s to import: only when rows need it
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

DERIVED_COL = "_derived"  # groups made up from customers' group_id, not read from a group list
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
_LINEAGE = frozenset({KEY_COL, SOURCE_COL, LINE_COL, EXTRA_COL, HASH_COL, DERIVED_COL})
_PARAM = re.compile(r"^\$([A-Za-z_]\w*)$")
_BOUNDS = ("min_value", "max_value")
_WHOLE_TABLE = ("expect_table_column", "expect_column_to_exist")
_DOCS_SAMPLE = 20  # unexpected values kept per expectation for Data Docs
_DOCS_VALUE_LIMIT = 64  # characters of each such value
_DOCS_DROP = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")


class SuiteError(ConfigError):
    """A suite is missing, unreadable, or names columns the entity does not have."""


class SecretColumnError(MagsyncError):
    """A frame reached validation with a secret column: a bug upstream, never data."""


@dataclass
class ValidationOutcome:
    """What one suite run said about one chunk."""

    entity: str
    label: str  # names the chunk in Data Docs, e.g. "customer-3"
    good: pd.Series  # bool, aligned to the chunk's index
    faults: list[Fault] = field(default_factory=list)  # one per (row, failed expectation)
    table_failures: list[str] = field(default_factory=list)  # failures naming no row
    result: ExpectationSuiteValidationResult | None = None  # trimmed, kept only on failure

    @property
    def failed(self) -> bool:
        """Whether any expectation failed (row-level or table-level)."""
        return bool(self.faults or self.table_failures)

    @property
    def bad_rows(self) -> int:
        """How many rows failed at least one expectation."""
        return int((~self.good).sum())


@dataclass(frozen=True)
class _Suite:
    data: dict[str, Any]  # the suite's JSON, parameters resolved
    columns: frozenset[str]  # every column the suite reads
    whole_table: bool  # a table-level expectation looks at the frame's columns
    # (rule, column) of the faults a row gets from its own values alone, whatever the
    # run's other rows or start: those a re-sync may re-report unvalidated (load/refault.py)
    stable: frozenset[tuple[str, str | None]] = frozenset()


class SuiteValidator:
    """Runs each entity's suite on staged frames; built once per run, reused per chunk.

    The suites are read and checked here; Great Expectations is imported and its objects
    built at the first chunk that has rows (an unchanged re-sync validates nothing)."""

    def __init__(
        self,
        suite_dir: Path,
        run_started: datetime,
        params: Mapping[str, object] | None = None,
        entities: Iterable[Entity] = LOAD_ORDER,
    ) -> None:
        started = pd.Timestamp(run_started)
        started = started.tz_localize(UTC) if started.tzinfo is None else started.tz_convert(UTC)
        self._started = started
        self._params: dict[str, object] = {**(params or {}), "run_started": started}
        self._suite_dir = suite_dir
        raw: dict[str, dict[str, Any]] = {}
        self._suites = {e.name: self._read(suite_dir, e, raw) for e in entities}
        self.digest = suite_digest(raw)  # stored with each fault (load/refault.py)
        self._context: Any = None
        self._source: Any = None
        self._definitions: dict[str, gx.ValidationDefinition] = {}
        self._chunks: dict[str, int] = {}
        self._building = threading.Lock()  # warm() builds on a thread of its own
        self._warming: threading.Thread | None = None

    def warm(self) -> None:
        """Imports Great Expectations and builds every entity's definition on a thread of
        its own, while the caller waits on a network source: the 2-3 s are then off the
        run's path. Validation waits for it to finish; a failure is raised there."""
        if self._warming is None:
            self._warming = threading.Thread(target=self._build_all, daemon=True,
                                             name="magsync-gx-warm")
            self._warming.start()

    def _build_all(self) -> None:
        for name in self._suites:
            try:
                self._definition(ENTITIES[name])
            except Exception:  # noqa: BLE001 (raised again, in the caller, by validate)
                return

    def _read(self, suite_dir: Path, entity: Entity, raw: dict[str, dict[str, Any]]) -> _Suite:
        data = load_suite(suite_dir / f"{entity.name}.json")
        raw[entity.name] = json.loads(json.dumps(data))  # as written, before resolving
        columns: set[str] = set()
        whole_table = False
        local: set[tuple[str, str | None]] = set()
        other: set[tuple[str, str | None]] = set()
        for exp in data.get("expectations", []):
            kwargs = exp.get("kwargs", {})
            has_param = any(_param_name(v) is not None for v in kwargs.values())
            exp["kwargs"] = _resolve(entity, kwargs, self._params)
            columns |= _columns_read(exp["kwargs"])
            whole_table |= str(exp.get("type", "")).startswith(_WHOLE_TABLE)
            (local if row_local(exp, has_param) else other).add(_fault_id(exp))
        _check_columns(entity, columns, suite_dir)
        return _Suite(data, frozenset(columns), whole_table, frozenset(local - other))

    def stable_rules(self, entity: str) -> frozenset[tuple[str, str | None]]:
        """(rule, column) of the entity's faults that depend on the record alone."""
        return self._suites[entity].stable if entity in self._suites else frozenset()

    def _definition(self, entity: Entity) -> gx.ValidationDefinition:
        """The entity's GX validation definition, built at its first use."""
        with self._building:
            if entity.name not in self._definitions:
                self._definitions[entity.name] = self._build(entity)
            return self._definitions[entity.name]

    def _build(self, entity: Entity) -> gx.ValidationDefinition:
        import_great_expectations()  # first: it defers what GX's import never uses
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        if self._context is None:
            self._context = gx.get_context(mode="ephemeral")
            self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self._source = self._context.data_sources.add_pandas("magsync")
        data = self._suites[entity.name].data
        try:
            suite = self._context.suites.add(gx.ExpectationSuite(**{**data, "name": entity.name}))
        except Exception as exc:  # GX raises pydantic and its own errors alike
            raise SuiteError(f"suite {entity.name}.json is not a valid suite: {exc}") from exc
        asset = self._source.add_dataframe_asset(entity.name)
        batch = asset.add_batch_definition_whole_dataframe(entity.name)
        vd = gx.ValidationDefinition(name=entity.name, data=batch, suite=suite)
        definition: gx.ValidationDefinition = self._context.validation_definitions.add(vd)
        return definition

    def validate(self, entity: Entity, df: pd.DataFrame) -> ValidationOutcome:
        """Run the entity's suite on one chunk; map failures back to its rows."""
        prepared = self._suites[entity.name]
        _check_frame(entity, df, prepared.columns)
        seq = self._chunks[entity.name] = self._chunks.get(entity.name, 0) + 1
        label = f"{entity.name}-{seq}"
        good = pd.Series(True, index=df.index, name="good")
        if df.empty:
            return ValidationOutcome(entity.name, label, good)
        if self._warming is not None:  # GX's context is not for two threads at once
            self._warming.join()
        definition = self._definition(entity)  # imports GX (transform/gx_import.py)
        from great_expectations.core.run_identifier import RunIdentifier

        run_id = RunIdentifier(run_name=label, run_time=self._started)
        result = definition.run(
            batch_parameters={"dataframe": _gx_view(entity, df, prepared)},
            result_format=RESULT_FORMAT,
            run_id=run_id,
        )
        self._forget_results()
        outcome = ValidationOutcome(entity.name, label, good)
        bad: list[Any] = []
        for res in result.results:
            if res.success:
                continue  # a passing expectation faults nothing, even with `mostly` < 1
            labels = res.result.get("unexpected_index_list")
            if res.exception_info.get("raised_exception") or not labels:
                outcome.table_failures.append(_table_message(entity, res))
                continue
            bad.extend(labels)
            outcome.faults += _faults(entity, df, res, labels)
        good.loc[good.index.isin(bad)] = False
        if outcome.failed:
            outcome.result = _trimmed(result)
        return outcome

    def _forget_results(self) -> None:
        """Drop the result GX just stored: it holds every unexpected value of the chunk."""
        store = self._context.validation_results_store
        for key in store.list_keys():
            store.remove_key(key)


def load_suite(path: Path) -> dict[str, Any]:
    """A suite's JSON as a dict, or SuiteError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SuiteError(f"cannot read suite {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SuiteError(f"suite {path} is not a JSON object")
    return data


def _resolve(entity: Entity, kwargs: dict[str, Any], params: Mapping[str, object]) -> dict:
    """Replace `$name` values by run parameters and datetime bounds by Timestamps."""
    out = dict(kwargs)
    for key, value in kwargs.items():
        name = _param_name(value)
        if name is not None:
            if name not in params:
                raise SuiteError(f"unknown parameter {name!r} in {entity.name} suite")
            out[key] = params[name]
    column = out.get("column")
    if isinstance(column, str) and entity.has(column):
        kind = entity.column(column).kind
        for key in _BOUNDS:
            if out.get(key) is not None and kind in (Kind.TIMESTAMP, Kind.DATE):
                out[key] = _bound(out[key])
    return out


def _param_name(value: object) -> str | None:
    """`name` for GX's `{"$PARAMETER": "name"}` or the short form `"$name"`, else None."""
    if isinstance(value, Mapping) and set(value) == {"$PARAMETER"}:
        return str(value["$PARAMETER"])
    m = _PARAM.match(value) if isinstance(value, str) else None
    return m[1] if m else None


def _bound(value: object) -> pd.Timestamp:
    """A datetime bound as a UTC Timestamp (dates reach GX as UTC midnights, see _gx_view)."""
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def _gx_view(entity: Entity, df: pd.DataFrame, prepared: _Suite) -> pd.DataFrame:
    """The columns the suite reads, dates as UTC midnights.

    GX fingerprints every column it is given (about 1 s per million rows for a full
    customer frame), and compares only tz-aware or nanosecond datetimes vectorised: a
    naive datetime64[s] column goes through a Python call per row.
    """
    view = df if prepared.whole_table else df[[c for c in df.columns if c in prepared.columns]]
    dates = {
        c: view[c].dt.tz_localize(UTC)
        for c in view.columns
        if entity.has(c) and entity.column(c).kind is Kind.DATE
    }
    return view.assign(**dates) if dates else view


def _fault_id(exp: Mapping[str, Any]) -> tuple[str, str | None]:
    """(rule, column) of the faults an expectation raises, as `_faults` names them."""
    kwargs = exp.get("kwargs") or {}
    cols = sorted(_columns_read({k: v for k, v in kwargs.items() if k != "row_condition"}))
    rule = (exp.get("meta") or {}).get("rule") or exp.get("type")
    return str(rule), ",".join(cols) or None


def _columns_read(kwargs: Mapping[str, Any]) -> set[str]:
    """The columns an expectation reads, row condition included."""
    cols = {kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)}
    cols.update(kwargs.get("column_list") or [])
    return cols | set(_condition_columns(kwargs.get("row_condition")))


def _condition_columns(cond: object) -> Iterator[str]:
    if isinstance(cond, Mapping):
        col = cond.get("column")
        if isinstance(col, Mapping) and isinstance(col.get("name"), str):
            yield col["name"]
        for sub in cond.get("conditions") or []:
            yield from _condition_columns(sub)


def _check_columns(entity: Entity, columns: set[str], suite_dir: Path) -> None:
    secret = columns & set(entity.secret_names)
    unknown = columns - set(entity.names) - _LINEAGE
    if secret:
        raise SuiteError(f"{entity.name} suite reads secret column(s) {sorted(secret)}")
    if unknown:
        raise SuiteError(
            f"{entity.name} suite in {suite_dir} names unknown column(s) {sorted(unknown)}"
        )


def _check_frame(entity: Entity, df: pd.DataFrame, needed: frozenset[str]) -> None:
    secret = [c for c in entity.secret_names if c in df.columns]
    if secret:
        raise SecretColumnError(f"secret column(s) {secret} reached {entity.name} validation")
    missing = sorted(needed - set(df.columns))
    if missing:
        raise SuiteError(f"{entity.name} frame lacks column(s) {missing} that its suite reads")
    if not df.index.is_unique:
        raise ValueError(f"{entity.name} frame has duplicate index labels")


def _config(res: ExpectationValidationResult) -> ExpectationConfiguration:
    if res.expectation_config is None:  # GX fills it on every result of a suite run
        raise ValueError("expectation result without its configuration")
    return res.expectation_config


def _rule(res: ExpectationValidationResult) -> str:
    cfg = _config(res)
    return str((cfg.meta or {}).get("rule") or cfg.type)


def _message(res: ExpectationValidationResult, column: str | None) -> str:
    cfg = _config(res)
    if cfg.description:
        return str(cfg.description)
    words = cfg.type.removeprefix("expect_column_values_to_").replace("_", " ")
    return f"{column} fails: {words}" if column else f"fails {cfg.type}"


def _table_message(entity: Entity, res: ExpectationValidationResult) -> str:
    info = res.exception_info or {}
    why = info.get("exception_message") if info.get("raised_exception") else "failed"
    what = _message(res, _config(res).kwargs.get("column"))
    return f"{entity.name} {_rule(res)}: {what} ({why}); names no row, so no record is faulted"


def _faults(
    entity: Entity, df: pd.DataFrame, res: ExpectationValidationResult, labels: list[Any]
) -> list[Fault]:
    """One fault per unexpected row label, with the row's value, key and lineage."""
    kwargs = _config(res).kwargs
    cols = sorted(_columns_read({k: v for k, v in kwargs.items() if k != "row_condition"}))
    column = ",".join(cols) or None
    lineage = [c for c in (KEY_COL, SOURCE_COL, LINE_COL, RAW_DIGEST_COL) if c in df.columns]
    rows = df.loc[labels, list(dict.fromkeys([*cols, *lineage]))]
    if len(cols) == 1:
        values: list[object] = rows[cols[0]].tolist()
    else:
        values = [
            "; ".join(f"{c}={plain(v)}" for c, v in zip(cols, vals, strict=True))
            for vals in rows[cols].itertuples(index=False)
        ]
    return row_faults(
        entity,
        Stage.VALIDATE,
        rows,
        rule=_rule(res),
        column=column,
        message=_message(res, column),
        values=values,
    )


def _sample(value: object) -> object:
    shown = plain(value)
    return (
        shown
        if shown is None or isinstance(shown, int | float | bool)
        else shown_value(shown, secret=False, limit=_DOCS_VALUE_LIMIT)
    )


def _trimmed(result: ExpectationSuiteValidationResult) -> ExpectationSuiteValidationResult:
    """The result without full unexpected lists: Data Docs shows short samples only."""
    for res in result.results:
        detail = res.result
        for key in _DOCS_DROP:
            detail.pop(key, None)
        for key in ("partial_unexpected_list", "partial_unexpected_index_list"):
            if key in detail:
                detail[key] = [_sample(v) for v in detail[key][:_DOCS_SAMPLE]]
        for count in detail.get("partial_unexpected_counts", [])[:_DOCS_SAMPLE]:
            count["value"] = _sample(count.get("value"))
        if "partial_unexpected_counts" in detail:
            detail["partial_unexpected_counts"] = detail["partial_unexpected_counts"][:_DOCS_SAMPLE]
    return result


def build_data_docs(outcomes: Iterable[ValidationOutcome], out_dir: Path) -> Path | None:
    """Render the failing outcomes' results as Data Docs HTML; the index page, or None."""
    failing = [o for o in outcomes if o.failed and o.result is not None]
    if not failing:
        return None
    import_great_expectations()  # first: it defers what GX's import never uses
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = {
        "class_name": "SiteBuilder",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(out_dir),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    context.add_data_docs_site("magsync", site)  # type: ignore[arg-type]
    store = context.validation_results_store
    for outcome in failing:
        run_id = RunIdentifier(run_name=outcome.label, run_time=datetime.now(UTC))
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=outcome.entity),
            run_id=run_id,
            batch_identifier=outcome.label,
        )
        store.set(key, outcome.result)
    context.build_data_docs(site_names=["magsync"])
    index = out_dir / "index.html"
    return index if index.exists() else None
