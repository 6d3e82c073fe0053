"""AllocationsStartedSensor: a hung cluster fails the wait at its timeout; bad input fails before any request."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.sensors.deployment import AllocationsStartedSensor

#: scheduling and client overhead on a shared 2-core machine
SLACK = 1.5


def sensor(**kwargs) -> AllocationsStartedSensor:
    kwargs.setdefault("deployment_id", "my-e5")
    return AllocationsStartedSensor(task_id="wait", **kwargs)


@pytest.mark.parametrize("deferrable", [False, True])  # deferrable: the first look, before deferring
def test_a_hung_cluster_fails_the_sensor_at_its_timeout(hung_cluster, deferrable):
    waiting = sensor(elasticsearch_conn_id="hung", timeout=2, poke_interval=0.5, deferrable=deferrable)
    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout) as excinfo:
        waiting.execute({})
    assert time.monotonic() - started < 2 + 0.5 + SLACK
    message = str(excinfo.value)
    assert re.search(r"timed out after [23]\.\ds of 2\.0s", message)  # a loaded machine may pass 2.0 a little
    # the first request is the lookup of what the id names (GET _inference/my-e5), then the stats
    assert re.search(r"(stats of deployment|inference endpoint lookup of) 'my-e5': the cluster did not answer within",
                     message) and "ConnectionTimeout" in message  # fmt: skip


@pytest.mark.parametrize("deferrable", [False, True])
def test_soft_fail_skips_a_sensor_whose_cluster_does_not_answer(hung_cluster, deferrable):
    waiting = sensor(elasticsearch_conn_id="hung", timeout=1, poke_interval=0.5, deferrable=deferrable, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        waiting.execute({})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poke_interval": 0}, "poke_interval must be a positive number of seconds or a timedelta, got 0"),
        ({"poke_interval": -1}, "poke_interval must be a positive number of seconds or a timedelta, got -1"),
        ({"poke_interval": "5"}, "poke_interval must be a positive number of seconds or a timedelta, got '5'"),
        ({"timeout": 0}, "timeout must be a positive number of seconds or a timedelta, got 0"),
        ({"timeout": float("nan")}, "timeout must be a positive number of seconds or a timedelta, got nan"),
        ({"timeout": timedelta(0)}, "timeout must be a positive number of seconds or a timedelta, got datetime"),
    ],
)
def test_bad_intervals_fail_when_the_dag_is_defined(kwargs, message):
    with pytest.raises(InvalidParameterError) as excinfo:
        sensor(**kwargs)
    assert str(excinfo.value).startswith(message)


def test_timedeltas_are_still_accepted():
    waiting = sensor(poke_interval=timedelta(seconds=2), timeout=timedelta(minutes=1))
    assert waiting.poke_interval == 2.0 and waiting.timeout == 60.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deployment_id": ""}, "deployment_id must be a non-empty string, got ''"),
        ({"deployment_id": "  "}, "deployment_id must be a non-empty string, got '  '"),
        ({"min_allocations": "²"}, "min_allocations must be a positive integer, got '²'"),
    ],
)
@pytest.mark.parametrize("deferrable", [False, True])
def test_bad_templated_values_fail_before_any_request(sim, kwargs, message, deferrable):
    with pytest.raises(InvalidParameterError) as excinfo:
        sensor(deferrable=deferrable, **kwargs).execute({})
    assert str(excinfo.value) == message
    assert sim.audit.events("request") == []


def test_a_huge_deployment_id_gives_a_readable_failure(sim):
    with pytest.raises(Exception) as excinfo:
        sensor(deployment_id="x" * 70_000, timeout=5).execute({})
    assert len(str(excinfo.value)) < 1000 and "(70000 characters)" in str(excinfo.value)
