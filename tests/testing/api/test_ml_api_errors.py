"""The errors of the ML endpoints with Elasticsearch's statuses, types and messages, through the real client.

The messages come from elastic/elasticsearch, mainly
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/action/TransportStartTrainedModelDeploymentAction.java
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/assignment/TrainedModelAssignmentClusterService.java
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/action/StartTrainedModelDeploymentAction.java
"""

from __future__ import annotations

import threading
from typing import Any

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from tests.testing.conftest import EsTarget
from tests.testing.ml_helpers import MODEL, api_error, cleanup, raw, wait_for_pending

START = f"/_ml/trained_models/{MODEL}/deployment/_start"


@pytest.fixture
def es(es_target: EsTarget) -> elasticsearch.Elasticsearch:
    return es_target.client(request_timeout=30, max_retries=0)


def err_of(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(elasticsearch.ApiError) as excinfo:
        call(*args, **kwargs)
    return api_error(excinfo)


def test_unknown_model_on_start_get_stats(es: elasticsearch.Elasticsearch) -> None:
    expected = (404, "resource_not_found_exception", "No known trained model with model_id [nope]")
    assert err_of(es.ml.start_trained_model_deployment, model_id="nope") == expected
    assert err_of(es.ml.get_trained_models, model_id="nope") == expected
    assert err_of(es.ml.get_trained_models_stats, model_id="nope") == expected
    assert es.ml.get_trained_models_stats(model_id="nope*")["count"] == 0
    assert err_of(es.ml.get_trained_models_stats, model_id="nope*", allow_no_match=False)[0] == 404


def test_infer_unknown_model(es: elasticsearch.Elasticsearch) -> None:
    assert err_of(es.ml.infer_trained_model, model_id="nope", docs=[{"text_field": "a"}]) == (
        404,
        "resource_not_found_exception",
        "Could not find trained model [nope]",
    )


def test_update_and_clear_cache_of_undeployed(es: elasticsearch.Elasticsearch) -> None:
    expected = (404, "resource_not_found_exception", f"No known model deployment with id [{MODEL}]")
    assert err_of(es.ml.update_trained_model_deployment, model_id=MODEL, number_of_allocations=1) == expected
    assert err_of(es.ml.clear_trained_model_deployment_cache, model_id=MODEL) == expected
    assert err_of(es.ml.stop_trained_model_deployment, model_id=MODEL, allow_no_match=False) == expected


def test_number_of_allocations_not_positive(es: elasticsearch.Elasticsearch) -> None:
    expected = (
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: [number_of_allocations] must be a positive integer;",
    )
    assert err_of(es.ml.start_trained_model_deployment, model_id=MODEL, number_of_allocations=0) == expected
    with cleanup(es, "v"):
        es.ml.start_trained_model_deployment(model_id=MODEL, deployment_id="v", wait_for="started")
        assert err_of(es.ml.update_trained_model_deployment, model_id="v", number_of_allocations=0) == expected
        path = "/_ml/trained_models/v/deployment/_update"
        assert err_of(raw, es, "POST", path, params={"number_of_allocations": "abc"}) == (
            400,
            "illegal_argument_exception",
            "Failed to parse int parameter [number_of_allocations] with value [abc]",
        )
        status, type_, reason = err_of(raw, es, "POST", path, body={"number_of_allocations": "abc"})
        assert (status, type_) == (400, "x_content_parse_exception")
        assert reason.endswith(
            "[cluster:admin/xpack/ml/trained_models/deployment/update] failed to parse field [number_of_allocations]"
        )
        status, type_, reason = err_of(raw, es, "POST", path, body={"model_id": "a", "number_of_allocations": 1})
        assert (status, reason) == (
            400,
            "Inconsistent model_id; 'a' specified in the body differs from 'v' specified as a URL argument",
        )
        assert err_of(es.ml.update_trained_model_deployment, model_id="v") == (
            400,
            "parse_exception",
            "request body is required",
        )


def test_adaptive_and_number_together(es: elasticsearch.Elasticsearch) -> None:
    message = "Validation Failed: 1: [number_of_allocations] cannot be set if adaptive allocations is enabled;"
    status, type_, reason = err_of(
        raw, es, "POST", START, params={"number_of_allocations": 2}, body={"adaptive_allocations": {"enabled": True}}
    )
    assert (status, type_, reason) == (400, "action_request_validation_exception", message)
    with cleanup(es, "ad"):
        es.ml.start_trained_model_deployment(
            model_id=MODEL, deployment_id="ad", wait_for="started", adaptive_allocations={"enabled": True}
        )
        assert err_of(es.ml.update_trained_model_deployment, model_id="ad", number_of_allocations=2) == (
            400,
            "validation_exception",
            message,
        )
        assert err_of(
            es.ml.update_trained_model_deployment,
            model_id="ad",
            adaptive_allocations={"enabled": True, "min_number_of_allocations": 3, "max_number_of_allocations": 2},
        ) == (
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: [min_number_of_allocations] must not be larger than [max_number_of_allocations];",
        )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"threads_per_allocation": 3},
            "Validation Failed: 1: [threads_per_allocation] must be a power of 2 less than or equal to 32;",
        ),
        (
            {"threads_per_allocation": 0},
            "Validation Failed: 1: [threads_per_allocation] must be a positive integer;"
            "2: [threads_per_allocation] must be a power of 2 less than or equal to 32;",
        ),
        ({"queue_capacity": 0}, "Validation Failed: 1: [queue_capacity] must be a positive integer;"),
        ({"queue_capacity": 100001}, "Validation Failed: 1: [queue_capacity] must be less than 100000;"),
        ({"timeout": "0s"}, "Validation Failed: 1: [timeout] must be positive;"),
        (
            {"priority": "low", "number_of_allocations": 2},
            "Validation Failed: 1: [number_of_allocations] must be 1 when [priority] is low;",
        ),
        (
            {"priority": "low", "threads_per_allocation": 2},
            "Validation Failed: 1: [threads_per_allocation] must be 1 when [priority] is low;",
        ),
    ],
)
def test_start_validation(es: elasticsearch.Elasticsearch, params: dict[str, Any], message: str) -> None:
    status, type_, reason = err_of(es.ml.start_trained_model_deployment, model_id=MODEL, **params)
    assert (status, type_, reason) == (400, "action_request_validation_exception", message)


def test_invalid_enum_values(es: elasticsearch.Elasticsearch) -> None:
    prefix = "No enum constant org.elasticsearch.xpack.core.ml.inference.assignment."
    assert err_of(es.ml.start_trained_model_deployment, model_id=MODEL, wait_for="foo") == (
        400,
        "illegal_argument_exception",
        prefix + "AllocationStatus.State.FOO",
    )
    assert err_of(es.ml.start_trained_model_deployment, model_id=MODEL, priority="high")[2] == prefix + "Priority.HIGH"
    assert err_of(es.ml.start_trained_model_deployment, model_id=MODEL, cache_size="12x") == (
        400,
        "parse_exception",
        "failed to parse setting [cache_size] with value [12x] as a size in bytes: unit is missing or unrecognized",
    )


def test_start_conflicts(es: elasticsearch.Elasticsearch) -> None:
    with cleanup(es, "dup"):
        es.ml.start_trained_model_deployment(model_id=MODEL, deployment_id="dup", wait_for="starting")
        assert err_of(es.ml.start_trained_model_deployment, model_id=MODEL, deployment_id="dup") == (
            400,
            "status_exception",
            "Could not start model deployment because an existing deployment with the same id [dup] exist",
        )
    status, _, reason = err_of(es.ml.start_trained_model_deployment, model_id=MODEL, deployment_id="lang_ident_model_1")
    assert status == 400 and reason.startswith("Deployment id [lang_ident_model_1] is the same as an another model")
    assert err_of(es.ml.start_trained_model_deployment, model_id="lang_ident_model_1") == (
        400,
        "status_exception",
        "model [lang_ident_model_1] of type [lang_ident] cannot be deployed. Only PyTorch models can be deployed",
    )


def test_start_capacity_429(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    with pytest.raises(elasticsearch.ApiError) as err:
        es.ml.start_trained_model_deployment(model_id=MODEL, threads_per_allocation=8)
    assert api_error(err) == (
        429,
        "status_exception",
        "Could not start deployment because no ML nodes with sufficient capacity were found",
    )
    assert err.value.body["error"]["caused_by"]["type"] == "illegal_state_exception"
    assert err_of(es.ml.start_trained_model_deployment, model_id=MODEL, number_of_allocations=9)[2] == (
        "Could not start deployment because there are not enough resources to provide all requested allocations"
    )


def test_infer_409_429_408(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    assert err_of(es.ml.infer_trained_model, model_id=MODEL, docs=[{"text_field": "a"}])[:2] == (
        409,
        "status_exception",
    )
    es.ml.start_trained_model_deployment(model_id=MODEL, queue_capacity=2, wait_for="started")
    simulator.cluster.set_infer_seconds_per_doc(0.5)  # the busy batch keeps the queue full for a second
    busy = threading.Thread(target=simulator.cluster.infer, args=(MODEL, [{"text_field": "x"}] * 3))
    busy.start()
    try:
        wait_for_pending(simulator.cluster, MODEL, 2)  # one document runs, two wait: the queue (capacity 2) is full
        assert err_of(es.ml.infer_trained_model, model_id=MODEL, docs=[{"text_field": "b"}]) == (
            429,
            "status_exception",
            "inference process queue is full. Unable to execute command",
        )
    finally:
        busy.join()
    status, _, reason = err_of(
        es.ml.infer_trained_model, model_id=MODEL, docs=[{"text_field": "c"}] * 3, timeout="50ms"
    )
    assert (status, reason) == (408, "timeout [50ms] waiting for inference result")


def test_deprecated_infer_endpoint(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    es.ml.start_trained_model_deployment(model_id=MODEL, wait_for="started")
    path = f"/_ml/trained_models/{MODEL}/deployment/_infer"
    assert "predicted_value" in raw(es, "POST", path, body={"docs": [{"text_field": "a"}]})
    assert err_of(raw, es, "POST", path, body={"docs": [{"text_field": "a"}, {"text_field": "b"}]})[2] == (
        "multiple documents are not supported"
    )
