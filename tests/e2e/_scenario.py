"""
The DAG runs the end-to-end tests inspect, run once per session: what happened is recorded, and each test
asserts one aspect of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.e2e._airflow import AirflowStack
from tests.e2e._api import AirflowApi
from tests.e2e._triggerer import TriggererCrash
from tests.e2e._watch import RunWatch, watch_runs

RUN_TIMEOUT = 240.0
PROBE = ("e2e_probe", "wait_in_triggerer")
BATCH = "esml_batch_inference"
HOURS = "esml_business_hours"
TLS_DAG = "e2e_tls_and_failures"
#: the example DAGs' tasks that wait for allocations, deferrable: the sensor, and the reservation's wait
WAITERS = ("AllocationsStartedSensor", "ReserveDeploymentOperator")
_HOUR = datetime.now(timezone.utc).hour

#: conf of each triggered run: every DAG works on its own deployment of the simulator.
RUN_CONF: dict[str, dict[str, Any]] = {
    PROBE[0]: {},
    BATCH: {"deployment_id": "batch-e5", "allocations": 3, "documents": 200},
    HOURS: {
        "deployment_id": "hours-e5",
        "business_allocations": 2,
        "off_hours_allocations": 2,
        # a window around now, every day, so the manual run is a reserve run whatever the time and day
        "start_hour": (_HOUR - 1) % 24,
        "end_hour": (_HOUR + 1) % 24,
        "timezone": "UTC",
        "weekdays": "*",
        "lead_minutes": 0,
    },
    TLS_DAG: {},
}


@dataclass
class Phase:
    """
    One batch of runs watched together, with the triggerer crashed while one sensor was deferred.

    :param runs: dag_id -> run_id.
    :param watch: what was seen while they ran.
    :param crash: the triggerer crash done during the phase.
    :param replacement_alive: whether the replacement triggerer was still running when the runs ended.
    """

    runs: dict[str, str]
    watch: RunWatch
    crash: TriggererCrash
    replacement_alive: bool


@dataclass
class Scenario:
    """
    Both phases.

    :param probe: the probe DAG alone.
    :param plugin: the example DAGs and the TLS DAG together.
    :param sensors: dag_id -> task ids of its ``AllocationsStartedSensor`` tasks (from the REST API).
    """

    probe: Phase
    plugin: Phase
    sensors: dict[str, list[str]]
    all_runs: dict[str, str] = field(default_factory=dict)


def sensor_tasks(api: AirflowApi, dag_id: str) -> list[str]:
    """The DAG's tasks that wait for allocations (:data:`WAITERS`), whatever the example DAG calls them."""
    tasks = api.get(f"/dags/{dag_id}/tasks")["tasks"]
    return sorted(task["task_id"] for task in tasks if task["operator_name"] in WAITERS)


def run_phase(stack: AirflowStack, api: AirflowApi, dag_ids: list[str], crash_during: tuple[str, str]) -> Phase:
    """
    Unpause and trigger DAGs through the REST API, crash the triggerer once ``crash_during`` is deferred,
    and watch until every run has finished.

    :param stack: the Airflow stack.
    :param api: its REST client.
    :param dag_ids: the DAGs to run.
    :param crash_during: ``(dag_id, task_id)`` of the sensor to crash the triggerer under.
    """
    runs = {}
    for dag_id in dag_ids:
        api.wait_for_dag(dag_id, 120)
        api.unpause(dag_id)
        runs[dag_id] = api.trigger(dag_id, RUN_CONF[dag_id])
    crash = TriggererCrash(stack, *crash_during)
    watch = watch_runs(api, list(runs.items()), RUN_TIMEOUT, on_sample=crash)
    alive = crash.replacement is not None and crash.replacement.alive()
    return Phase(runs=runs, watch=watch, crash=crash, replacement_alive=alive)


def run_scenario(stack: AirflowStack, api: AirflowApi) -> Scenario:
    """The probe alone (a clean view of pool slots), then the example DAGs and the TLS DAG together."""
    probe = run_phase(stack, api, [PROBE[0]], crash_during=PROBE)
    sensors = {}
    for dag_id in (BATCH, HOURS):
        api.wait_for_dag(dag_id, 120)
        sensors[dag_id] = sensor_tasks(api, dag_id)
        if not sensors[dag_id]:
            raise AssertionError(f"example DAG {dag_id} has none of the waiting tasks {WAITERS}")
    plugin = run_phase(stack, api, [BATCH, HOURS, TLS_DAG], crash_during=(BATCH, sensors[BATCH][0]))
    return Scenario(probe=probe, plugin=plugin, sensors=sensors, all_runs={**probe.runs, **plugin.runs})
