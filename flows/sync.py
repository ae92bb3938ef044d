"""The Prefect flow of a sync: thin tasks over the plain steps in flows/sync_steps.py."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.states import Failed

from magsync.flows import pipeline
from magsync.flows.artifacts import publish_run
from magsync.flows.settings import Settings
from magsync.flows.sync_steps import PLAIN, Steps, run_steps, stage_step, sync_outcome

TASK_OPTIONS: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE}
stage_task = task(name="stage", **TASK_OPTIONS)(stage_step)
guards_task = task(name="guards", **TASK_OPTIONS)(pipeline.check_guards)
merge_task = task(name="merge", **TASK_OPTIONS)(pipeline.merge)
export_task = task(name="export", **TASK_OPTIONS)(pipeline.export)


def slot(name: str | None) -> AbstractContextManager[Any]:
    """A slot of the named Prefect global concurrency limit (waits for one; an unknown
    name is an error: `magsync deploy` creates them), or nothing when none is named. The
    shortest lease the server takes: a killed run's slot is free again within a minute."""
    return concurrency(name, strict=True, lease_duration=60) if name else nullcontext()


def current_pool() -> tuple[str, int | None] | None:
    """The work pool this flow run is on and its concurrency limit; None off a pool."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    name = context.flow_run.work_pool_name if context and context.flow_run else None
    if not name:
        return None
    with get_client(sync_client=True) as client:
        return name, client.read_work_pool(name).concurrency_limit


TASKS = Steps(stage_task, guards_task, merge_task, export_task,
              writing=lambda settings: slot(settings.limits.target), pool=current_pool)


def run_sync(settings: Settings, *, orchestrated: bool = True) -> dict[str, Any]:
    """One sync as Prefect task runs (flows/sync_steps.py::run_steps); `orchestrated=False`
    calls the plain steps (no Prefect API): the untracked CLI, the benchmark, the crash
    tests' forked runs."""
    return run_steps(settings, TASKS if orchestrated else PLAIN)


@flow(name="magsync-sync", persist_result=False, log_prints=False)
def sync_flow(overrides: dict[str, Any] | None = None,
              config_file: str | None = None) -> Any:
    """Sync a store into the target. Secrets come from the environment, never parameters.

    Expected failures (configuration, refused guards, a source that refuses us) end the
    flow run in a Failed state carrying the report and an exit code, without a traceback.
    """
    limits = (overrides or {}).get("limits") or {}
    with slot(limits.get("store")):  # a store host serves one run at a time
        report, error = sync_outcome(overrides, config_file, TASKS)
    publish_run(report, "sync")  # artifacts: counts and report link, faults, progress 100
    return report if error is None else Failed(message=error, data=report)
