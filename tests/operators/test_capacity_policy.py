"""UpdateDeploymentOperator's capacity check, limits and metrics against the simulator (two 4-processor ML nodes)."""

from __future__ import annotations

import pytest

from airflow_esml.core.capacity import InsufficientCapacityError
from airflow_esml.exceptions import InvalidParameterError, TransientRequestError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.testing import Simulator
from tests.conftest import CONN_ENV
from tests.helpers import cluster_changes, requests_to


def op(**kwargs) -> UpdateDeploymentOperator:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return UpdateDeploymentOperator(task_id="scale", deployment_id=kwargs.pop("deployment_id", "my-e5"), **kwargs)


@pytest.fixture
def crowded(sim: Simulator) -> Simulator:
    """Another deployment of the same model takes 6 of the 8 processors: my-e5 (1 allocation) can grow to 2."""
    sim.cluster.start_deployment("my-e5", deployment_id="my-e5-b", number_of_allocations=6, wait=True)
    return sim


def test_fail_refuses_before_any_change_and_says_what_fits(crowded):
    before = len(cluster_changes(crowded))
    with pytest.raises(InsufficientCapacityError) as excinfo:
        op(number_of_allocations=5).execute({})  # capacity_policy="fail" is the default
    message = str(excinfo.value)
    assert "my-e5: 5 allocations do not fit: the ML nodes can hold 2 allocations of this deployment" in message
    assert "used by other deployments" in message and "each allocation needs 1 processor(s)" in message
    assert "capacity_policy='fit'" in message
    assert requests_to(crowded, "update") == 0 and len(cluster_changes(crowded)) == before
    assert crowded.cluster.target("my-e5") == 1 and crowded.cluster.target("my-e5-b") == 6


def test_fit_scales_to_what_fits_and_says_so(crowded, capsys):
    result = op(number_of_allocations=5, capacity_policy="fit", wait_for_completion=True).execute({})
    assert crowded.cluster.target("my-e5") == 2 and result["number_of_allocations"] == 2
    assert result["capacity"]["requested"] == 5 and result["capacity"]["allowed"] == 2 and result["capacity"]["capped"]
    assert "scaling to 2 instead (capacity_policy='fit')" in result["capacity"]["message"]
    assert "scaling to 2 instead" in capsys.readouterr().out
    assert result["deployment"]["started_allocations"] == 2 and crowded.cluster.target("my-e5-b") == 6


def test_fit_with_gradual_steps_heads_for_what_fits(sim):
    sim.cluster.start_deployment("my-e5", deployment_id="my-e5-b", number_of_allocations=2, wait=True)
    result = op(number_of_allocations=12, capacity_policy="fit", max_step=2, wait_for_completion=True).execute({})
    assert [s["end"] for s in result["steps"]] == [3, 5, 6] and sim.cluster.target("my-e5") == 6


def test_fit_with_nothing_more_to_fit_changes_nothing(sim):
    sim.cluster.start_deployment("my-e5", deployment_id="my-e5-b", number_of_allocations=7, wait=True)
    result = op(number_of_allocations=3, capacity_policy="fit").execute({})
    assert result["updated"] is False and "staying at 1" in result["capacity"]["message"]
    assert requests_to(sim, "update") == 0


def test_off_sends_the_request_and_elasticsearch_refuses_it(crowded):
    with pytest.raises(TransientRequestError, match="not enough resources"):
        op(number_of_allocations=5, capacity_policy=None).execute({})
    assert requests_to(crowded, "update") >= 1 and crowded.cluster.target("my-e5") == 1


def test_a_request_that_fits_is_sent_unchanged(crowded):
    result = op(number_of_allocations=2).execute({})
    assert "capacity" not in result and crowded.cluster.target("my-e5") == 2


def test_threads_per_allocation_count_in_the_check(sim):
    sim.cluster.start_deployment("my-e5", deployment_id="my-e5-t2", threads_per_allocation=2, wait=True)
    with pytest.raises(InsufficientCapacityError, match=r"can hold 3 allocations .*each allocation needs 2 processor"):
        op(deployment_id="my-e5-t2", number_of_allocations=4).execute({})  # 8 - 1 (my-e5) = 7 free: 3 x 2 threads
    assert requests_to(sim, "update") == 0


@pytest.mark.parametrize("autoscaling", [True, None])
def test_autoscaling_clusters_are_not_refused(monkeypatch, autoscaling):
    with Simulator(ml_nodes={"ml-node-1": 2}, load_seconds=0.2, autoscale=True) as auto:
        auto.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, auto.connection_uri())
        # autoscaling=None: detected from the simulator's cluster settings (xpack.ml.max_lazy_ml_nodes)
        result = op(number_of_allocations=4, autoscaling=autoscaling).execute({})
        assert auto.cluster.target("my-e5") == 4 and result["updated"] is True and "capacity" not in result


LIMITS = [
    ({"deployment_id": "low-prio", "number_of_allocations": 2}, InvalidParameterError,
     "priority 'low', which is limited to 1 allocation"),
    ({"deployment_id": "low-prio", "adaptive_allocations": {"enabled": True, "max_number_of_allocations": 3}},
     InvalidParameterError, "max_number_of_allocations']=3 is refused"),
    ({"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 4, "max_number_of_allocations": 2}},
     InvalidParameterError, "min_number_of_allocations (4) must not be larger than max_number_of_allocations (2)"),
    ({"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 20}},
     InsufficientCapacityError, "adaptive_allocations['max_number_of_allocations']=20 exceeds what the ML nodes"),
    ({"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 9}},
     InsufficientCapacityError, "9 allocations do not fit"),
    ({"number_of_allocations": 9}, InsufficientCapacityError, "9 allocations do not fit"),
    ({"number_of_allocations": 3, "max_step": -2}, InvalidParameterError, "max_step must be a positive integer"),
    ({"number_of_allocations": 3, "capacity_policy": "squeeze"}, InvalidParameterError, "capacity_policy must be"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "fragment"), LIMITS, ids=[f[:36] for _, _, f in LIMITS])
def test_each_limit_is_refused_before_any_change(sim, kwargs, error, fragment):
    sim.cluster.add_model("low-model")
    sim.cluster.start_deployment("low-model", deployment_id="low-prio", priority="low", wait=True)
    before = len(cluster_changes(sim))
    with pytest.raises(error) as excinfo:
        op(**kwargs).execute({})
    assert fragment in str(excinfo.value)
    assert requests_to(sim, "update") == 0 and len(cluster_changes(sim)) == before


def test_metrics_in_the_xcom_result_after_the_wait(sim, capsys):
    ElasticsearchMLHook().infer("my-e5", [{"text_field": f"doc {i}"} for i in range(20)])
    result = op(number_of_allocations=3, wait_for_completion=True).execute({})
    metrics = result["metrics"]
    assert metrics["deployment_id"] == "my-e5" and metrics["started_allocations"] == 3
    assert metrics["inference_count"] >= 20 and metrics["throughput_last_minute"] >= 20
    assert metrics["average_inference_time_ms"] is not None and metrics["average_inference_time_ms"] > 0
    assert metrics["pending_per_allocation"] == metrics["pending_requests"] / 3
    assert "my-e5: after the change: 3 allocations started, throughput" in capsys.readouterr().out


def test_no_metrics_without_waiting(sim):
    assert "metrics" not in op(number_of_allocations=3).execute({})
