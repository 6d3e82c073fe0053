"""
The runs of the distributed e2e test, run once per module; each test asserts one aspect of what happened.

1. **Spread and triggerer HA** (installation A): four runs of ``esml_batch_inference``, each on its own
   deployment. Their sensors and lease keepers defer; once both triggerers run some of them, the triggerer
   with the most deferred sensors is killed (SIGKILL of its process group). The other takes its triggers over.
2. **Worker lost, and two installations** (A and B together): a run on ``retry-e5`` whose ``infer`` task's
   Celery worker is killed as soon as it has sent its first inference request; the scheduler fails the task
   when its heartbeats stop, and Airflow's retry runs it again on the other worker. Meanwhile both
   installations run ``esml_batch_inference`` on one deployment, ``shared-e5``, at overlapping times.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e._airflow import AirflowStack
from tests.e2e._api import AirflowApi
from tests.e2e._cluster import ClusterView
from tests.e2e._distributed import RETRY, SHARED, SPREAD
from tests.e2e._procs import ManagedProcess
from tests.e2e._samples import TaskSample, Watch, watch

DAG = "esml_batch_inference"
SENSOR = "scaled_deployment.wait_for_allocations"
KEEPER = "scaled_deployment.keep_lease"
ACQUIRE = "scaled_deployment.acquire"
RELEASE = "scaled_deployment.release"
INFER = "scaled_deployment.infer"
RUN_TIMEOUT = 420.0

#: run id -> conf of the spread phase (installation A)
SPREAD_RUNS = {
    f"a-spread-{n}": {"deployment_id": d, "allocations": 2, "documents": 200} for n, d in enumerate(SPREAD, 1)
}
#: the run whose worker is killed; its inference lasts long enough to be caught (6000 documents at 5 ms on 2
#: allocations: about 15 s)
RETRY_RUN = ("a-retry", {"deployment_id": RETRY, "allocations": 2, "documents": 6000})
#: run id -> (installation, conf) of the shared deployment: B's two runs, then A's, triggered after the worker
#: was killed, while B's are still going
SHARED_RUNS = {
    "b-shared-1": ("b", {"deployment_id": SHARED, "allocations": 2, "documents": 200}),
    "b-shared-2": ("b", {"deployment_id": SHARED, "allocations": 4, "documents": 200}),
    "a-shared-1": ("a", {"deployment_id": SHARED, "allocations": 3, "documents": 200}),
}


@dataclass
class TriggererKill:
    """
    Kill the triggerer holding the most deferred sensors, once both triggerers run deferred tasks and that
    triggerer is polling for one of its sensors (the trigger's log exists, and the cluster has had a stats
    request from that triggerer).

    :param stack: installation A.
    :param cluster: the simulator's audit log.
    :param since: wall time the phase began.
    """

    stack: AirflowStack
    cluster: ClusterView
    since: float
    victim: str | None = None
    at: float = 0.0
    held: list[TaskSample] = field(default_factory=list)
    process: ManagedProcess | None = None

    def __call__(self, seen: Watch, current: list[TaskSample]) -> None:
        if self.victim is not None:
            return
        deferred = [s for s in current if s.state == "deferred" and s.triggerer]
        if {s.triggerer for s in deferred} != set(self.stack.config.triggerer_names()):
            return
        sensors = Counter(s.triggerer for s in deferred if s.task_id == SENSOR)
        started = [
            s
            for s in deferred
            if s.task_id == SENSOR and s.triggerer_job and self.trigger_log(s.run_id, SENSOR, s.triggerer_job).exists()
        ]
        if not started:
            return
        polling = {s.triggerer for s in started if self.stats_requests(str(s.triggerer))}
        if not polling:
            return
        victim = max(polling, key=lambda name: sensors[name])
        self.held = [s for s in deferred if s.triggerer == victim]
        self.at = time.time()
        self.process = self.stack.kill_component(str(victim))
        self.victim = victim

    def stats_requests(self, triggerer: str) -> list[dict[str, object]]:
        """The stats requests the cluster had from one triggerer since the phase began."""
        requests = self.cluster.requests(since=self.since, opaque_id=triggerer, method="GET")
        return [r for r in requests if str(r["data"]["path"]).endswith("/_stats")]

    def trigger_log(self, run_id: str, task_id: str, job_id: int) -> Path:
        """Where triggerer job ``job_id`` writes the trigger log of a task's first try."""
        folder = self.stack.logs_folder / f"dag_id={DAG}" / f"run_id={run_id}" / f"task_id={task_id}"
        return folder / f"attempt=1.log.trigger.{job_id}.log"


@dataclass
class WorkerKill:
    """
    Kill the Celery worker running ``infer`` of the retry run once it has sent an inference request; then
    trigger A's run on the shared deployment.

    :param stack: installation A.
    :param api: its REST client.
    :param cluster: the simulator's audit log.
    """

    stack: AirflowStack
    api: AirflowApi
    cluster: ClusterView
    victim: str | None = None
    at: float = 0.0
    process: ManagedProcess | None = None

    def __call__(self, seen: Watch, current: list[TaskSample]) -> None:
        if self.victim is not None:
            return
        running = [s for s in current if s.run_id == RETRY_RUN[0] and s.task_id == INFER and s.state == "running"]
        if not running or not running[0].hostname:
            return
        host = running[0].hostname
        infers = self.cluster.requests(endpoint="infer", opaque_id=host)
        if not any(str(r["data"]["path"]).startswith(f"/_ml/trained_models/{RETRY}/") for r in infers):
            return
        self.at = time.time()
        self.process = self.stack.kill_component(host)
        self.victim = host
        for run_id, (install, conf) in SHARED_RUNS.items():
            if install == "a":
                seen.runs[self.api.trigger(DAG, conf, run_id=run_id)] = (self.api, DAG)


@dataclass
class Outcome:
    """
    What happened in both phases.

    :param spread: the spread phase's watch.
    :param triggerer_kill: the triggerer killed in it.
    :param second: the second phase's watch (retry run and shared runs).
    :param worker_kill: the worker killed in it.
    :param installs: run id -> installation (``a`` or ``b``).
    """

    spread: Watch
    triggerer_kill: TriggererKill
    second: Watch
    worker_kill: WorkerKill
    installs: dict[str, str]
    spread_began: float


def run_spread(stack: AirflowStack, api: AirflowApi, cluster: ClusterView) -> tuple[Watch, TriggererKill, float]:
    """Phase 1; returns the watch, the kill and the wall time the runs were triggered."""
    api.wait_for_dag(DAG, 180)
    api.unpause(DAG)
    began = time.time()
    runs = {api.trigger(DAG, conf, run_id=run_id): (api, DAG) for run_id, conf in SPREAD_RUNS.items()}
    kill = TriggererKill(stack, cluster, began)
    seen = watch(runs, RUN_TIMEOUT, cluster=cluster, on_sample=kill)
    return seen, kill, began


def run_second(
    stack_a: AirflowStack, api_a: AirflowApi, api_b: AirflowApi, cluster: ClusterView
) -> tuple[Watch, WorkerKill]:
    """Phase 2: the retry run and B's shared runs now; A's shared run once the worker is killed."""
    api_b.wait_for_dag(DAG, 180)
    api_b.unpause(DAG)
    runs = {api_a.trigger(DAG, RETRY_RUN[1], run_id=RETRY_RUN[0]): (api_a, DAG)}
    for run_id, (install, conf) in SHARED_RUNS.items():
        if install == "b":
            runs[api_b.trigger(DAG, conf, run_id=run_id)] = (api_b, DAG)
    kill = WorkerKill(stack_a, api_a, cluster)
    seen = watch(runs, RUN_TIMEOUT, cluster=cluster, lease_deployments=(RETRY, SHARED), on_sample=kill)
    return seen, kill
