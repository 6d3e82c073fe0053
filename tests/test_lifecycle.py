"""scaled_deployment: the task group's wiring, and whole DAG runs with ``dag.test()`` against the simulator."""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import BaseOperator
from airflow.sdk import DAG

from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.lifecycle import scaled_deployment
from tests.lease_helpers import Held, invariant_violations, lease_doc, make_store

START = pendulum.datetime(2026, 1, 1, tz="UTC")
LEASE_DAGS = Path(__file__).parent / "lease_dags"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


def lease_dag(name: str) -> Any:
    return getattr(importlib.import_module("tests.lease_dags.lease_retried_scale_up"), name)


class Work(BaseOperator):
    """A stand-in for the user's work."""

    def execute(self, context: Any) -> str:
        return "done"


def test_the_block_wires_setups_work_and_teardown():
    with DAG("wiring", schedule=None, start_date=START) as dag, scaled_deployment("my-e5", 4) as scaled:
        first = Work(task_id="first")
        second = Work(task_id="second")
        side = Work(task_id="side")
        first >> second
    acquire, wait, release = (
        dag.get_task(f"scaled_deployment.{t}") for t in ("acquire", "wait_for_allocations", "release")
    )
    assert scaled.release is release and scaled.setups == [acquire, wait]
    assert acquire.is_setup and wait.is_setup and release.is_teardown
    assert acquire.downstream_task_ids >= {wait.task_id}
    assert wait.downstream_task_ids >= {first.task_id, side.task_id}
    assert second.task_id not in wait.downstream_task_ids
    assert release.upstream_task_ids == {acquire.task_id, wait.task_id, second.task_id, side.task_id}
    assert acquire.lease_name == release.lease_name == "scaled_deployment"
    assert wait.min_allocations == 4
    # keep_lease runs beside the work, downstream of acquire only, and is a leaf: upstream of the release it
    # would deadlock (the release waits for it, it waits for the release)
    keep = dag.get_task("scaled_deployment.keep_lease")
    assert scaled.keep is keep and keep.upstream_task_ids == {acquire.task_id}
    assert keep.downstream_task_ids == set() and not keep.is_setup and not keep.is_teardown
    assert keep.lease_name == "scaled_deployment" and keep.mode == "reschedule"


def test_an_empty_block_and_two_blocks_in_one_dag():
    with DAG("two_blocks", schedule=None, start_date=START) as dag:
        with scaled_deployment("my-e5", number_of_allocations=2, group_id="small"):
            pass
        with scaled_deployment("my-e5", number_of_allocations=6, group_id="big", wait=False) as big:
            work = Work(task_id="work")
    assert dag.get_task("small.release").upstream_task_ids == {"small.acquire", "small.wait_for_allocations"}
    assert big.wait is None
    assert dag.get_task("big.acquire").downstream_task_ids == {work.task_id, "big.release", "big.keep_lease"}
    assert dag.get_task("small.acquire").lease_name != dag.get_task("big.acquire").lease_name


def test_the_example_dag_shares_the_deployment_with_another_teams_lease(airflow_db, sim):
    other = make_store()
    other.acquire("my-e5", "other_team/run/scaled", 2, ttl=600.0)
    start = time.time()  # the other team's lease is served from here on
    dag = importlib.import_module("example_dags.esml_batch_inference").dag
    run = dag.test(run_conf={"allocations": 3, "documents": 40})
    assert run.state == "success"
    # the example scaled to 3, then its release left the other team's 2 in place
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [3, 2]
    assert [x["lease_id"] for x in lease_doc(sim)["leases"]] == ["other_team/run/scaled"]
    end = sim.audit.target_history("my-e5")[-1][0]
    assert invariant_violations(sim.audit.target_history("my-e5"), [Held("other", 2, start, end)]) == []
    other.release("my-e5", "other_team/run/scaled")
    assert sim.cluster.target("my-e5") == 1
    assert lease_doc(sim) is None


@pytest.fixture
def lease_dags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve ``tests/lease_dags`` to ``dag.test()`` as a second DAG bundle."""
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "lease-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(LEASE_DAGS)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))


def test_a_failed_batch_still_releases_and_the_run_fails(airflow_db, lease_dags, sim):
    run = lease_dag("failing").test()
    assert run.state == "failed"
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [3, 1]
    assert lease_doc(sim) is None


def test_a_retried_scale_up_task_restores_the_original_baseline(airflow_db, lease_dags, sim):
    run = lease_dag("retried").test()
    assert run.state == "success"
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert tries["acquire"] == 2
    assert sim.cluster.target("my-e5") == 1  # not the 4 that the first try had set
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [4, 1]
    assert lease_doc(sim) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval must be a positive number of seconds or a timedelta, got 0"),
        ({"wait_timeout": -5}, "wait_timeout must be a positive number of seconds or a timedelta, got -5"),
        ({"release_retries": -1}, "release_retries must be a non-negative integer, got -1"),
        ({"release_retries": "3"}, "release_retries must be a non-negative integer, got '3'"),
        ({"lease_ttl": 0}, "lease_ttl must be a positive number of seconds or a timedelta, got 0"),
    ],
)
def test_bad_non_templated_values_fail_when_the_dag_is_defined(kwargs, message):
    with pytest.raises(InvalidParameterError) as excinfo:
        with DAG("bad", schedule=None, start_date=START), scaled_deployment("my-e5", 4, **kwargs):
            Work(task_id="work")
    assert str(excinfo.value) == message


def test_the_block_passes_the_adaptive_and_capacity_policies_to_the_acquire():
    with DAG("policies", schedule=None, start_date=START) as dag:
        with scaled_deployment("my-e5", 4, group_id="default"):
            pass
        with scaled_deployment("my-e5", 4, group_id="fitted", adaptive_policy="disable", capacity_policy="fit"):
            pass
    default, fitted = dag.get_task("default.acquire"), dag.get_task("fitted.acquire")
    assert (default.adaptive_policy, default.capacity_policy) == ("raise_min", "fail")
    assert (fitted.adaptive_policy, fitted.capacity_policy) == ("disable", "fit")
    # under "fit" the wait waits for what the lease was granted, from the acquire's XCom
    assert dag.get_task("default.wait_for_allocations").min_allocations == 4
    assert dag.get_task("fitted.wait_for_allocations").min_allocations == (
        "{{ ti.xcom_pull(task_ids='fitted.acquire')['granted_allocations'] }}"
    )
    with pytest.raises(InvalidParameterError, match="adaptive_policy must be one of"):
        with DAG("bad", schedule=None, start_date=START), scaled_deployment("my-e5", 4, adaptive_policy="off"):
            pass
    with pytest.raises(InvalidParameterError, match="capacity_policy must be one of"):
        with DAG("bad2", schedule=None, start_date=START), scaled_deployment("my-e5", 4, capacity_policy="maybe"):
            pass


def test_after_overlaps_the_scale_up_with_the_preparation():
    with DAG("overlap", schedule=None, start_date=START) as dag:
        prepare = Work(task_id="prepare")
        with scaled_deployment("my-e5", 4, after=prepare):
            infer = Work(task_id="infer")
    acquire, wait, release = (
        dag.get_task(f"scaled_deployment.{t}") for t in ("acquire", "wait_for_allocations", "release")
    )
    assert acquire.upstream_task_ids == set()  # the scale-up starts with the run, beside the preparation
    assert infer.upstream_task_ids == {wait.task_id, prepare.task_id}  # only the inference waits for both
    assert prepare.task_id not in release.upstream_task_ids | wait.upstream_task_ids
    assert release.upstream_task_ids >= {infer.task_id}


def test_after_on_the_handle_for_tasks_made_later():
    with DAG("overlap_later", schedule=None, start_date=START) as dag:
        with scaled_deployment("my-e5", 4, wait=False) as scaled:
            infer = Work(task_id="infer")
        prepare = Work(task_id="prepare")
        scaled.after([prepare])
    assert infer.upstream_task_ids == {"scaled_deployment.acquire", "prepare"}
    assert dag.get_task("scaled_deployment.acquire").upstream_task_ids == set()
