"""A store migration's steps: open both ends, read each source batch, write it, delete
what the source lost, close. flows/migrate.py composes them (and wraps them in Prefect).

Per source batch: normalise (transform.prepare), drop duplicate keys (the sync's rule,
transform.integrity.last_of_each_key; a key read in an earlier batch is skipped), run the
validation suites (the store accepts an invalid email: the suites decide before anything
is written), then upsert (load/magento_upsert.py). A fault on one record never stops the
others; every outcome lands in the report (load/migration_report.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from magsync.load.guards import faulted_records
from magsync.load.idmap import IdMap
from magsync.load.magento_target import (
    MagentoTarget,
    StoreMaps,
    address_payload,
    customer_payload,
    payload_hash,
)
from magsync.load.magento_upsert import Hook, Outcome, Upserter
from magsync.load.migration_plan import Policy, Record
from magsync.load.migration_report import MigrationReport
from magsync.load.regions import REGION_UNKNOWN, RegionResolver, resolve_regions
from magsync.load.report import RunReport
from magsync.load.runs import magsync_version, new_run_id
from magsync.magento.connect import Connection, Secret, open_client
from magsync.transform.batch import RawBatch
from magsync.transform.errors import ConfigError
from magsync.transform.faults import Fault, Stage
from magsync.transform.integrity import last_of_each_key
from magsync.transform.normalise import clean_strings
from magsync.transform.prepare import Prepared, prepare
from magsync.transform.schema import ADDRESS, CUSTOMER, GROUP, KEY_COL, LINE_COL, SOURCE_COL
from magsync.transform.validate import BUNDLED_SUITES, SuiteValidator
from magsync.transform.values import opt_int, opt_str

log = logging.getLogger("magsync")
MISSING_TARGET_KEY = "no target API key: set MAGSYNC_TARGET__API_KEY"


class TargetConfig(Connection, Protocol):
    """The target store's settings (read-only: the settings model fits)."""

    @property
    def api_key(self) -> Secret | None:
        """The target's API key."""
        ...

    @property
    def multicall_size(self) -> int:
        """Writes per multiCall."""
        ...


def open_target(t: TargetConfig) -> MagentoTarget:
    """The target store's client (not yet logged in)."""
    if not t.url or not t.api_user:
        raise ConfigError("a migration needs --to-url and --to-api-user")
    if not t.url.startswith(("http://", "https://")):
        raise ConfigError(f"target URL must be http(s): {t.url.split('://')[0]}://…")
    if t.api_key is None or not t.api_key.get_secret_value():
        raise ConfigError(MISSING_TARGET_KEY)
    try:
        client = open_client(t, t.api_key.get_secret_value())
    except ValueError as err:
        raise ConfigError(f"target: {err}") from None
    return MagentoTarget(client, multicall_size=t.multicall_size, concurrency=t.concurrency)


def id_map_scope(source_name: str, target: MagentoTarget) -> str:
    """The id map's scope: which source into which target."""
    return f"{source_name} -> {target.describe()}"


# --- reading a batch ---------------------------------------------------------------------


@dataclass
class Batch:
    """A prepared batch minus duplicates and invalid rows, with what was set aside."""

    prepared: Prepared
    frame: pd.DataFrame
    faults: list[Fault] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # report rows


def read_batch(raw: RawBatch, idmap: IdMap, validator: SuiteValidator | None,
               gender_labels: Mapping[str, int]) -> Batch:
    """Normalise, de-duplicate (last wins in a batch; a key read in an earlier batch was
    already handled, so a repeat is skipped) and validate one source batch."""
    prepared = prepare(raw, dict(gender_labels))
    entity = prepared.entity
    frame = prepared.frame
    out = Batch(prepared, frame, list(prepared.faults))
    if entity is GROUP:
        return out
    # The sync's duplicate rule; the migration reports the replaced records as skipped.
    last, _ = last_of_each_key(entity, frame)
    out.skipped += _skips(entity.name, frame[~last],
                          "a later record with the same key replaces this one")
    frame = frame[last]
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


def customer_records(frame: pd.DataFrame, maps: StoreMaps) -> tuple[list[Record], list[Fault]]:
    """Payloads of the customers of a batch; an unmappable group faults its customer."""
    records, faults = [], []
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
        records.append(Record(key, payload, payload_hash(payload), src, line,
                              email=str(payload.get("email") or "").lower() or None,
                              website=payload["website_id"]))
    return records, faults


def address_records(frame: pd.DataFrame, regions: RegionResolver
                    ) -> tuple[list[Record], list[Fault]]:
    """Payloads of the addresses of a batch, region ids from the target's directory; a
    warning for each region the target's list for its country lacks."""
    rows = frame.to_dict("records")
    payloads = [address_payload(row) for row in rows]
    unresolved = resolve_regions(payloads, regions)
    records, warnings = [], []
    for row, payload, why in zip(rows, payloads, unresolved, strict=True):
        key, src, line = str(row[KEY_COL]), opt_str(row[SOURCE_COL]), opt_int(row[LINE_COL])
        records.append(Record(key, payload, payload_hash(payload), src, line,
                              parent_key=str(row["customer_key"])))
        if why:
            warnings.append(Fault(entity=ADDRESS.name, stage=Stage.LOAD, key=key,
                                  rule=REGION_UNKNOWN, column="region",
                                  value=opt_str(row.get("region")), message=why, source=src,
                                  source_line=line))
    return records, warnings


# --- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationOptions:
    """What a migration's steps take from its settings."""

    output_dir: Path
    state_file: Path
    scope: str  # the id map's: which source into which target
    source_name: str
    dry_run: bool = False
    on_existing: Policy = "update"
    max_fault_ratio: float = 0.05
    expectations_dir: Path | None = None
    gender_labels: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Migration:
    """What one migration's steps share: the target, the id map, the report."""

    options: MigrationOptions
    run_id: str
    out: MigrationReport
    idmap: IdMap
    target: MagentoTarget
    maps: StoreMaps
    validator: SuiteValidator
    upserter: Upserter
    regions: RegionResolver

    @property
    def report(self) -> RunReport:
        """The run's report."""
        return self.out.report


def open_migration(o: MigrationOptions, target: MagentoTarget, source_description: str,
                   maps: StoreMaps, hook: Hook | None = None) -> Migration:
    """Report, id map (locked) and validator; the target must be open (logged in)."""
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    report = RunReport(run_id=run_id, source=o.source_name, input=source_description,
                       target=target.describe(), version=magsync_version(), mode="migrate",
                       dry_run=o.dry_run, started_at=started, output_dir=str(o.output_dir))
    with report.timed("validate"):
        validator = SuiteValidator(o.expectations_dir or BUNDLED_SUITES, started)
    idmap = IdMap(o.state_file, o.scope, readonly=o.dry_run)
    if not o.dry_run:
        idmap.lock()
    out = MigrationReport.open(report, o.output_dir, o.max_fault_ratio)
    upserter = Upserter(target, idmap, run_id, policy=o.on_existing, dry_run=o.dry_run,
                        hook=hook, sink=out.record)
    log.info("migration %s: %s -> %s, state %s", run_id, source_description,
             target.describe(), o.state_file)
    return Migration(o, run_id, out, idmap, target, maps, validator, upserter,
                     RegionResolver(target))


def migrate_batches(m: Migration, batches: Iterable[RawBatch]) -> Counter[str]:
    """Reads, checks and writes every source batch; returns the faulted records without a
    key, per entity (they block deletions)."""
    keyless: Counter[str] = Counter()
    for raw in batches:
        with m.report.timed("read"):  # normalise, de-duplicate, validate
            batch = read_batch(raw, m.idmap, m.validator, m.options.gender_labels)
        entity = batch.prepared.entity
        keyless[entity.name] += batch.prepared.keyless_faults
        faults = batch.faults
        if entity is GROUP:
            m.maps.learn_groups(batch.frame)
            m.out.record(Outcome(), faults)
            continue
        read = len(batch.frame) + faulted_records(faults) + len(batch.skipped)
        if entity is CUSTOMER:
            records, more = customer_records(batch.frame, m.maps)
            faults += more
            m.upserter.faulted.update(f.key for f in faults if f.key)
        else:
            records, more = address_records(batch.frame, m.regions)
            faults += more
        m.out.record(Outcome(), faults, batch.skipped)  # reported even when the run stops here
        m.out.budget.before_writes(read, faults)
        with m.report.timed("write"):
            outcome = m.upserter.customers(records) if entity is CUSTOMER \
                else m.upserter.addresses(records)
        m.out.record(outcome)
    return keyless


def delete_missing(m: Migration, keyless: Mapping[str, int], max_ratio: float,
                   allow_mass: bool) -> None:
    """Deletes what this migration wrote and the source lost (with --delete-missing)."""
    blocked = [e for e, n in keyless.items() if n]
    if blocked:
        m.report.notes.append(f"no deletions: faulted record(s) without a key in "
                              f"{', '.join(sorted(blocked))} might be migrated ones")
        return
    with m.report.timed("delete"):
        m.out.record(m.upserter.delete_missing(max_ratio, allow_mass))


def check_end(m: Migration) -> None:
    """Fails a run that ended over its fault ratio; a dry run notes what it cannot know."""
    budget = m.out.budget
    if m.options.dry_run:
        m.report.notes.append(
            f"dry run: {budget.faulted} record(s) of {budget.records} faulted while "
            "reading, validating and mapping; the store's answers (its own faults) are "
            "unknown until a real run")
    budget.at_end()


def finish(m: Migration, status: str, error: str | None, keep_reports_days: int
           ) -> RunReport:
    """Closes the report and the id map."""
    note = (f"{m.target.requests} multiCall request(s) to the target, "
            f"{m.target.writes} write call(s)")
    report = m.out.finish(status, error, note, keep_reports_days)
    m.idmap.close()
    m.out.write_page()  # after the id map's lock is released
    return report
