"""UpdateDeploymentOperator(max_step=...): stepwise scaling, checked in the simulator's audit log."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_esml.exceptions import DeploymentFailedError, InvalidParameterError, TransientRequestError
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.testing import Simulator
from airflow_esml.triggers.deployment import AllocationsStartedTrigger
from tests.helpers import requests_to, run_trigger


def op(**kwargs) -> UpdateDeploymentOperator:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return UpdateDeploymentOperator(task_id="scale", deployment_id=kwargs.pop("deployment_id", "my-e5"), **kwargs)


def route_states_at(sim: Simulator, deployment_id: str, moment: float) -> dict[str, str]:
    """Each node's routing state of the deployment just before ``moment``, replayed from the audit log."""
    states: dict[str, str] = {}
    for event in sim.audit.events("route_state", deployment_id=deployment_id):
        if event.at < moment:
            states[event.data["node"]] = event.data["state"]
    return states


def assert_each_step_started_before_the_next(sim: Simulator, deployment_id: str, since: float) -> None:
    """Between two target changes made since ``since``: a stats request, and no route still ``starting``."""
    changes = [e for e in sim.audit.events("target_changed", deployment_id=deployment_id) if e.at > since]
    assert len(changes) >= 2
    for earlier, later in itertools.pairwise(changes):
        states = route_states_at(sim, deployment_id, later.at)
        assert "starting" not in states.values(), f"target {later.data['new']} set while {states}"
        between = [e for e in sim.audit.events("request") if earlier.at < e.at < later.at]
        assert any(e.data.get("endpoint") == "stats" for e in between), "no look at the deployment between steps"


def test_stepwise_scale_up_waits_for_each_step(sim, capsys):
    since = time.time()
    result = op(number_of_allocations=7, max_step=2, wait_for_completion=True).execute({})
    assert [v for _, v in sim.audit.target_history("my-e5")][-3:] == [3, 5, 7]
    assert_each_step_started_before_the_next(sim, "my-e5", since)
    assert [(s["index"], s["start"], s["end"]) for s in result["steps"]] == [(1, 1, 3), (2, 3, 5), (3, 5, 7)]
    assert all(s["started_allocations"] >= s["end"] for s in result["steps"])
    assert result["previous_number_of_allocations"] == 1 and result["number_of_allocations"] == 7
    assert result["deployment"]["started_allocations"] == 7
    assert result["metrics"]["started_allocations"] == 7 and "throughput_last_minute" in result["metrics"]
    logged = capsys.readouterr().out
    assert "my-e5: step 2 of 3: 3 -> 5 allocations" in logged and "my-e5: after the change: 7 allocations" in logged
    assert json.loads(json.dumps(result)) == result


def test_stepwise_scale_down_waits_and_logs_each_step(sim, capsys):
    sim.cluster.update_deployment("my-e5", number_of_allocations=7)
    sim.cluster.wait_for("my-e5")
    since = time.time()
    result = op(number_of_allocations=1, max_step=3, wait_for_completion=True).execute({})
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [4, 1]
    assert_each_step_started_before_the_next(sim, "my-e5", since)
    assert [(s["start"], s["end"]) for s in result["steps"]] == [(7, 4), (4, 1)]
    logged = capsys.readouterr().out
    assert "my-e5: step 1 of 2: 7 -> 4 allocations" in logged and "my-e5: step 2 of 2: 4 -> 1 allocations" in logged
    assert result["previous_number_of_allocations"] == 7 and sim.cluster.target("my-e5") == 1


def test_intermediate_steps_wait_even_without_wait_for_completion(sim):
    since = time.time()
    result = op(number_of_allocations=5, max_step=2).execute({})
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [3, 5]
    assert_each_step_started_before_the_next(sim, "my-e5", since)
    assert result["steps"][-1]["started_allocations"] is None  # the last step was not waited for
    assert "metrics" not in result


def test_a_small_change_is_one_step(sim):
    result = op(number_of_allocations=2, max_step=4).execute({})
    assert "steps" not in result and requests_to(sim, "update") == 1 and sim.cluster.target("my-e5") == 2


def test_deferrable_between_steps(sim):
    operator = op(number_of_allocations=5, max_step=2, wait_for_completion=True, deferrable=True)
    since = time.time()
    with pytest.raises(TaskDeferred) as excinfo:
        operator.execute({})
    deferred, rounds = excinfo.value, 0
    while True:
        trigger, kwargs = deferred.trigger, deferred.kwargs or {}
        assert isinstance(trigger, AllocationsStartedTrigger) and deferred.method_name == "resume_steps"
        assert trigger.min_allocations == kwargs["steps"][0]["end"]
        assert json.loads(json.dumps(kwargs)) == kwargs  # what the triggerer stores
        rounds += 1
        try:
            result = operator.resume_steps({}, run_trigger(trigger), **kwargs)
            break
        except TaskDeferred as again:
            deferred = again
    assert rounds == 2
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [3, 5]
    assert_each_step_started_before_the_next(sim, "my-e5", since)
    assert [s["end"] for s in result["steps"]] == [3, 5] and result["metrics"]["started_allocations"] >= 5
    assert result["previous_number_of_allocations"] == 1


def test_a_failure_part_way_says_where_it_stopped(sim):
    # 8 processors: step 1 (1 -> 5) fits, step 2 (5 -> 9) gets Elasticsearch's 429 (capacity check off)
    with pytest.raises(TransientRequestError) as excinfo:
        op(number_of_allocations=12, max_step=4, capacity_policy="off").execute({})
    message = str(excinfo.value)
    assert message.startswith("my-e5: gradual scaling to 12 allocations stopped at step 2 of 3: 5 -> 9 allocations")
    assert "the deployment is left at target 5" in message and "not enough resources" in message
    assert sim.cluster.target("my-e5") == 5


def test_a_failed_step_event_says_where_it_stopped(sim):
    operator = op(number_of_allocations=5, max_step=2, wait_for_completion=True)
    steps = [{"index": 2, "total": 2, "start": 3, "end": 5}]
    event = {"status": "failed", "message": "my-e5: deployment is failed; failed nodes: ml-node-2: boom"}
    with pytest.raises(DeploymentFailedError, match=r"stopped at step 2 of 2: 3 -> 5 allocations; .*ml-node-2: boom"):
        operator.resume_steps({}, event, result={"steps": []}, steps=steps, window=[0.0, 1e12])


def test_max_step_is_validated_before_any_call(sim):
    with pytest.raises(InvalidParameterError, match="max_step must be a positive integer, got 0"):
        op(number_of_allocations=5, max_step=0).execute({})
    assert requests_to(sim, "update") == 0 and requests_to(sim, "stats") == 0
