"""The guards that refuse a run before it writes: records conservation, the fault ratio,
the delete ratio. A sync checks them all once its input is staged; a migration checks the
delete ratio before deleting and its fault ratio as it goes (`FaultBudget`).

A migration's fault ratio is checked before each batch's writes and at the end. Faults
found while reading, validating and mapping a batch are known before anything of it is
written, so the run stops at the first batch whose faults push the ratio over the
limit. The store's own faults arrive with its answers: they are counted as they come,
and a run that ends over the limit fails. Warnings (a rule in WARNING_RULES) do not count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from magsync.load.regions import REGION_UNKNOWN
from magsync.load.report import RunReport
from magsync.load.sync_state import EntityPlan
from magsync.transform.errors import ConservationError, GuardRefusedError, MagsyncError
from magsync.transform.faults import Fault
from magsync.transform.schema import LOAD_ORDER

WARNING_RULES = frozenset({REGION_UNKNOWN})


class FaultRatioError(MagsyncError):
    """A migration ended with more faulted records than its fault ratio allows."""


def is_warning(fault: Fault) -> bool:
    """Whether a fault only warns: the record was still written."""
    return fault.rule in WARNING_RULES


def faulted_records(faults: Iterable[Fault]) -> int:
    """Distinct faulted records among faults (keyless ones count one each)."""
    keys: set[tuple[str, str]] = set()
    keyless = 0
    for fault in faults:
        if is_warning(fault):
            continue
        if fault.key is None:
            keyless += 1
        else:
            keys.add((fault.entity, fault.key))
    return len(keys) + keyless


@dataclass
class FaultBudget:
    """Records read and records faulted so far, against `max_ratio` (None: no limit)."""

    max_ratio: float | None
    records: int = 0
    faulted: int = 0

    @property
    def ratio(self) -> float:
        """Faulted records over records read."""
        return self.faulted / self.records if self.records else 0.0

    def _over(self) -> bool:
        return self.max_ratio is not None and self.records > 0 and self.ratio > self.max_ratio

    def _text(self) -> str:
        return (f"fault ratio {self.ratio:.1%} ({self.faulted} of {self.records} records) "
                f"exceeds --max-fault-ratio {self.max_ratio:.1%}")

    def before_writes(self, records: int, faults: Iterable[Fault]) -> None:
        """Counts a batch's read and mapping faults; refuses its writes over the limit."""
        self.records += records
        self.faulted += faulted_records(faults)
        if self._over():
            raise GuardRefusedError(f"{self._text()} before this batch was written: the run "
                                    "stops here (earlier batches were written)")

    def store_faults(self, faults: Iterable[Fault]) -> None:
        """Counts faults the store answered (or the upsert found) for records read."""
        self.faulted += faulted_records(faults)

    def at_end(self) -> None:
        """Fails a run that ended over the limit."""
        if self._over():
            raise FaultRatioError(f"{self._text()}: see the report's faults")


def check_delete_ratio(deletes: int, total: int, max_ratio: float, *, allow_mass: bool,
                       what: str, unwritten: str, entity: str | None = None) -> None:
    """Refuses deleting more than `max_ratio` of `total` records (unless `allow_mass`):
    the one delete guard of syncs and migrations. `what` names the records, `unwritten`
    what the refusal spared ("written", "deleted")."""
    if allow_mass or not total or deletes / total <= max_ratio:
        return
    raise GuardRefusedError(
        f"{f'{entity}: ' if entity else ''}{deletes} of {total} {what} would be deleted "
        f"({deletes / total:.1%} > {max_ratio:.0%}); rerun with --allow-mass-delete if that "
        f"is intended: nothing was {unwritten}")


def check_conservation(report: RunReport) -> None:
    """Fails the run, before any write, unless every record read is accounted for once."""
    problems = report.unbalanced()
    report.conservation = "; ".join(problems) if problems else "ok"
    if problems:
        raise ConservationError("records read and records accounted for differ: "
                                + "; ".join(problems))


def check_fault_ratio(report: RunReport, max_ratio: float) -> None:
    """Refuses a staged run whose faulted records exceed `max_ratio` of those read."""
    total = sum(sum(c.values()) - c["deleted"] for c in report.counts.values())
    faulted = report.faulted
    if total and faulted / total > max_ratio:
        raise GuardRefusedError(
            f"fault ratio {faulted / total:.1%} ({faulted} of {total} records) exceeds "
            f"max_fault_ratio {max_ratio:.1%}: nothing was written")


def check_run(report: RunReport, plans: Mapping[str, EntityPlan], max_fault_ratio: float,
              max_delete_ratio: float, *, allow_mass: bool) -> None:
    """Refuses a run before any write: records unaccounted for, too many faults, too many
    deletes of any entity's stored records."""
    check_conservation(report)
    check_fault_ratio(report, max_fault_ratio)
    for entity in (e for e in LOAD_ORDER if e.name in plans):
        plan = plans[entity.name]
        check_delete_ratio(len(plan.deletes), plan.index.active_count, max_delete_ratio,
                           allow_mass=allow_mass, what="stored records", unwritten="written",
                           entity=entity.name)
