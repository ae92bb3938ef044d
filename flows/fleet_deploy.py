"""`magsync deploy`: the fleet file as Prefect deployments on a work pool, with the global
concurrency limits the syncs take and the automation that crashes runs whose heartbeats
stopped (a worker killed with its flow-run process)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from magsync.flows.fleet_file import limit_names, store_overrides
from magsync.flows.fleet_settings import Fleet, FleetStore
from magsync.transform.errors import ConfigError

SYNC_FLOW, FLEET_FLOW = "magsync-sync", "magsync-fleet"
FLEET_TAG = "magsync-fleet"  # marks the deployments `--prune` may remove
FLEET_DEPLOYMENT = "fleet"
ZOMBIE_AUTOMATION = "magsync: crash flow runs without heartbeats"
# A flow run sends a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (Prefect's
# default 180, at least 30); a run silent this long is dead. Keep it above the frequency
# (workers with a frequency of 30 can use 90).
ZOMBIE_AFTER = timedelta(seconds=600)


def deployment_names(store: FleetStore) -> dict[str, dict[str, Any]]:
    """A store's deployments: the incremental one (always: the fleet flow runs it) and a
    full one when it has a full-sync schedule; name -> (cron, extra settings)."""
    out: dict[str, dict[str, Any]] = {store.name: {"cron": store.schedule, "extra": {}}}
    if store.full_schedule:
        out[f"{store.name}-full"] = {"cron": store.full_schedule, "extra": {"full": True}}
    return out


def deploy(fleet: Fleet, pool: str, *, prune: bool, zombie_after: timedelta = ZOMBIE_AFTER
           ) -> dict[str, list[str]]:
    """Creates or updates every store's deployments, the fleet deployment, the limits and
    the zombie-run automation; with `prune`, deletes fleet deployments no longer listed.
    Returns what was deployed and removed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import EntrypointType

    from magsync.flows.fleet_flow import fleet_flow
    from magsync.flows.sync import sync_flow

    with get_client(sync_client=True) as client:
        check_pool(client, fleet, pool)
    module = EntrypointType.MODULE_PATH  # the installed package: no code to pull
    deployed = []
    for store in fleet.stores:
        for name, spec in deployment_names(store).items():
            params = {"overrides": {**store_overrides(fleet, store), **spec["extra"]}}
            schedules = [CronSchedule(cron=spec["cron"], timezone=store.timezone)] \
                if spec["cron"] else None
            deployment: Any = sync_flow.to_deployment(
                name, parameters=params, schedules=schedules, entrypoint_type=module,
                tags=[FLEET_TAG, f"store:{store.name}"],
                description=f"magsync sync of store {store.name}")
            deployment.apply(work_pool_name=pool)
            deployed.append(f"{SYNC_FLOW}/{name}")
    parent: Any = fleet_flow.to_deployment(
        FLEET_DEPLOYMENT, entrypoint_type=module, tags=[FLEET_TAG],
        parameters={"stores": [s.name for s in fleet.stores],
                    "output_dir": str(fleet.output_dir)},
        description="every store of the fleet, each as its own flow run")
    parent.apply(work_pool_name=pool)
    deployed.append(f"{FLEET_FLOW}/{FLEET_DEPLOYMENT}")
    with get_client(sync_client=True) as client:
        limits = ensure_limits(client, fleet)
        removed = prune_deployments(client, set(deployed)) if prune else []
    ensure_zombie_automation(zombie_after)
    return {"deployed": deployed, "limits": limits, "removed": removed}


def check_pool(client: Any, fleet: Fleet, pool: str) -> None:
    """Refuses a fleet with a SQLite target on a pool that may run two syncs at once: the
    target's run lock is a file on one machine, and the pool's workers may be on several
    (the sync checks again when it starts: flows/sync_steps.py::check_single_writer)."""
    from prefect.exceptions import ObjectNotFound

    if not fleet.sqlite_targets:
        return
    try:
        limit = client.read_work_pool(pool).concurrency_limit
    except ObjectNotFound:
        raise ConfigError(f"work pool {pool!r} not found: create it first (prefect "
                          "work-pool create NAME --type process)") from None
    if limit != 1:
        raise ConfigError(
            f"SQLite target {', '.join(fleet.sqlite_targets)}: its run lock is a file on "
            f"one machine, and work pool {pool!r} allows {limit or 'unlimited'} concurrent "
            f"runs on any of its workers; set the pool's limit to 1 (prefect work-pool "
            f"set-concurrency-limit {pool} 1) or use a PostgreSQL or MariaDB target")


def ensure_limits(client: Any, fleet: Fleet) -> list[str]:
    """One global concurrency limit per target (its max_writers) and per store host (1)."""
    wanted: dict[str, int] = {}
    for store in fleet.stores:
        names = limit_names(fleet, store)
        wanted[names["target"]] = fleet.targets[store.target].max_writers
        wanted[names["store"]] = 1
    for name, limit in sorted(wanted.items()):
        client.upsert_global_concurrency_limit_by_name(name, limit)
    return [f"{name}={limit}" for name, limit in sorted(wanted.items())]


def prune_deployments(client: Any, keep: set[str]) -> list[str]:
    """Deletes the fleet's deployments (tagged) that the fleet file no longer lists."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    removed = []
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[FLEET_TAG])))
    for deployment in found:
        flow_name = client.read_flow(deployment.flow_id).name
        full_name = f"{flow_name}/{deployment.name}"
        if full_name not in keep:
            client.delete_deployment(deployment.id)
            removed.append(full_name)
    return sorted(removed)


def ensure_zombie_automation(after: timedelta) -> None:
    """The automation marking a flow run Crashed when its heartbeats stop for `after`
    without a final state (replaced on every deploy)."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    with contextlib.suppress(ValueError):  # none yet
        old: Any = Automation.read(name=ZOMBIE_AUTOMATION)
        old.delete()
    final = [f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled",
                                                "Crashed")]
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *final},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
            within=after),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message="no heartbeat: the run's process is gone")],
    ).create()
