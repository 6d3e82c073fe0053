"""
Watch runs of one or more Airflow installations through their REST APIs, recording every task instance's
state, host and triggerer over time, and the lease documents of some deployments beside them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.e2e._api import TERMINAL_RUN_STATES, AirflowApi
from tests.e2e._cluster import ClusterView


@dataclass(frozen=True)
class TaskSample:
    """
    One task instance as the REST API showed it at one moment.

    :param at: wall-clock time of the poll round (the same for every sample of one round).
    :param run_id: the run (unique across the installations watched together).
    :param task_id: the task.
    :param state: its state (``none`` before it has one).
    :param try_number: its try.
    :param hostname: the worker that runs or ran it (``""`` before one did).
    :param triggerer: ``hostname`` of the triggerer job running its trigger, when deferred.
    :param triggerer_job: that triggerer job's id.
    """

    at: float
    run_id: str
    task_id: str
    state: str
    try_number: int
    hostname: str
    triggerer: str | None
    triggerer_job: int | None


def sample(at: float, run_id: str, task_instance: dict[str, Any]) -> TaskSample:
    job = task_instance.get("triggerer_job") or {}
    return TaskSample(
        at=at,
        run_id=run_id,
        task_id=task_instance["task_id"],
        state=task_instance["state"] or "none",
        try_number=int(task_instance["try_number"] or 0),
        hostname=task_instance.get("hostname") or "",
        triggerer=job.get("hostname") if task_instance["state"] == "deferred" else None,
        triggerer_job=job.get("id") if task_instance["state"] == "deferred" else None,
    )


@dataclass
class Watch:
    """
    Runs watched together.

    :param runs: run id -> ``(REST client of its installation, dag id)``; callbacks may add runs.
    :param samples: every task sample, in time order.
    :param leases: deployment id -> ``(wall time, lease document or None)`` samples.
    :param final: run id -> final state.
    """

    runs: dict[str, tuple[AirflowApi, str]]
    samples: list[TaskSample] = field(default_factory=list)
    leases: dict[str, list[tuple[float, dict[str, Any] | None]]] = field(default_factory=dict)
    final: dict[str, str] = field(default_factory=dict)

    def of(self, run_id: str, task_id: str) -> list[TaskSample]:
        return [s for s in self.samples if s.run_id == run_id and s.task_id == task_id]

    def deferred_on(self, triggerer: str) -> list[TaskSample]:
        return [s for s in self.samples if s.triggerer == triggerer]


Callback = Callable[[Watch, list[TaskSample]], None]


def watch(
    runs: dict[str, tuple[AirflowApi, str]],
    timeout: float,
    *,
    cluster: ClusterView | None = None,
    lease_deployments: tuple[str, ...] = (),
    on_sample: Callback | None = None,
    interval: float = 0.5,
) -> Watch:
    """
    Poll until every run has finished.

    :param runs: run id -> ``(REST client, dag id)``.
    :param timeout: seconds to wait for all runs.
    :param cluster: where to read lease documents.
    :param lease_deployments: deployments whose lease document is sampled each round.
    :param on_sample: called after each round with the watch and that round's samples (to kill a process at the
        right moment, or to trigger more runs).
    :param interval: seconds between rounds.
    """
    seen = Watch(runs=dict(runs), leases={d: [] for d in lease_deployments})
    deadline = time.monotonic() + timeout
    while set(seen.runs) - set(seen.final):
        if time.monotonic() > deadline:
            pending = sorted(set(seen.runs) - set(seen.final))
            raise TimeoutError(f"runs not finished after {timeout:.0f}s: {pending}; last samples: {seen.samples[-12:]}")
        current = []
        at = time.time()  # one time per round: the samples of one round count as seen together
        for run_id, (api, dag_id) in list(seen.runs.items()):
            if run_id in seen.final:
                continue
            current += [sample(at, run_id, ti) for ti in api.task_instances(dag_id, run_id)]
            state = api.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                seen.final[run_id] = state
        seen.samples += current
        if cluster is not None:
            for deployment_id in lease_deployments:
                seen.leases[deployment_id].append((time.time(), cluster.lease_document(deployment_id)))
        if on_sample is not None:
            on_sample(seen, current)
        time.sleep(interval)
    return seen
