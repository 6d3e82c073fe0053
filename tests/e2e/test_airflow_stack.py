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
from tests.e2e._scenario import BATCH, HOURS, PROBE, RUN_CONF, TLS_DAG, Phase, Scenario
from tests.e2e._simulator import RunningSimulator
from tests.e2e._triggerer import trigger_log_files
from tests.e2e._watch import failure_report
from tests.e2e.conftest import EXAMPLE_DAGS, example_dag_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def assert_succeeded(api: AirflowApi, phase: Phase, dag_id: str) -> None:
    run_id = phase.runs[dag_id]
    assert phase.watch.final[(dag_id, run_id)] == "success", failure_report(api, dag_id, run_id)


def assert_resumed_after_crash(stack: AirflowStack, api: AirflowApi, phase: Phase) -> None:
    """The crashed triggerer had the trigger; its replacement picked it up from the database and fired it."""
    crash = phase.crash
    assert crash.crashed is not None, f"{crash.dag_id}.{crash.task_id} was never seen deferred"
    assert crash.crashed.popen.returncode is not None
    assert phase.replacement_alive
    logs = trigger_log_files(stack.logs_folder, crash.dag_id, crash.task_id)
    assert crash.crashed_job_ids < set(logs), (crash.crashed_job_ids, logs)
    (new_job,) = set(logs) - crash.crashed_job_ids
    assert "Trigger fired event" in logs[new_job].read_text(), logs[new_job].read_text()
    # resuming after the crash used no retry: one try, and it succeeded
    tries = api.tries(crash.dag_id, phase.runs[crash.dag_id], crash.task_id)
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "success")]


def test_components_healthy_and_every_dag_parsed(airflow_stack: AirflowStack, api: AirflowApi) -> None:
    health = airflow_stack.wait_healthy(30)
    assert {"metadatabase", "scheduler", "triggerer", "dag_processor"} <= set(health)
    if os.environ.get(DATABASE_URL_ENV):
        assert airflow_stack.config.database.backend == "postgresql"
    expected = {str(path) for path in example_dag_files()}
    assert expected, f"no example DAGs in {EXAMPLE_DAGS}"

    def all_parsed() -> bool:
        dags = api.get("/dags", limit=100)["dags"]
        return expected <= {dag["fileloc"] for dag in dags if dag["bundle_name"] == "example-dags"}

    api.wait_for(f"every DAG file in {EXAMPLE_DAGS} to be parsed", all_parsed, 120, interval=1)
    errors = api.get("/importErrors")
    assert errors["total_entries"] == 0, errors


def test_deferred_probe_holds_no_slot_and_survives_triggerer_crash(
    airflow_stack: AirflowStack, api: AirflowApi, scenario: Scenario
) -> None:
    """A generic deferrable sensor, alone on the stack: deferred, no pool slot, resumed by a new triggerer."""
    phase = scenario.probe
    assert_succeeded(api, phase, PROBE[0])
    watch = phase.watch
    assert watch.saw(*PROBE, "deferred"), watch.states[PROBE]
    assert any(s["deferred_slots"] >= 1 and s["running_slots"] == 0 for s in watch.deferred_pool_samples), (
        f"no pool sample shows the deferred task holding no slot: {watch.deferred_pool_samples}"
    )
    assert_resumed_after_crash(airflow_stack, api, phase)
    xcom = api.xcom_values(PROBE[0], phase.runs[PROBE[0]])["read_connection/return_value"]
    assert xcom == {"host": "127.0.0.1", "port": xcom["port"], "schema": "https", "has_api_key": True,
                    "ca_file_exists": True}  # fmt: skip


def test_example_dags_succeed_with_sensors_deferred(api: AirflowApi, scenario: Scenario) -> None:
    """Both example DAGs succeed; each task waiting for allocations waited in a triggerer, not in a worker."""
    phase = scenario.plugin
    for dag_id in (BATCH, HOURS):
        assert_succeeded(api, phase, dag_id)
        for task_id in scenario.sensors[dag_id]:
            assert phase.watch.saw(dag_id, task_id, "deferred"), phase.watch.states[(dag_id, task_id)]
            assert phase.watch.triggerer_jobs[(dag_id, task_id)], "deferred without a triggerer job"
            assert api.task_instance(dag_id, phase.runs[dag_id], task_id)["state"] == "success"
    assert any(sample["deferred_slots"] >= 1 for sample in phase.watch.deferred_pool_samples)
    xcom = api.xcom_values(BATCH, phase.runs[BATCH])
    (summary,) = [value for key, value in xcom.items() if key.endswith("infer/return_value")]
    assert summary["docs"] == RUN_CONF[BATCH]["documents"], xcom


def test_example_dags_leave_deployments_as_intended(
    simulator: RunningSimulator, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read back from the cluster: the batch's teardown restored the baseline; business hours scaled."""
    from airflow_esml.hooks.ml import ElasticsearchMLHook

    assert scenario.plugin.runs.keys() >= {BATCH, HOURS}
    monkeypatch.setenv("AIRFLOW_CONN_ESML_E2E_CHECK", simulator.connection_json())
    hook = ElasticsearchMLHook("esml_e2e_check")
    try:
        batch = hook.get_deployment(RUN_CONF[BATCH]["deployment_id"])
        hours = hook.get_deployment(RUN_CONF[HOURS]["deployment_id"])
    finally:
        hook.close()
    assert batch.target_allocations == 1, batch  # the simulator booted it with one allocation
    assert (hours.target_allocations, hours.started_allocations) == (2, 2), hours


def test_plugin_sensor_survives_triggerer_crash(
    airflow_stack: AirflowStack, api: AirflowApi, scenario: Scenario
) -> None:
    assert_succeeded(api, scenario.plugin, BATCH)
    assert_resumed_after_crash(airflow_stack, api, scenario.plugin)


def test_tls_and_failures_in_workers(api: AirflowApi, scenario: Scenario) -> None:
    """Verification by the connection's CA works, a wrong CA fails clearly, verify_certs=false warns."""
    run_id = scenario.plugin.runs[TLS_DAG]
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(TLS_DAG, run_id)}
    assert states == {
        "verified_by_ca": "success",
        "wrong_ca": "failed",
        "no_verify": "success",
        "missing_deployment": "failed",
    }, failure_report(api, TLS_DAG, run_id)
    wrong_ca = api.task_log(TLS_DAG, run_id, "wrong_ca", 1)
    assert "TLS verification failed" in wrong_ca and "'ca_certs'" in wrong_ca, wrong_ca[-3000:]
    no_verify = api.task_log(TLS_DAG, run_id, "no_verify", 1)
    assert "verify_certs=false" in no_verify and "NOT verified" in no_verify, no_verify[-3000:]
    missing = api.task_log(TLS_DAG, run_id, "missing_deployment", 1)
    assert "DeploymentNotFoundError" in missing and "e2e-no-such-model" in missing, missing[-3000:]
