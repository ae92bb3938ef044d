"""The guards a run passes before it writes, and when a run looks for deletes: pure."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from magsync.load.guards import check_conservation, check_delete_ratio, check_fault_ratio
from magsync.load.report import RunReport
from magsync.load.sync_state import DeleteDetection, EntityPlan, delete_detection
from magsync.transform.diff import KeyIndex
from magsync.transform.errors import ConservationError, GuardRefusedError


def report() -> RunReport:
    return RunReport(run_id="r", source="s", input="i", target="t", version="v", mode="full",
                     dry_run=False, started_at=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(("deletes", "total", "allow_mass", "refused"), [
    (5, 10, False, False),  # exactly the limit passes
    (6, 10, False, True),
    (6, 10, True, False),
    (0, 0, False, False),  # an empty store: nothing to compare
])
def test_the_delete_ratio_refuses_only_above_its_limit(
        deletes: int, total: int, allow_mass: bool, refused: bool) -> None:
    def check() -> None:
        check_delete_ratio(deletes, total, 0.5, allow_mass=allow_mass, what="stored records",
                           unwritten="written", entity="customer")

    if not refused:
        check()
        return
    with pytest.raises(GuardRefusedError) as caught:
        check()
    assert str(caught.value) == (
        "customer: 6 of 10 stored records would be deleted (60.0% > 50%); rerun with "
        "--allow-mass-delete if that is intended: nothing was written")


def test_a_migration_names_its_own_records() -> None:
    with pytest.raises(GuardRefusedError, match=r"^2 of 3 migrated customers .* nothing "
                                                r"was deleted$"):
        check_delete_ratio(2, 3, 0.5, allow_mass=False, what="migrated customers",
                           unwritten="deleted")


def test_the_fault_ratio_leaves_deletes_out() -> None:
    r = report()
    r.count("customer", "created", 3)
    r.count("customer", "faulted", 1)
    r.count("customer", "deleted", 100)  # stored records: not records read
    check_fault_ratio(r, 0.25)
    with pytest.raises(GuardRefusedError, match=r"fault ratio 25\.0% \(1 of 4 records\)"):
        check_fault_ratio(r, 0.2)


def test_conservation_is_recorded_on_the_report() -> None:
    r = report()
    r.receive("customer", 2)
    r.count("customer", "created")
    with pytest.raises(ConservationError, match="customer: 2 read, 1 accounted for"):
        check_conservation(r)
    assert r.conservation is not None and r.conservation.startswith("customer: 2 read")
    r.count("customer", "faulted")
    check_conservation(r)
    assert r.conservation == "ok"


@pytest.mark.parametrize(("full", "derived", "keyless", "expected"), [
    (False, False, 0, DeleteDetection.NOT_FULL),
    (True, True, 0, DeleteDetection.DERIVED),
    (True, False, 2, DeleteDetection.KEYLESS_FAULTS),
    (True, False, 0, DeleteDetection.DETECTED),
])
def test_deletes_are_looked_for_only_in_a_full_list_of_readable_records(
        full: bool, derived: bool, keyless: int, expected: DeleteDetection) -> None:
    index = KeyIndex(["[1]"], np.zeros(1, np.int64), np.zeros(1, bool))
    plan = EntityPlan(index, keyless_faults=keyless, derived=derived)
    assert delete_detection(plan, full=full) is expected
