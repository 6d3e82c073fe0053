"""The operators' waits end at their timeout when the cluster stops answering; bad input fails before any request."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest

from airflow_esml.exceptions import AllocationsTimeoutError, InvalidParameterError
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.operators.inference import BatchInferenceOperator
from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator
from tests.conftest import update_requests
from tests.helpers import cluster_changes

#: scheduling and client overhead on a shared 2-core machine
SLACK = 1.5
TIMEOUT, INTERVAL = 2.0, 0.5


def context() -> dict:
    return {"run_id": "manual__1", "ti": SimpleNamespace(try_number=1)}


def hang_after(sim, obj, method: str, monkeypatch, started: list[float]) -> None:
    """After ``obj.method`` returns, the stats endpoint stops answering (a minute's latency)."""
    original = getattr(obj, method)

    def then_hang(*args, **kwargs):
        result = original(*args, **kwargs)
        sim.inject_fault(endpoint="stats", latency=60)
        started.append(time.monotonic())
        return result

    monkeypatch.setattr(obj, method, then_hang)


def test_a_cluster_that_stops_answering_fails_the_worker_wait_at_its_timeout(sim, monkeypatch):
    sim.set_load_seconds(30)  # the new allocations would take long to start anyway
    scale = UpdateDeploymentOperator(
        task_id="scale",
        deployment_id="my-e5",
        number_of_allocations=3,
        wait_for_completion=True,
        timeout=TIMEOUT,
        poll_interval=INTERVAL,
        capacity_policy="off",
    )
    started: list[float] = []
    hang_after(sim, scale.hook, "update_deployment", monkeypatch, started)
    with pytest.raises(AllocationsTimeoutError) as excinfo:
        scale.execute({})
    assert time.monotonic() - started[0] < TIMEOUT + INTERVAL + SLACK
    assert re.search(r"timed out after [23]\.\ds of 2\.0s", str(excinfo.value))  # a loaded machine may pass 2.0
    assert "stats of deployment 'my-e5': the cluster did not answer within" in str(excinfo.value)
    assert sim.cluster.target("my-e5") == 3  # the update itself went through


def test_a_cluster_that_stops_answering_fails_the_lease_wait_at_its_timeout(sim, monkeypatch):
    sim.set_load_seconds(30)
    acquire = AcquireDeploymentLeaseOperator(
        task_id="acquire",
        deployment_id="my-e5",
        number_of_allocations=3,
        wait_for_completion=True,
        timeout=TIMEOUT,
        poll_interval=INTERVAL,
    )
    started: list[float] = []
    hang_after(sim, acquire.store, "acquire", monkeypatch, started)
    release = acquire.store.release

    def answer_again_then_release(*args, **kwargs):  # the roll-back is not part of the wait
        sim.faults.clear()
        return release(*args, **kwargs)

    monkeypatch.setattr(acquire.store, "release", answer_again_then_release)
    ended: list[float] = []
    monkeypatch.setattr(
        acquire, "_roll_back", lambda ctx, original=acquire._roll_back: (ended.append(time.monotonic()), original(ctx))
    )
    with pytest.raises(AllocationsTimeoutError, match="the cluster did not answer within"):
        acquire.execute(context())
    assert ended[0] - started[0] < TIMEOUT + INTERVAL + SLACK


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: UpdateDeploymentOperator(task_id="t", deployment_id="d", number_of_allocations=2, poll_interval=0),
         "poll_interval must be a positive number of seconds or a timedelta, got 0"),
        (lambda: UpdateDeploymentOperator(task_id="t", deployment_id="d", number_of_allocations=2, timeout=-1),
         "timeout must be a positive number of seconds or a timedelta, got -1"),
        (lambda: UpdateDeploymentOperator(task_id="t", deployment_id="d", number_of_allocations=2, timeout="60"),
         "timeout must be a positive number of seconds or a timedelta, got '60'"),
        (lambda: AcquireDeploymentLeaseOperator(task_id="t", deployment_id="d", number_of_allocations=2,
                                                poll_interval=0),
         "poll_interval must be a positive number of seconds or a timedelta, got 0"),
        (lambda: AcquireDeploymentLeaseOperator(task_id="t", deployment_id="d", number_of_allocations=2,
                                                timeout=float("inf")),
         "timeout must be a positive number of seconds or a timedelta, got inf"),
        (lambda: BatchInferenceOperator(task_id="t", deployment_id="d", docs=[], max_queue_wait=-1),
         "max_queue_wait must be a non-negative number of seconds or a timedelta, got -1"),
    ],
)  # fmt: skip
def test_bad_non_templated_values_fail_when_the_dag_is_defined(make, message):
    with pytest.raises(InvalidParameterError) as excinfo:
        make()
    assert str(excinfo.value) == message


EMPTY_IDS = ["", "   "]


@pytest.mark.parametrize("deployment_id", EMPTY_IDS)
@pytest.mark.parametrize(
    "make",
    [
        lambda d: UpdateDeploymentOperator(task_id="t", deployment_id=d, number_of_allocations=2),
        lambda d: AcquireDeploymentLeaseOperator(task_id="t", deployment_id=d, number_of_allocations=2),
        lambda d: ReleaseDeploymentLeaseOperator(task_id="t", deployment_id=d),
        lambda d: BatchInferenceOperator(task_id="t", deployment_id=d, docs=["a"]),
    ],
    ids=["update", "acquire", "release", "infer"],
)
def test_an_empty_deployment_id_fails_before_any_request(sim, make, deployment_id):
    changes = cluster_changes(sim)
    with pytest.raises(InvalidParameterError) as excinfo:
        make(deployment_id).execute(context())
    assert str(excinfo.value) == f"deployment_id must be a non-empty string, got {deployment_id!r}"
    assert sim.audit.events("request") == []
    assert cluster_changes(sim) == changes and sim.cluster.target("my-e5") == 1


@pytest.mark.parametrize("count", ["²", "+2", "2.0", "٢"])
@pytest.mark.parametrize(
    "make",
    [
        lambda n: UpdateDeploymentOperator(task_id="t", deployment_id="my-e5", number_of_allocations=n),
        lambda n: AcquireDeploymentLeaseOperator(task_id="t", deployment_id="my-e5", number_of_allocations=n),
    ],
    ids=["update", "acquire"],
)
def test_a_count_that_is_not_ascii_digits_fails_before_any_change(sim, make, count):
    changes = cluster_changes(sim)
    with pytest.raises(InvalidParameterError) as excinfo:
        make(count).execute(context())
    assert str(excinfo.value) == f"number_of_allocations must be a positive integer, got {count!r}"
    assert update_requests(sim) == [] and cluster_changes(sim) == changes and sim.cluster.target("my-e5") == 1


@pytest.mark.parametrize("length", [5_000, 70_000])
def test_a_huge_deployment_id_gives_a_readable_error_and_changes_nothing(sim, length):
    with pytest.raises(Exception) as excinfo:
        UpdateDeploymentOperator(task_id="t", deployment_id="x" * length, number_of_allocations=2).execute({})
    assert len(str(excinfo.value)) < 1000 and f"({length} characters)" in str(excinfo.value)
    assert update_requests(sim) == [] and sim.cluster.target("my-e5") == 1
