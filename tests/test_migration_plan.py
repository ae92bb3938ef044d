"""The migration plan without a store: what each record needs, from the id map's entries
and what the target holds, given as plain data."""

from __future__ import annotations

from typing import Any

import pytest

from magsync.load.idmap import DONE, PENDING, Entry
from magsync.load.magento_target import field_digests, payload_hash
from magsync.load.migration_plan import (
    Action,
    Call,
    Policy,
    Record,
    RunState,
    TargetAddresses,
    TargetCustomers,
    emails_to_find,
    plan_addresses,
    plan_customers,
    unmapped_customers,
)
from magsync.transform.faults import Stage

ANNA = {"website_id": 1, "email": "Anna@Example.com", "firstname": "Anna",
        "lastname": "Berg", "group_id": 1}
STREET = {"firstname": "Anna", "lastname": "Berg", "street": ["1 Main St"], "city": "Bonn",
          "postcode": "53111", "country_id": "DE", "telephone": "0228 1"}


def customer(key: str = "c1", **changes: Any) -> Record:
    payload = {**ANNA, **changes}
    return Record(key, payload, payload_hash(payload), "customers.csv", 2,
                  email=str(payload["email"]).lower(), website=int(payload["website_id"]))


def address(key: str = "a1", parent: str = "c1", **changes: Any) -> Record:
    payload = {**STREET, **changes}
    return Record(key, payload, payload_hash(payload), "customers.csv", 3, parent_key=parent)


def done(record: Record, target_id: int, parent_id: int | None = None, *,
         payload: dict[str, Any] | None = None) -> Entry:
    written = dict(payload if payload is not None else record.payload)
    return Entry(record.key, DONE, target_id, parent_id, record.email, record.parent_key,
                 payload_hash(written), field_digests(written))


def on_target(cid: int, owner: str | None = None, **changes: Any) -> TargetCustomers:
    row = {**ANNA, "customer_id": cid, "email": "ANNA@example.com", **changes}
    found = TargetCustomers.of([row])
    return found.with_owners({cid: owner} if owner else {})


def only(plan: Any) -> Any:
    assert len(plan.steps) == 1 and not plan.faults, plan
    return plan.steps[0]


# --- customers ----------------------------------------------------------------------------


def test_mapped_customer_is_unchanged_or_updated_with_its_changed_fields() -> None:
    record = customer()
    same = only(plan_customers([record], {"c1": done(record, 7)}, TargetCustomers(), "update"))
    assert (same.action, same.call, same.target_id) == (Action.UNCHANGED, None, 7)
    older = done(record, 7, payload={**ANNA, "lastname": "Alt", "password_hash": "x"})
    step = only(plan_customers([record], {"c1": older}, TargetCustomers(), "update"))
    assert (step.action, step.call, step.target_id) == (Action.UPDATED, Call.UPDATE, 7)
    assert step.changed == "lastname,secret attributes"  # never a secret's name


def test_unknown_customer_is_created_and_looked_for_by_its_email() -> None:
    record = customer()
    assert unmapped_customers([record], {}) == [record]
    assert emails_to_find([(record, None)]) == {"anna@example.com"}
    step = only(plan_customers([record], {}, TargetCustomers(), "update"))
    assert (step.action, step.call, step.adopt) == (Action.CREATED, Call.CREATE, False)


@pytest.mark.parametrize(("policy", "row", "action", "call", "adopt"), [
    ("update", {}, Action.UNCHANGED, None, True),  # equal: nothing written
    ("update", {"lastname": "Old"}, Action.UPDATED, Call.UPDATE, False),
    ("skip", {"lastname": "Old"}, Action.SKIPPED, None, False),
])
def test_existing_target_customer_follows_the_policy(
        policy: Policy, row: dict[str, Any], action: Action, call: Call | None,
        adopt: bool) -> None:
    plan = plan_customers([customer()], {}, on_target(40, **row), policy)
    step = only(plan)
    assert (step.action, step.call, step.adopt, step.target_id) == (action, call, adopt, 40)
    assert "customer 40" in (step.message or "")
    assert plan.skipped_keys() == ({"c1"} if action is Action.SKIPPED else set())


def test_existing_target_customer_faults_under_the_fault_policy() -> None:
    plan = plan_customers([customer()], {}, on_target(40, lastname="Old"), "fault")
    assert plan.steps == ()
    assert [(f.rule, f.key, f.stage, f.source_line) for f in plan.faults] == [
        ("exists_on_target", "c1", Stage.LOAD, 2)]
    assert plan.faulted_keys() == {"c1"}


def test_email_owned_by_another_source_record_faults() -> None:
    plan = plan_customers([customer()], {}, on_target(40, owner="c9"), "update")
    assert [f.rule for f in plan.faults] == ["duplicate_email"]
    assert "source record c9" in plan.faults[0].message


@pytest.mark.parametrize(("row", "call"), [({}, None), ({"lastname": "Old"}, Call.UPDATE)])
def test_pending_create_found_on_the_target_is_adopted(row: dict[str, Any],
                                                       call: Call | None) -> None:
    """A create whose answer a crash lost: found by the pending entry's email, never
    created twice, whatever the policy."""
    record = customer()
    pending = Entry("c1", PENDING, None, 1, "anna@example.com", None, 12345)
    step = only(plan_customers([record], {"c1": pending}, on_target(40, **row), "fault"))
    assert (step.action, step.call, step.adopt, step.target_id) == (
        Action.CREATED, call, True, 40)


def test_customer_plan_keeps_the_input_order() -> None:
    records = [customer(f"c{i}", email=f"n{i}@example.com") for i in range(5)]
    entries = {"c2": done(records[2], 2)}
    plan = plan_customers(records, entries, TargetCustomers(), "update")
    assert [s.key for s in plan.steps] == ["c0", "c1", "c2", "c3", "c4"]
    assert [s.action for s in plan.steps].count(Action.UNCHANGED) == 1


# --- addresses ----------------------------------------------------------------------------

PARENT = {"c1": Entry("c1", DONE, 40, 1, "anna@example.com")}


@pytest.mark.parametrize(("run", "parents", "rule"), [
    (RunState(faulted={"c1"}), PARENT, "customer_faulted"),
    (RunState(), {}, "customer_not_migrated"),
])
def test_address_without_its_customer_faults(run: RunState, parents: dict[str, Entry],
                                              rule: str) -> None:
    plan = plan_addresses([address()], parents, {}, TargetAddresses(), run)
    assert plan.steps == () and [(f.rule, f.stage) for f in plan.faults] == [
        (rule, Stage.INTEGRITY)]


def test_address_of_a_skipped_customer_is_skipped() -> None:
    step = only(plan_addresses([address()], PARENT, {}, TargetAddresses(),
                               RunState(skipped={"c1"})))
    assert (step.action, step.call) == (Action.SKIPPED, None)


def test_address_of_a_customer_created_in_this_run_is_created_without_a_lookup() -> None:
    step = only(plan_addresses([address()], PARENT, {}, TargetAddresses(),
                               RunState(created={40})))
    assert (step.action, step.call, step.parent_id) == (Action.CREATED, Call.CREATE, 40)


def test_dry_run_takes_the_planned_customer() -> None:
    step = only(plan_addresses([address()], {}, {}, TargetAddresses(),
                               RunState(planned={"c1": None})))
    assert (step.action, step.call, step.parent_id) == (Action.CREATED, Call.CREATE, None)


def test_mapped_address_under_the_same_customer_is_unchanged() -> None:
    record = address()
    step = only(plan_addresses([record], PARENT, {"a1": done(record, 500, 40)},
                               TargetAddresses(), RunState()))
    assert (step.action, step.call, step.target_id) == (Action.UNCHANGED, None, 500)


def target_address(aid: int, **changes: Any) -> dict[str, Any]:
    return {**STREET, "street": "1 Main St", "customer_address_id": aid,
            "city": "BONN ", **changes}


@pytest.mark.parametrize(("payload", "owners", "action", "call", "target_id"), [
    ({}, {}, Action.UNCHANGED, None, 501),  # same content (case, blanks): adopted
    ({"is_default_billing": 1}, {}, Action.UPDATED, Call.UPDATE, 501),  # a flag is not
    ({}, {501: "a9"}, Action.CREATED, Call.CREATE, None),  # another record's address
    ({"city": "Köln"}, {}, Action.CREATED, Call.CREATE, None),  # other content
])
def test_address_is_matched_by_content_before_one_is_created(
        payload: dict[str, Any], owners: dict[int, str], action: Action, call: Call | None,
        target_id: int | None) -> None:
    target = TargetAddresses({40: [target_address(501)]}, owners)
    step = only(plan_addresses([address(**payload)], PARENT, {}, target, RunState()))
    assert (step.action, step.call, step.target_id, step.parent_id) == (
        action, call, target_id, 40)


def test_one_target_address_is_adopted_once_and_the_order_kept() -> None:
    """Two identical source addresses and one on the target: the first adopts it, the
    second is created; a mapped one in between stays where it was."""
    first, mapped, second = address("a1"), address("a2", city="Köln"), address("a3")
    target = TargetAddresses({40: [target_address(501)]})
    plan = plan_addresses([first, mapped, second], PARENT, {"a2": done(mapped, 502, 40)},
                          target, RunState())
    assert [(s.key, s.action, s.call, s.target_id) for s in plan.steps] == [
        ("a1", Action.UNCHANGED, None, 501), ("a2", Action.UNCHANGED, None, 502),
        ("a3", Action.CREATED, Call.CREATE, None)]
