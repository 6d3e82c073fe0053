from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_esml.exceptions import (
    AllocationsTimeoutError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    DeploymentStateError,
    ElasticsearchRequestError,
    InvalidParameterError,
)
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.triggers.deployment import AllocationsStartedTrigger
from tests.conftest import CONN_ENV
from tests.helpers import cluster_changes, requests_to, run_trigger


def op(**kwargs) -> UpdateDeploymentOperator:
    return UpdateDeploymentOperator(task_id="scale", deployment_id=kwargs.pop("deployment_id", "my-e5"), **kwargs)


def test_scale_up_returns_previous_and_new_settings(sim):
    result = op(number_of_allocations=3).execute({})
    assert result.pop("accounting")["baseline"] == 1  # a capacity window opens (tests/operators/test_accounting.py)
    assert result == {
        "managed_by": "trained_models",
        "inference_id": None,
        "task_type": None,
        "deployment_id": "my-e5",
        "model_id": "my-e5",
        "previous_number_of_allocations": 1,
        "previous_adaptive_allocations": None,
        "number_of_allocations": 3,
        "adaptive_allocations": None,
        "updated": True,
    }
    assert json.loads(json.dumps(result)) == result
    assert sim.cluster.target("my-e5") == 3


def test_already_at_the_setting_sends_nothing_and_succeeds(sim):
    result = op(number_of_allocations=1).execute({})
    assert result["updated"] is False and result["previous_number_of_allocations"] == 1
    assert requests_to(sim, "update") == 0


def test_wait_for_completion_in_the_worker(sim):
    result = op(number_of_allocations=4, wait_for_completion=True, poll_interval=0.1, timeout=30).execute({})
    assert result["deployment"]["started_allocations"] >= 4
    assert sim.cluster.deployment_stats("my-e5")["allocation_status"]["state"] == "fully_allocated"


def test_wait_times_out_with_the_last_status(sim):
    sim.set_load_seconds(30)
    with pytest.raises(
        AllocationsTimeoutError,
        match=r"timed out after .*last seen: my-e5: [0-3]/4 allocations started \(.*ml-node-1 starting",
    ):
        op(number_of_allocations=4, wait_for_completion=True, poll_interval=0.1, timeout=0.5).execute({})


def test_deferrable_wait_defers_and_resumes(sim):
    operator = op(number_of_allocations=3, wait_for_completion=True, deferrable=True, poll_interval=0.1, timeout=30)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, AllocationsStartedTrigger)
    assert (trigger.deployment_id, trigger.min_allocations, trigger.poll_interval) == ("my-e5", 3, 0.1)
    assert trigger.end_time - trigger.started_at == pytest.approx(30)
    event = run_trigger(trigger)
    assert event["status"] == "success"
    result = operator.execute_complete({}, event, **deferred.value.kwargs)
    assert result["previous_number_of_allocations"] == 1 and result["deployment"]["started_allocations"] >= 3


def test_deferrable_wait_that_is_already_done_does_not_defer(sim):
    result = op(number_of_allocations=1, wait_for_completion=True, deferrable=True).execute({})
    assert result["deployment"]["started_allocations"] == 1


def test_failed_trigger_event_fails_the_task(sim):
    with pytest.raises(DeploymentFailedError, match="node-b: boom"):
        op(number_of_allocations=2).execute_complete({}, {"status": "failed", "message": "node-b: boom"}, {})


def test_adaptive_policy_disable_switches_adaptive_off(sim):
    sim.cluster.update_deployment("my-e5", adaptive_allocations={"enabled": True, "min_number_of_allocations": 1,
                                                                  "max_number_of_allocations": 4})  # fmt: skip
    result = op(number_of_allocations=2, adaptive_policy="disable").execute({})
    assert result["previous_adaptive_allocations"] == {
        "enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4,
    }  # fmt: skip
    assert sim.cluster.target("my-e5") == 2
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"]["enabled"] is False


def test_raise_min_is_the_default_and_a_paired_scale_down_restores_exactly(sim):
    before = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 2}
    sim.cluster.update_deployment("my-e5", adaptive_allocations=before)
    up = op(number_of_allocations=3, wait_for_completion=True, poll_interval=0.1, timeout=30).execute({})
    assert up["previous_adaptive_allocations"] == before and up["raised_min"] == 3
    assert up["adaptive_allocations"] == {
        "enabled": True,
        "min_number_of_allocations": 3,
        "max_number_of_allocations": 3,
    }
    stats = sim.cluster.deployment_stats("my-e5")
    assert stats["adaptive_allocations"]["enabled"] is True and sim.cluster.target("my-e5") == 3
    assert up["deployment"]["started_allocations"] >= 3
    assert all(e.data["new"]["enabled"] for e in sim.audit.events("adaptive_changed"))  # adaptive stays on
    down = op(adaptive_allocations=json.dumps(up["previous_adaptive_allocations"])).execute({})
    assert down["updated"] is True
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"] == before


def test_template_fields():
    assert set(UpdateDeploymentOperator.template_fields) == {
        "deployment_id", "number_of_allocations", "adaptive_allocations", "elasticsearch_conn_id",
    }  # fmt: skip


BAD_INPUTS = [
    ({"number_of_allocations": 0}, InvalidParameterError, "number_of_allocations must be a positive integer, got 0"),
    ({"number_of_allocations": -3}, InvalidParameterError, "got -3"),
    ({"number_of_allocations": 2.5}, InvalidParameterError, "got 2.5"),
    ({"number_of_allocations": "four"}, InvalidParameterError, "got 'four'"),
    ({"number_of_allocations": "{{ oops }}"}, InvalidParameterError, "got '{{ oops }}'"),
    ({"number_of_allocations": "None"}, InvalidParameterError, "exactly one"),
    ({}, InvalidParameterError, "exactly one"),
    ({"number_of_allocations": 2, "adaptive_allocations": {"enabled": True}}, InvalidParameterError, "exactly one"),
    ({"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 5, "max_number_of_allocations": 2}},
     InvalidParameterError, "must not be larger"),
    ({"adaptive_allocations": "[1, 2]"}, InvalidParameterError, "adaptive_allocations must be a dict"),
    ({"number_of_allocations": 2, "adaptive_policy": "ignore"}, InvalidParameterError,
     "adaptive_policy must be one of"),
    ({"number_of_allocations": 2, "deployment_id": "no-such"}, DeploymentNotFoundError, "no-such"),
    ({"number_of_allocations": 2, "deployment_id": "low-prio"}, InvalidParameterError, "priority 'low'"),
    ({"number_of_allocations": 2, "deployment_id": "adaptive", "adaptive_policy": "fail"}, InvalidParameterError,
     "adaptive allocations enabled"),
    ({"number_of_allocations": 2, "deployment_id": "still-starting"}, DeploymentStateError, "is starting"),
    ({"number_of_allocations": 2, "elasticsearch_conn_id": "nope"}, Exception, "nope"),
    ({"number_of_allocations": 2, "elasticsearch_conn_id": "extra_typo"}, InvalidParameterError, "'verify_cert'"),
    ({"number_of_allocations": 2, "elasticsearch_conn_id": "unreachable"}, ElasticsearchRequestError, "cannot reach"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "fragment"), BAD_INPUTS, ids=[b[2][:40] for b in BAD_INPUTS])
def test_bad_input_fails_clearly_and_changes_nothing(sim, monkeypatch, kwargs, error, fragment):
    sim.cluster.add_model("low-model")
    sim.cluster.start_deployment("low-model", deployment_id="low-prio", priority="low", wait=True)
    adaptive = {"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 2}
    sim.cluster.start_deployment("my-e5", deployment_id="adaptive", adaptive_allocations=adaptive, wait=True)
    sim.set_load_seconds(60, model_id="low-model")
    sim.cluster.start_deployment("low-model", deployment_id="still-starting")
    port = int(sim.url.rsplit(":", 1)[1])
    base = {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": port, "schema": "http"}
    monkeypatch.setenv("AIRFLOW_CONN_EXTRA_TYPO", json.dumps({**base, "extra": {"verify_cert": False}}))
    monkeypatch.setenv("AIRFLOW_CONN_WRONG_KEY", json.dumps({**base, "extra": {"api_key": "wrong"}}))
    monkeypatch.setenv("AIRFLOW_CONN_UNREACHABLE", json.dumps({**base, "port": 1}))
    before = len(cluster_changes(sim))
    with pytest.raises(error) as excinfo:
        op(**kwargs).execute({})
    assert fragment in str(excinfo.value)
    assert requests_to(sim, "update") == 0
    assert len(cluster_changes(sim)) == before


def test_wrong_credentials_against_a_secured_cluster(tmp_path, monkeypatch):
    from airflow_esml.testing import Simulator

    with Simulator(ml_nodes={"n": 2}, api_key="the-real-key", load_seconds=0.1) as secure:
        secure.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, secure.connection_uri().replace("the-real-key", "a-wrong-key"))
        with pytest.raises(ElasticsearchRequestError, match="authentication failed") as excinfo:
            op(number_of_allocations=2).execute({})
        assert "a-wrong-key" not in str(excinfo.value) and "the-real-key" not in str(excinfo.value)
        assert secure.cluster.target("my-e5") == 1


def test_on_serverless_a_count_raises_the_adaptive_minimum_and_capacity_is_not_checked(sim, monkeypatch, capsys):
    from airflow_esml.hooks.ml import ElasticsearchMLHook

    monkeypatch.setattr(ElasticsearchMLHook, "is_serverless", lambda self: True)
    before = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 32}
    sim.cluster.update_deployment("my-e5", adaptive_allocations=before)
    result = op(number_of_allocations=6).execute({})
    assert result["capacity"] == {"checked": False, "reason": "Serverless project autoscales"}
    assert "my-e5: capacity not checked: Serverless project autoscales" in capsys.readouterr().out
    assert requests_to(sim, "nodes") == 0 and requests_to(sim, "ml_info") == 0
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"] == {**before, "min_number_of_allocations": 6}
    with pytest.raises(InvalidParameterError, match="adaptive_policy='disable' cannot be applied on Elastic Cloud"):
        op(number_of_allocations=2, adaptive_policy="disable").execute({})
