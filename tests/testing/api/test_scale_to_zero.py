"""Scale to zero and inference at zero allocations, through the real client (items of issue 10)."""

from __future__ import annotations

import time
from typing import Any

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from tests.testing.ml_helpers import raw

ADAPTIVE = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 4}


def stats_of(es: elasticsearch.Elasticsearch, deployment_id: str, compat: int = 9) -> dict[str, Any]:
    body = raw(es, "GET", f"/_ml/trained_models/{deployment_id}/_stats", compat=compat)
    return dict(body["trained_model_stats"][0]["deployment_stats"])


def wait_zero(es: elasticsearch.Elasticsearch, deployment_id: str, compat: int = 9) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while (stats := stats_of(es, deployment_id, compat))["number_of_allocations"] != 0:
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    return stats


def adaptive_endpoint(simulator: Simulator, inference_id: str = "ep") -> None:
    simulator.create_endpoint(inference_id, "my-e5", num_allocations=None, adaptive_allocations=ADAPTIVE)


def test_idle_endpoint_scales_to_zero_then_inference_brings_one_allocation_back() -> None:
    with Simulator(load_seconds=0.05, seed=3, scale_to_zero_seconds=0.3) as simulator:
        es = simulator.client(max_retries=0)
        adaptive_endpoint(simulator)
        zero = wait_zero(es, "ep")
        assert zero["allocation_status"] == {
            "allocation_count": 0,
            "target_allocation_count": 0,
            "state": "fully_allocated",
        }
        assert (zero["state"], zero["nodes"]) == ("started", [])
        got = es.inference.get(inference_id="ep").body["endpoints"][0]["service_settings"]
        assert got["num_allocations"] == 0  # read live from the deployment
        result = es.inference.inference(inference_id="ep", input="wake up").body
        assert result["text_embedding"][0]["embedding"]
        assert [new for _, new in simulator.audit.target_history("ep")][-2:] == [0, 1]


def test_before_8_17_a_zero_target_is_starting_and_inference_is_refused() -> None:
    with Simulator(es_version="8.16.2", load_seconds=0.05, seed=3, scale_to_zero_seconds=0.3) as simulator:
        es = simulator.client(max_retries=0)
        adaptive_endpoint(simulator)
        zero = wait_zero(es, "ep", compat=8)
        assert zero["allocation_status"] == {"allocation_count": 0, "target_allocation_count": 0, "state": "starting"}
        with pytest.raises(elasticsearch.ConflictError) as refused:
            raw(es, "POST", "/_inference/ep", body={"input": "x"}, compat=8)
        assert refused.value.body["error"]["reason"] == "Trained model deployment [ep] is not allocated to any nodes"


def test_inference_waiting_for_an_allocation_times_out_with_408_and_the_scale_up_goes_on() -> None:
    with Simulator(load_seconds=0.05, seed=3, scale_to_zero_seconds=0.3) as simulator:
        es = simulator.client(max_retries=0)
        adaptive_endpoint(simulator)
        wait_zero(es, "ep")
        simulator.set_load_seconds(3.0)
        with pytest.raises(elasticsearch.ApiError) as timed_out:
            es.inference.inference(inference_id="ep", input="x", timeout="200ms")
        assert timed_out.value.meta.status == 408
        assert timed_out.value.body["error"]["reason"] == (
            "Timed out after [200ms] waiting for trained model deployment [ep] to start. Use the trained model "
            "stats API to track the state of the deployment and try again once it has started."
        )
        assert stats_of(es, "ep")["number_of_allocations"] == 1


def test_more_than_100_waiting_requests_get_429() -> None:
    with Simulator(load_seconds=0.05, seed=3, scale_to_zero_seconds=0.3) as simulator:
        es = simulator.client(max_retries=0)
        adaptive_endpoint(simulator)
        wait_zero(es, "ep")
        simulator.cluster.deployments["ep"].waiting_for_allocation = 100  # as if 100 requests were waiting
        with pytest.raises(elasticsearch.ApiError) as rejected:
            es.inference.inference(inference_id="ep", input="x")
        assert (rejected.value.meta.status, rejected.value.body["error"]["reason"]) == (
            429,
            "Rejected inference request waiting for an allocation of deployment [ep]. Too many pending requests",
        )


def test_a_non_adaptive_deployment_at_zero_answers_409() -> None:
    with Simulator(load_seconds=0.05, seed=3, scale_to_zero_seconds=0.3) as simulator:
        es = simulator.client(max_retries=0)
        es.ml.start_trained_model_deployment(model_id="my-e5", adaptive_allocations=ADAPTIVE, wait_for="started")
        wait_zero(es, "my-e5")
        es.ml.update_trained_model_deployment(model_id="my-e5", adaptive_allocations={"enabled": False})
        with pytest.raises(elasticsearch.ConflictError) as refused:
            es.ml.infer_trained_model(model_id="my-e5", docs=[{"text_field": "x"}])
        assert refused.value.body["error"]["reason"] == "Trained model deployment [my-e5] is not allocated to any nodes"


def test_ml_info_limits_are_whole_megabytes() -> None:
    with Simulator(ml_nodes={"a": 4, "b": 2}, seed=3) as simulator:
        limits = simulator.client().ml.info().body["limits"]
        ml_memory = int(16 * 2**30 * 0.3)
        assert limits["effective_max_model_memory_limit"] == f"{(ml_memory - 30 * 2**20) // 2**20}mb"
        assert limits["total_ml_memory"] == f"{2 * ml_memory // 2**20}mb"


def test_repeated_inputs_are_inference_cache_hits_when_the_deployment_has_a_cache() -> None:
    with Simulator(load_seconds=0.02, seed=3) as simulator:
        es = simulator.client(max_retries=0)
        es.ml.start_trained_model_deployment(model_id="my-e5", wait_for="started")
        es.ml.start_trained_model_deployment(
            model_id="my-e5", deployment_id="nocache", cache_size="0b", wait_for="started"
        )
        for dep in "my-e5", "nocache":
            es.ml.infer_trained_model(model_id=dep, docs=[{"text_field": "a"}, {"text_field": "b"}])
            es.ml.infer_trained_model(model_id=dep, docs=[{"text_field": "a"}, {"text_field": "a"}])
        time.sleep(0.1)
        [node] = stats_of(es, "my-e5")["nodes"]
        assert (node["inference_cache_hit_count"], node["inference_cache_hit_count_last_minute"]) == (2, 2)
        assert node["inference_count"] == 4
        assert stats_of(es, "nocache")["nodes"][0]["inference_cache_hit_count"] == 0
        es.ml.clear_trained_model_deployment_cache(model_id="my-e5")
        es.ml.infer_trained_model(model_id="my-e5", docs=[{"text_field": "b"}])
        assert stats_of(es, "my-e5")["nodes"][0]["inference_cache_hit_count"] == 2


def test_simulator_endpoints_option_and_create_endpoint_errors() -> None:
    endpoints = [{"inference_id": "ep", "model_id": "my-e5", "num_allocations": 2}]
    with Simulator(load_seconds=0.02, seed=3, endpoints=endpoints) as simulator:
        assert simulator.cluster.target("ep") == 2
        with pytest.raises(ValueError, match="task_type must be one of"):
            simulator.create_endpoint("x", "my-e5", task_type="completion")
        with pytest.raises(Exception, match=r"\[num_threads\] must be a power of 2"):
            simulator.create_endpoint("x", "my-e5", num_threads=3)
        attached = simulator.create_endpoint("att", deployment_id="ep")
        assert attached["service_settings"]["deployment_id"] == "ep"
        assert simulator.cluster.inference_endpoints["att"].ml_deployment_id == "ep"
