"""A store migration: customers from a source (CSV export or SOAP store) into a Magento
store through its SOAP API. Plain steps, then a thin Prefect flow (`migrate_flow`).

Per source batch: normalise (transform.prepare), drop duplicate keys, run the validation
suites (the store accepts an invalid email: the suites decide before anything is
written), then upsert (load/magento_upsert.py). A fault on one record never stops the
others; every outcome lands in the report.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from magsync.flows.artifacts import publish_run
from magsync.flows.settings import LayeredSettings, Settings, SourceSettings, load_layered
from magsync.flows.watch import watched
from magsync.load.guards import FaultBudget, faulted_records, is_warning
from magsync.load.idmap import IdMap
from magsync.load.magento_target import (
    MagentoTarget,
    StoreMaps,
    address_payload,
    customer_payload,
    payload_hash,
)
from magsync.load.magento_upsert import Hook, Item, Outcome, Upserter
from magsync.load.regions import REGION_UNKNOWN, RegionResolver, resolve_regions
from magsync.load.report import (
    RecordsWriter,
    RunReport,
    prune_reports,
)
from magsync.load.report_page import write_page
from magsync.load.runs import magsync_version, new_run_id
from magsync.transform.batch import RawBatch
from magsync.transform.errors import ConfigError, GuardRefusedError, MagsyncError
from magsync.transform.faults import Fault, Stage
from magsync.transform.normalise import clean_strings
from magsync.transform.prepare import Prepared, prepare
from magsync.transform.schema import ADDRESS, CUSTOMER, GROUP, KEY_COL, LINE_COL, SOURCE_COL
from magsync.transform.validate import BUNDLED_SUITES, SuiteValidator
from magsync.transform.values import opt_int, opt_str

log = logging.getLogger("magsync")
MIGRATE_CONFIG = Path("magsync-migrate.toml")
MISSING_TARGET_KEY = "no target API key: set MAGSYNC_TARGET__API_KEY"
TASK_OPTIONS: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE}


class MagentoTargetSettings(BaseModel):
    """The store written to. Its key comes from MAGSYNC_TARGET__API_KEY only."""

    model_config = ConfigDict(extra="ignore")  # a sync's MAGSYNC_TARGET__* are not ours
    url: str | None = None
    api_user: str | None = None
    api_key: SecretStr | None = None
    ca_bundle: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    timeout_s: float = 60.0
    retries: int = Field(4, ge=0, description="for reads; writes are never resent blindly")
    backoff_base_s: float = 1.0
    multicall_size: int = Field(50, ge=1)
    concurrency: int = Field(2, ge=1, le=16)


class MigrateSettings(LayeredSettings):
    """Every knob of a migration: defaults < magsync-migrate.toml < MAGSYNC_* < CLI."""

    model_config = SettingsConfigDict(env_prefix="MAGSYNC_", env_nested_delimiter="__",
                                      toml_file=MIGRATE_CONFIG, extra="forbid")

    source: SourceSettings = SourceSettings()
    target: MagentoTargetSettings = MagentoTargetSettings()
    output_dir: Path = Path("data/out")
    state_path: Path | None = None  # default: <output_dir>/migrate-state.sqlite
    batch_size: int = Field(5_000, ge=1)
    csv_block_bytes: int = Field(8 << 20, ge=64)
    on_existing: Literal["update", "skip", "fault"] = "update"
    website_map: dict[int, int] = {}
    store_map: dict[int, int] = {}
    group_map: dict[int, int] = {}
    same_group_ids: bool = False
    max_fault_ratio: float = Field(0.05, ge=0, le=1)
    delete_missing: bool = False
    allow_mass_delete: bool = False
    max_delete_ratio: float = Field(0.10, ge=0, le=1)
    dry_run: bool = False
    keep_reports_days: int = Field(30, ge=0)
    gender_labels: dict[str, int] = {"Male": 1, "Female": 2}
    website_codes: dict[str, int] = {"admin": 0, "base": 1}
    expectations_dir: Path | None = None
    log_level: str = "INFO"
    progress: bool = True  # the reading progress line on a terminal; --quiet: off

    @field_validator("output_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def state_file(self) -> Path:
        """The id map's SQLite file."""
        return self.state_path or self.output_dir / "migrate-state.sqlite"



def load_migrate_settings(config_file: Path | None = None, **overrides: Any) -> MigrateSettings:
    """Settings from the layers, with `overrides` (CLI arguments) on top."""
    return load_layered(MigrateSettings, config_file, **overrides)


# --- opening both ends -------------------------------------------------------------------


def open_source(settings: MigrateSettings) -> Any:
    """The configured source (the sync's sources, always read in full)."""
    from magsync.flows.sync import build_source

    sync_view = Settings.model_construct(
        source=settings.source, batch_size=settings.batch_size, full=True,
        csv_block_bytes=settings.csv_block_bytes, output_dir=settings.output_dir,
        website_codes=dict(settings.website_codes))
    return build_source(sync_view)


def open_target(settings: MigrateSettings) -> MagentoTarget:
    """The target store's client (not yet logged in)."""
    from magsync.magento.client import MagentoClient

    t = settings.target
    if not t.url or not t.api_user:
        raise ConfigError("a migration needs --to-url and --to-api-user")
    if not t.url.startswith(("http://", "https://")):
        raise ConfigError(f"target URL must be http(s): {t.url.split('://')[0]}://…")
    if t.api_key is None or not t.api_key.get_secret_value():
        raise ConfigError(MISSING_TARGET_KEY)
    basic = None
    if t.basic_auth_user:
        password = t.basic_auth_password.get_secret_value() if t.basic_auth_password else ""
        basic = (t.basic_auth_user, password)
    try:
        client = MagentoClient(
            t.url, t.api_user, t.api_key.get_secret_value(), timeout=t.timeout_s,
            verify=str(t.ca_bundle) if t.ca_bundle else True, basic_auth=basic,
            retries=t.retries, backoff_base=t.backoff_base_s, pool_size=t.concurrency + 1)
    except ValueError as err:
        raise ConfigError(f"target: {err}") from None
    return MagentoTarget(client, multicall_size=t.multicall_size, concurrency=t.concurrency)


def scope_of(settings: MigrateSettings, target: MagentoTarget) -> str:
    """The id map scope: which source into which target."""
    return f"{settings.source.name} -> {target.describe()}"


def store_maps(settings: MigrateSettings, target: MagentoTarget) -> StoreMaps:
    """Id maps from the settings plus the target's groups."""
    return StoreMaps(websites=settings.website_map, stores=settings.store_map,
                     group_ids=settings.group_map, target_groups=target.groups(),
                     same_group_ids=settings.same_group_ids)


# --- reading a batch ---------------------------------------------------------------------


@dataclass
class Batch:
    """A prepared batch minus duplicates and invalid rows, with what was set aside."""

    prepared: Prepared
    frame: pd.DataFrame
    faults: list[Fault] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # report rows


def read_batch(raw: RawBatch, idmap: IdMap, validator: SuiteValidator | None,
               gender_labels: dict[str, int]) -> Batch:
    """Normalise, de-duplicate (last wins in a batch; a key read in an earlier batch was
    already handled, so a repeat is skipped) and validate one source batch."""
    prepared = prepare(raw, gender_labels)
    entity = prepared.entity
    frame = prepared.frame
    out = Batch(prepared, frame, list(prepared.faults))
    if entity is GROUP:
        return out
    later = frame[KEY_COL].duplicated(keep="last").to_numpy(dtype=bool)
    out.skipped += _skips(entity.name, frame[later],
                          "a later record with the same key replaces this one")
    frame = frame[~later]
    keys = frame[KEY_COL].tolist()
    # Present (never deleted) whether good or faulted; repeats are judged on good rows.
    idmap.mark_seen(entity.name, keys + list(prepared.faulted_keys))
    earlier = idmap.mark_seen(f"{entity.name}:read", keys)
    again = frame[KEY_COL].isin(list(earlier)).to_numpy(dtype=bool)
    out.skipped += _skips(entity.name, frame[again],
                          "the same key was read in an earlier batch, which was written")
    frame = frame[~again]
    if validator is not None:
        outcome = validator.validate(entity, frame.drop(columns=entity.secret_names))
        out.faults += outcome.faults
        frame = frame[outcome.good.to_numpy(dtype=bool)]
    if entity is CUSTOMER and "email" in raw.frame.columns:  # as written, not lower-cased
        frame = frame.assign(email=clean_strings(raw.frame["email"]).reindex(frame.index))
    out.frame = frame
    return out


def _skips(entity: str, frame: pd.DataFrame, why: str) -> list[dict[str, Any]]:
    return [{"entity": entity, "key": str(k), "action": "skipped", "message": why,
             "source": opt_str(s), "source_line": opt_int(n)}
            for k, s, n in zip(frame[KEY_COL], frame[SOURCE_COL], frame[LINE_COL], strict=True)]


def customer_items(frame: pd.DataFrame, maps: StoreMaps) -> tuple[list[Item], list[Fault]]:
    """Payloads of the customers of a batch; an unmappable group faults its customer."""
    items, faults = [], []
    for row in frame.to_dict("records"):
        key, src, line = str(row[KEY_COL]), opt_str(row[SOURCE_COL]), opt_int(row[LINE_COL])
        if opt_int(row["website_id"]) is None:  # the store would put it on website 0
            faults.append(Fault(entity=CUSTOMER.name, stage=Stage.INTEGRITY, key=key,
                                rule="website_required", column="website_id",
                                message="no website_id: cannot place the customer",
                                source=src, source_line=line))
            continue
        payload, why = customer_payload(row, maps)
        if why:
            faults.append(Fault(entity=CUSTOMER.name, stage=Stage.INTEGRITY, key=key,
                                rule="group_missing_on_target", column="group_id",
                                value=str(row["group_id"]), message=why, source=src,
                                source_line=line))
            continue
        items.append(Item(key, payload, payload_hash(payload), src, line,
                          email=str(payload.get("email") or "").lower() or None,
                          website=payload["website_id"]))
    return items, faults


def address_items(frame: pd.DataFrame, regions: RegionResolver
                  ) -> tuple[list[Item], list[Fault]]:
    """Payloads of the addresses of a batch, region ids from the target's directory; a
    warning for each region the target's list for its country lacks."""
    rows = frame.to_dict("records")
    payloads = [address_payload(row) for row in rows]
    unresolved = resolve_regions(payloads, regions)
    items, warnings = [], []
    for row, payload, why in zip(rows, payloads, unresolved, strict=True):
        key, src, line = str(row[KEY_COL]), opt_str(row[SOURCE_COL]), opt_int(row[LINE_COL])
        items.append(Item(key, payload, payload_hash(payload), src, line,
                          parent_key=str(row["customer_key"])))
        if why:
            warnings.append(Fault(entity=ADDRESS.name, stage=Stage.LOAD, key=key,
                                  rule=REGION_UNKNOWN, column="region",
                                  value=opt_str(row.get("region")), message=why, source=src,
                                  source_line=line))
    return items, warnings


# --- the run -----------------------------------------------------------------------------


@dataclass
class Migration:
    """Everything one migration carries from step to step."""

    settings: MigrateSettings
    run_id: str
    report: RunReport
    report_dir: Path
    records: RecordsWriter
    idmap: IdMap
    target: MagentoTarget
    maps: StoreMaps
    validator: SuiteValidator
    upserter: Upserter
    regions: RegionResolver
    budget: FaultBudget
    keyless: Counter[str] = field(default_factory=Counter)


def open_migration(settings: MigrateSettings, target: MagentoTarget, source_description: str,
                   hook: Hook | None = None) -> Migration:
    """Report, id map (locked) and validator; the target must be open (logged in)."""
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    report_dir = settings.output_dir / "reports" / run_id
    report = RunReport(run_id=run_id, source=settings.source.name, input=source_description,
                       target=target.describe(), version=magsync_version(), mode="migrate",
                       dry_run=settings.dry_run, started_at=started,
                       output_dir=str(settings.output_dir))
    with report.timed("validate"):
        validator = SuiteValidator(settings.expectations_dir or BUNDLED_SUITES, started)
    idmap = IdMap(settings.state_file, scope_of(settings, target), readonly=settings.dry_run)
    if not settings.dry_run:
        idmap.lock()
    upserter = Upserter(target, idmap, run_id, policy=settings.on_existing,
                        dry_run=settings.dry_run, hook=hook)
    log.info("migration %s: %s -> %s, state %s", run_id, source_description,
             target.describe(), settings.state_file)
    m = Migration(settings, run_id, report, report_dir, RecordsWriter(report_dir, run_id),
                  idmap, target, store_maps(settings, target), validator, upserter,
                  RegionResolver(target), FaultBudget(settings.max_fault_ratio))
    upserter.sink = lambda outcome: record(m, outcome, [])
    return m


def migrate_batches(m: Migration, batches: Iterable[RawBatch]) -> None:
    """Reads, checks and writes every source batch."""
    for raw in watched(batches, run_id=m.run_id, command="migrate",  # progress: terminal, UI
                       source_name=m.settings.source.name, progress=m.settings.progress):
        with m.report.timed("read"):  # normalise, de-duplicate, validate
            batch = read_batch(raw, m.idmap, m.validator, m.settings.gender_labels)
        entity = batch.prepared.entity
        m.keyless[entity.name] += batch.prepared.keyless_faults
        faults = batch.faults
        if entity is GROUP:
            m.maps.learn_groups(batch.frame)
            record(m, Outcome(), faults)
            continue
        read = len(batch.frame) + faulted_records(faults) + len(batch.skipped)
        if entity is CUSTOMER:
            items, more = customer_items(batch.frame, m.maps)
            faults += more
            m.upserter.faulted.update(f.key for f in faults if f.key)
        else:
            items, more = address_items(batch.frame, m.regions)
            faults += more
        record(m, Outcome(), faults, batch.skipped)  # reported even when the run stops here
        m.budget.before_writes(read, faults)
        with m.report.timed("write"):
            outcome = m.upserter.customers(items) if entity is CUSTOMER \
                else m.upserter.addresses(items)
        record(m, outcome, [])


def record(m: Migration, outcome: Outcome, faults: list[Fault],
           skipped: list[dict[str, Any]] | None = None) -> None:
    """Counts and lists a batch's outcomes (unchanged records are only counted)."""
    rows = outcome.rows + (skipped or [])
    for row in rows:
        m.report.count(row["entity"], row["action"])
    listed = [r for r in rows if r["action"] != "unchanged"]
    if listed:
        m.records.write({name: [r.get(name) for r in listed] for name in
                         ("entity", "key", "action", "changed_fields", "message", "source",
                          "source_line")})
    m.budget.store_faults(outcome.faults)
    faults = faults + outcome.faults
    for fault in faults:
        m.report.count(fault.entity, "warning" if is_warning(fault) else "faulted")
    m.records.write_faults(faults)


def delete_missing(m: Migration) -> None:
    """With --delete-missing: deletes what this migration wrote and the source lost."""
    if not m.settings.delete_missing:
        return
    blocked = [e for e, n in m.keyless.items() if n]
    if blocked:
        m.report.notes.append(f"no deletions: faulted record(s) without a key in "
                              f"{', '.join(sorted(blocked))} might be migrated ones")
        return
    with m.report.timed("delete"):
        record(m, m.upserter.delete_missing(m.settings.max_delete_ratio,
                                            m.settings.allow_mass_delete), [])


def finish(m: Migration, status: str, error: str | None = None) -> RunReport:
    """Closes the report and the id map."""
    report = m.report
    report.status, report.error = status, error
    report.finished_at = datetime.now(UTC)
    report.notes.append(f"{m.target.requests} multiCall request(s) to the target, "
                        f"{m.target.writes} write call(s)")
    m.records.close()
    report.write_summary(m.report_dir)
    prune_reports(m.settings.output_dir / "reports", m.settings.keep_reports_days)
    m.idmap.close()
    write_page(m.report_dir)  # after the id map's lock is released
    return report


# --- Prefect -----------------------------------------------------------------------------


@task(name="migrate", **TASK_OPTIONS)
def migrate_task(m: Migration, source: Any) -> None:
    """Read, check and write every batch."""
    migrate_batches(m, source)


@task(name="delete-missing", **TASK_OPTIONS)
def delete_task(m: Migration) -> None:
    """Delete what the source no longer has (with --delete-missing)."""
    delete_missing(m)


def run_migrate(settings: MigrateSettings, hook: Hook | None = None, *,
                tasks: bool = True) -> dict[str, Any]:
    """One migration, step by step; the report as a dict. Raises MagsyncError with the
    report attached (`err.report`) when it fails. `tasks=False` runs without Prefect."""
    source = open_source(settings)
    StoreMaps(group_ids=settings.group_map, same_group_ids=settings.same_group_ids
              ).check_group_source(bool(getattr(source, "has_groups", True)))
    with open_target(settings) as target:
        m = open_migration(settings, target, source.describe(), hook)
        try:
            if tasks:
                migrate_task(m, source)
                delete_task(m)
            else:
                migrate_batches(m, source)
                delete_missing(m)
            if settings.dry_run:
                m.report.notes.append(
                    f"dry run: {m.budget.faulted} record(s) of {m.budget.records} faulted "
                    "while reading, validating and mapping; the store's answers (its own "
                    "faults) are unknown until a real run")
            m.budget.at_end()
        except MagsyncError as err:
            status = "refused" if isinstance(err, GuardRefusedError) else "failed"
            err.report = finish(m, status, str(err)).to_dict()
            raise
        except BaseException as err:
            finish(m, "failed", f"{type(err).__name__}: {err}")
            raise
        return finish(m, "dry-run" if settings.dry_run else "done").to_dict()


@flow(name="magsync-migrate", persist_result=False, log_prints=False)
def migrate_flow(overrides: dict[str, Any] | None = None,
                 config_file: str | None = None) -> Any:
    """Migrate customers into a Magento store. Secrets come from the environment only."""
    try:
        settings = load_migrate_settings(Path(config_file) if config_file else None,
                                         **(overrides or {}))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return Failed(message=f"invalid settings: {where}: {first.get('msg')}",
                      data={"exit_code": ConfigError.exit_code})
    try:
        return publish_run(run_migrate(settings), "migrate")  # artifacts, then the report
    except MagsyncError as err:
        report = dict(getattr(err, "report", None) or {})
        report["exit_code"] = err.exit_code
        publish_run(report, "migrate")  # artifacts: counts and report link, faults
        return Failed(message=str(err), data=report)
