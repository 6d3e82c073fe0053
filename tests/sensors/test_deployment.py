from __future__ import annotations

import itertools
import re

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_esml.exceptions import DeploymentFailedError, InvalidParameterError
from airflow_esml.sensors.deployment import AllocationsStartedSensor
from tests.helpers import run_trigger


def sensor(**kwargs) -> AllocationsStartedSensor:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 20)
    return AllocationsStartedSensor(task_id="wait", deployment_id=kwargs.pop("deployment_id", "my-e5"), **kwargs)


def test_poke_mode_waits_for_the_whole_target(sim, capsys):
    sim.set_load_seconds(1.0)
    sim.cluster.update_deployment("my-e5", number_of_allocations=6)
    result = sensor().execute({})
    assert result["started_allocations"] >= 6 and result["target_allocations"] == 6
    logged = capsys.readouterr().out
    assert re.search(
        r"my-e5: [0-5]/6 allocations started \(ml-node-\d started x\d, ml-node-\d starting\), \d+s of 20s", logged
    )
    assert re.search(r"my-e5: 6/6 allocations started \(ml-node-\d started x\d, ml-node-\d started x\d\)", logged)


def test_poke_mode_logs_a_line_per_change_not_per_poke(sim, capsys):
    sim.set_load_seconds(1.0)
    sim.cluster.update_deployment("my-e5", number_of_allocations=6)
    sensor(poke_interval=0.05).execute({})
    pokes = len([e for e in sim.audit.events("request") if e.data.get("endpoint") == "stats"])
    lines = re.findall(r"my-e5: (\d/6 allocations started \([^)]*\))", capsys.readouterr().out)
    assert pokes >= 10 and 2 <= len(lines) < pokes, (pokes, lines)
    assert all(a != b for a, b in itertools.pairwise(lines)), lines  # each line says something new
    assert lines[-1].startswith("6/6")


def test_min_allocations_is_enough(sim):
    sim.cluster.update_deployment("my-e5", number_of_allocations=3)
    assert sensor(min_allocations="1").execute({})["target_allocations"] == 3


def test_fails_at_once_when_the_deployment_failed(sim):
    sim.cluster.update_deployment("my-e5", number_of_allocations=2)
    sim.fail_node("ml-node-1", reason="out of memory loading model")
    sim.fail_node("ml-node-2", reason="disk full")
    with pytest.raises(DeploymentFailedError) as excinfo:
        sensor(timeout=60).execute({})
    assert "ml-node-1: out of memory loading model" in str(excinfo.value)
    assert "ml-node-2: disk full" in str(excinfo.value)


@pytest.mark.parametrize("deferrable", [False, True])
def test_missing_deployment_fails_at_once(sim, deferrable):
    with pytest.raises(DeploymentFailedError, match="no-such"):
        sensor(deployment_id="no-such", deferrable=deferrable).execute({})


def test_bad_min_allocations_is_refused_before_any_request(sim):
    with pytest.raises(InvalidParameterError, match="min_allocations must be a positive integer, got 'x'"):
        sensor(min_allocations="x").execute({})


def test_deferrable_success(sim):
    sim.cluster.update_deployment("my-e5", number_of_allocations=3)
    waiting = sensor(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "success"
    assert waiting.execute_complete({}, event)["started_allocations"] >= 3


@pytest.mark.parametrize("soft_fail", [False, True])
@pytest.mark.parametrize("deferrable", [False, True])
def test_timeout_and_soft_fail_mean_the_same_in_every_mode(sim, deferrable, soft_fail):
    sim.set_load_seconds(30)
    sim.cluster.update_deployment("my-e5", number_of_allocations=4)
    # the trigger's window includes its own connection lookup: long enough for a first answer on a loaded machine
    waiting = sensor(deferrable=deferrable, soft_fail=soft_fail, timeout=2.0)
    expected = AirflowSkipException if soft_fail else AirflowSensorTimeout
    with pytest.raises(expected):
        if not deferrable:
            waiting.execute({})
        else:
            with pytest.raises(TaskDeferred) as deferred:
                waiting.execute({})
            event = run_trigger(deferred.value.trigger)
            assert event["status"] == "timeout" and "/4 allocations" in event["message"]
            waiting.resume_execution("execute_complete", {"event": event}, {})


@pytest.mark.parametrize("deferrable", [False, True])
def test_soft_fail_skips_a_failed_deployment_in_every_mode(sim, deferrable):
    with pytest.raises(AirflowSkipException):
        sensor(deployment_id="no-such", deferrable=deferrable, soft_fail=True).execute({})
