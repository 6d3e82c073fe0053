"""
End to end on a real multi-process Airflow: api-server, scheduler (LocalExecutor), dag-processor and
triggerer as separate processes on PostgreSQL (SQLite without a server), the simulator behind TLS with an
API key, DAG runs triggered and inspected only through the REST API.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e._airflow import AirflowStack
from tests.e2e._api import AirflowApi
from tests.e2e._database import DATABASE_URL_ENV
from tests.e2e._triggerer import TriggererCrash, trigger_log_files
from tests.e2e._watch import RunWatch, failure_report, watch_runs
from tests.e2e.conftest import EXAMPLE_DAGS, example_dag_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RUN_TIMEOUT = 240.0


def assert_deferred_without_slot(watch: RunWatch, dag_id: str, task_id: str) -> None:
    """The task went through ``deferred`` while the default pool counted it as deferred, not running."""
    assert watch.saw(dag_id, task_id, "deferred"), watch.states[(dag_id, task_id)]
    assert watch.states[(dag_id, task_id)][-1] == "success", watch.states[(dag_id, task_id)]
    assert any(
        sample["deferred_slots"] >= 1 and sample["running_slots"] == 0 for sample in watch.deferred_pool_samples
    ), f"no pool sample shows a deferred task holding no slot: {watch.deferred_pool_samples}"


def test_components_healthy_and_every_dag_parsed(airflow_stack: AirflowStack, api: AirflowApi) -> None:
    health = airflow_stack.wait_healthy(30)
    assert {"metadatabase", "scheduler", "triggerer", "dag_processor"} <= set(health)
    if os.environ.get(DATABASE_URL_ENV):
        assert airflow_stack.config.database.backend == "postgresql"
    api.wait_for_dag("e2e_probe", 120)
    expected = {str(path) for path in example_dag_files()}

    def all_parsed() -> bool:
        dags = api.get("/dags", limit=100)["dags"]
        return expected <= {dag["fileloc"] for dag in dags if dag["bundle_name"] == "example-dags"}

    api.wait_for(f"every DAG file in {EXAMPLE_DAGS} to be parsed", all_parsed, 120, interval=1)
    errors = api.get("/importErrors")
    assert errors["total_entries"] == 0, errors


def test_deferred_sensor_survives_triggerer_crash(airflow_stack: AirflowStack, api: AirflowApi) -> None:
    """The probe's sensor waits in the triggerer; the triggerer is killed; a new one finishes the wait."""
    dag_id, task_id = "e2e_probe", "wait_in_triggerer"
    api.wait_for_dag(dag_id, 120)
    api.unpause(dag_id)
    run_id = api.trigger(dag_id)
    crash = TriggererCrash(airflow_stack, dag_id, task_id)

    watch = watch_runs(api, [(dag_id, run_id)], RUN_TIMEOUT, on_sample=crash)

    assert watch.final[(dag_id, run_id)] == "success", failure_report(api, dag_id, run_id)
    assert_deferred_without_slot(watch, dag_id, task_id)
    assert crash.crashed is not None and crash.crashed.popen.returncode is not None
    assert crash.replacement is not None and crash.replacement.alive()
    # the trigger ran in the crashed triggerer and then, from the database, in its replacement
    logs = trigger_log_files(airflow_stack.logs_folder, dag_id, task_id)
    assert crash.crashed_job_ids < set(logs), (crash.crashed_job_ids, logs)
    (new_job,) = set(logs) - crash.crashed_job_ids
    assert "Trigger fired event" in logs[new_job].read_text(), logs[new_job].read_text()
    # resuming after the crash used no retry: one try, and it succeeded
    tries = api.tries(dag_id, run_id, task_id)
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "success")]
    xcom = api.xcom_values(dag_id, run_id)["read_connection/return_value"]
    assert xcom == {"host": "127.0.0.1", "port": xcom["port"], "schema": "https", "has_api_key": True,
                    "ca_file_exists": True}  # fmt: skip
