"""What a sync's staging found, as values handed from step to step: per entity its key
index and delete plan, the faults, the cursors.

The stager gathers it batch by batch in its own `StageState`; it hands on a frozen
`Staged`, and the guards, the merge and the export only read that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from magsync.transform.diff import KeyIndex
from magsync.transform.faults import Fault


class DeleteDetection(StrEnum):
    """Whether a run looked for the stored records its input lacks, or why not."""

    DETECTED = "detected"
    NOT_FULL = "not full"  # an incremental run never deletes
    DERIVED = "derived"  # made up from references, not a full list
    KEYLESS_FAULTS = "keyless faults"  # a record without a key might be a stored one


@dataclass(frozen=True)
class EntityPlan:
    """What staging found for one entity, and what the merge deletes."""

    index: KeyIndex  # the stored keys, marked with what this run received
    keyless_faults: int = 0
    derived: bool = False
    detection: DeleteDetection = DeleteDetection.NOT_FULL
    deletes: tuple[str, ...] = ()


def delete_detection(plan: EntityPlan, *, full: bool) -> DeleteDetection:
    """Whether the stored keys a run did not receive are deletes: only for a full list,
    and only when every record the run could not read had a key."""
    if not full:
        return DeleteDetection.NOT_FULL
    if plan.derived:
        return DeleteDetection.DERIVED
    if plan.keyless_faults:
        return DeleteDetection.KEYLESS_FAULTS
    return DeleteDetection.DETECTED


@dataclass(frozen=True)
class Staged:
    """A staged run: what the steps after staging need."""

    plans: Mapping[str, EntityPlan]
    faults: tuple[Fault, ...] = ()
    cursors: Mapping[str, str] = field(default_factory=dict)  # entity -> new cursor value
    context: str = ""  # the typing context digest of the run (transform/rawdigest.py)
    suite_digest: str | None = None  # of the suites that judged `faults`; None: not validated


@dataclass
class StageState:
    """Staging's accumulators, private to one stager."""

    indexes: dict[str, KeyIndex]
    keyless_faults: Counter[str] = field(default_factory=Counter)
    derived: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    faulted_customers: set[str] = field(default_factory=set)
    # customer key -> (source, line) of the record that won over earlier ones
    replaced_customers: dict[str, tuple[object, object]] = field(default_factory=dict)
    group_ids: set[int] = field(default_factory=set)
    suite_digest: str | None = None

    def staged(self) -> Staged:
        """The frozen result, before delete detection."""
        plans = {name: EntityPlan(index, self.keyless_faults[name], name in self.derived)
                 for name, index in self.indexes.items()}
        return Staged(plans, tuple(self.faults), suite_digest=self.suite_digest)
