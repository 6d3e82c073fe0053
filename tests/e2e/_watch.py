"""Watch DAG runs through the REST API: task states over time, pool usage while tasks are deferred."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.e2e._api import TERMINAL_RUN_STATES, AirflowApi


@dataclass
class RunWatch:
    """
    What was seen of some runs while they ran.

    :param states: ``(dag_id, task_id)`` -> every state observed, in order, without repeats.
    :param triggerer_jobs: ``(dag_id, task_id)`` -> ids of the triggerer jobs seen running its trigger.
    :param deferred_pool_samples: default-pool answers taken while some task was deferred.
    :param final: ``(dag_id, run_id)`` -> final run state.
    """

    states: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    triggerer_jobs: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    deferred_pool_samples: list[dict[str, Any]] = field(default_factory=list)
    final: dict[tuple[str, str], str] = field(default_factory=dict)

    def saw(self, dag_id: str, task_id: str, state: str) -> bool:
        return state in self.states[(dag_id, task_id)]

    def record(self, dag_id: str, task_instance: dict[str, Any]) -> bool:
        """Record one task instance; return whether it is deferred right now."""
        key = (dag_id, task_instance["task_id"])
        state = task_instance["state"] or "none"
        if not self.states[key] or self.states[key][-1] != state:
            self.states[key].append(state)
        job = task_instance.get("triggerer_job") or {}
        if state == "deferred" and job.get("id") is not None:
            self.triggerer_jobs[key].add(int(job["id"]))
        return state == "deferred"


def watch_runs(
    api: AirflowApi,
    runs: Sequence[tuple[str, str]],
    timeout: float,
    on_sample: Callable[[RunWatch], None] | None = None,
    interval: float = 0.5,
) -> RunWatch:
    """
    Poll runs until all are finished, recording task states and the pool while tasks are deferred.

    :param api: the REST client.
    :param runs: ``(dag_id, run_id)`` pairs.
    :param timeout: seconds to wait for all runs.
    :param on_sample: called after each poll round (e.g. to crash the triggerer at the right moment).
    :param interval: seconds between poll rounds.
    """
    watch = RunWatch()
    deadline = time.monotonic() + timeout
    pending = list(runs)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not finished after {timeout:.0f}s: {pending}; seen: {dict(watch.states)}")
        any_deferred = False
        for dag_id, run_id in list(pending):
            for task_instance in api.task_instances(dag_id, run_id):
                any_deferred |= watch.record(dag_id, task_instance)
            state = api.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                watch.final[(dag_id, run_id)] = state
                pending.remove((dag_id, run_id))
        if any_deferred:
            watch.deferred_pool_samples.append(api.pool())
        if on_sample is not None:
            on_sample(watch)
        time.sleep(interval)
    return watch


def failure_report(api: AirflowApi, dag_id: str, run_id: str) -> str:
    """Every task's state and, for tasks that did not succeed, their logs (to debug a failed run)."""
    lines = [f"run {dag_id}/{run_id}: {api.run_state(dag_id, run_id)}"]
    for task_instance in api.task_instances(dag_id, run_id):
        lines.append(f"  {task_instance['task_id']}: {task_instance['state']}")
        if task_instance["state"] != "success" and task_instance["try_number"]:
            log = api.task_log(dag_id, run_id, task_instance["task_id"], task_instance["try_number"])
            lines.append("    " + log[-6000:].replace("\n", "\n    "))
    return "\n".join(lines)
