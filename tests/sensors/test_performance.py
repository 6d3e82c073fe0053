"""AllocationsStartedSensor's performance condition (``max_pending_per_allocation``), in poke and deferrable modes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from airflow_esml.core.status import DeploymentStatus
from airflow_esml.core.target import trained_model_target
from airflow_esml.exceptions import InvalidParameterError
from tests.helpers import stats_example


@pytest.fixture
def status() -> DeploymentStatus:
    return stats_example()


class FakeHook:
    """Answers get_deployment with the given statuses in turn (the last one repeats)."""

    def __init__(self, *statuses):
        self.statuses = list(statuses)
        self.calls = 0

    def get_deployment(self, deployment_id, *, deadline=None):
        self.calls += 1
        return self.statuses[0] if len(self.statuses) == 1 else self.statuses.pop(0)

    def target(self, deployment_id):
        return trained_model_target(deployment_id)


def busy(status, pending_per_node: int):
    return replace(status, started_allocations=3, target_allocations=3,
                   nodes=tuple(replace(n, pending_requests=pending_per_node) for n in status.nodes))  # fmt: skip


def make_sensor(**kwargs):
    from airflow_esml.sensors.deployment import AllocationsStartedSensor

    kwargs.setdefault("poke_interval", 0.01)
    kwargs.setdefault("timeout", 10)
    return AllocationsStartedSensor(task_id="wait", deployment_id="my-e5-batch", **kwargs)


def test_sensor_waits_until_the_queue_per_allocation_is_small(status, capsys):
    sensor = make_sensor(max_pending_per_allocation=1)
    sensor.hook = FakeHook(busy(status, 6), busy(status, 3), busy(status, 1))  # 12/3, 6/3, then 2/3 per allocation
    result = sensor.execute({})
    assert result["nodes"][0]["pending_requests"] == 1 and sensor.hook.calls == 3
    logged = capsys.readouterr().out
    assert "12 pending requests = 4.00 per allocation, above the bound of 1" in logged
    assert "2 pending requests = 0.67 per allocation (bound 1)" in logged


def test_sensor_deferrable_checks_the_condition_after_the_trigger(status):
    from airflow.providers.common.compat.sdk import TaskDeferred
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

    sensor = make_sensor(max_pending_per_allocation="1", deferrable=True)
    sensor.hook = FakeHook(busy(status, 6))
    with pytest.raises(TaskDeferred) as first:
        sensor.execute({})  # allocations are started, the queue is not: wait in the triggerer
    success = {"status": "success", "message": "ok", "deployment": busy(status, 6).to_dict()}
    with pytest.raises(TaskDeferred) as timer:
        sensor.execute_complete({}, success, **first.value.kwargs)
    assert isinstance(timer.value.trigger, TimeDeltaTrigger) and timer.value.method_name == "resume_performance"
    sensor.hook = FakeHook(busy(status, 0))
    assert sensor.resume_performance({}, None, **timer.value.kwargs)["nodes"][0]["pending_requests"] == 0


def test_sensor_performance_wait_times_out(status):
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    sensor = make_sensor(max_pending_per_allocation=0, deferrable=True)
    sensor.hook = FakeHook(busy(status, 6))
    with pytest.raises(AirflowSensorTimeout, match="timed out"):
        sensor.resume_performance({}, None, window=[0.0, 1.0])


def test_sensor_refuses_a_bad_bound_before_any_request(status):
    sensor = make_sensor(max_pending_per_allocation="lots")
    sensor.hook = FakeHook(status)
    with pytest.raises(InvalidParameterError, match="max_pending_per_allocation"):
        sensor.execute({})
    assert sensor.hook.calls == 0


def test_sensor_condition_against_the_simulator(sim):
    from airflow_esml.sensors.deployment import AllocationsStartedSensor

    sensor = AllocationsStartedSensor(task_id="wait", deployment_id="my-e5", max_pending_per_allocation=0,
                                      poke_interval=0.05, timeout=10)  # fmt: skip
    assert sensor.execute({})["started_allocations"] == 1  # idle deployment: nothing pending
