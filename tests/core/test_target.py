"""What an id names (airflow_esml.core.target): pure decisions from GET _inference and the stats API."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_esml.core.target import (
    DEFAULT_ENDPOINTS,
    Endpoint,
    ServerInfo,
    Target,
    inference_update_body,
    other_semantics,
    ownership_conflict,
    parse_endpoint,
    parse_version,
    resolve_target,
    warm_up_body,
)
from airflow_esml.exceptions import InvalidParameterError

V8_13 = ServerInfo((8, 13, 4))
V8_16 = ServerInfo((8, 16, 6))
V8_17 = ServerInfo((8, 17, 0))
V9_2 = ServerInfo((9, 2, 0))
V9_5 = ServerInfo((9, 5, 1))
SERVERLESS = ServerInfo((8, 11, 0), serverless=True)


def endpoint_body(inference_id: str, service: str = "elasticsearch", **settings: Any) -> dict[str, Any]:
    return {
        "endpoints": [
            {
                "inference_id": inference_id,
                "task_type": "sparse_embedding",
                "service": service,
                "service_settings": {"num_threads": 1, "model_id": ".elser_model_2", **settings},
            }
        ]
    }


# -- reading GET / and GET _inference ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [("9.2.0", (9, 2, 0)), ("8.19.3-SNAPSHOT", (8, 19, 3)), ("9.1", (9, 1, 0)), ("", None), ("serverless", None)],
)
def test_parse_version(number: str, expected: tuple[int, int, int] | None) -> None:
    assert parse_version(number) == expected


def test_server_info_from_info_reads_the_flavour() -> None:
    assert ServerInfo.from_info({"version": {"number": "9.3.1"}}) == ServerInfo((9, 3, 1), False)
    serverless = ServerInfo.from_info({"version": {"number": "8.11.0", "build_flavor": "serverless"}})
    assert serverless.serverless and serverless.has_inference_update and serverless.exclusive_update


@pytest.mark.parametrize(
    ("server", "update", "exclusive"),
    [(V8_13, False, False), (V8_16, False, False), (V8_17, True, False), (V9_2, True, False), (V9_5, True, True)],
)
def test_which_versions_have_the_inference_update_api(server: ServerInfo, update: bool, exclusive: bool) -> None:
    assert server.has_inference_update is update
    assert server.exclusive_update is exclusive


def test_an_unknown_version_has_no_inference_update_api() -> None:
    assert not ServerInfo(None).has_inference_update


def test_parse_endpoint_reads_both_answer_shapes() -> None:
    new = parse_endpoint(endpoint_body("e1", deployment_id="d1"), "e1")
    assert new == Endpoint("e1", "sparse_embedding", "elasticsearch", "d1", ".elser_model_2")
    old = parse_endpoint({"models": [{"model_id": "e1", "task_type": "text_embedding", "service": "elser"}]}, "e1")
    assert old == Endpoint("e1", "text_embedding", "elser")
    assert old.in_cluster and old.ml_deployment_id == "e1"


def test_parse_endpoint_matches_the_exact_id_only() -> None:
    # GET _inference/rerank lists the endpoints of the task type rerank: none of them is "rerank"
    assert parse_endpoint(endpoint_body("my-reranker"), "rerank") is None
    assert parse_endpoint({}, "x") is None


# -- resolve_target ------------------------------------------------------------------------------------------


def test_no_endpoint_is_a_trained_model_deployment() -> None:
    target = resolve_target("my-e5", None, V9_5)
    assert target == Target("my-e5", "trained_model_deployment", "my-e5")
    assert target.to_xcom() == {"managed_by": "trained_models", "inference_id": None, "task_type": None}
    assert not target.is_endpoint


@pytest.mark.parametrize(("server", "managed_by"), [(V8_13, "trained_models"), (V8_17, "inference"),
                                                     (V9_5, "inference"), (SERVERLESS, "inference")])  # fmt: skip
def test_an_endpoint_created_deployment_is_scaled_through_the_inference_api_where_it_exists(
    server: ServerInfo, managed_by: str
) -> None:
    endpoint = parse_endpoint(endpoint_body("elser-1"), "elser-1")
    target = resolve_target("elser-1", endpoint, server)
    assert target.kind == "endpoint_deployment"
    assert target.deployment_id == "elser-1"
    assert target.to_xcom() == {"managed_by": managed_by, "inference_id": "elser-1", "task_type": "sparse_embedding"}
    assert target.endpoint_id == "elser-1" and target.deployed


def test_an_endpoint_attached_to_a_trained_model_deployment_reads_and_scales_that_deployment() -> None:
    endpoint = parse_endpoint(endpoint_body("e", deployment_id="d"), "e")
    target = resolve_target("e", endpoint, V9_5, owner=None)
    assert (target.kind, target.deployment_id, target.managed_by) == ("attached_endpoint", "d", "trained_models")
    assert target.inference_id == "e" and target.endpoint_id == "e"


def test_an_endpoint_attached_to_another_endpoints_deployment_is_scaled_through_that_endpoint() -> None:
    endpoint = parse_endpoint(endpoint_body("e2", deployment_id="e1"), "e2")
    owner = Endpoint("e1", "text_embedding", "elasticsearch")
    target = resolve_target("e2", endpoint, V9_5, owner=owner)
    assert (target.deployment_id, target.managed_by, target.inference_id, target.task_type) == (
        "e1",
        "inference",
        "e1",
        "text_embedding",
    )
    assert target.endpoint_id == "e2" and target.endpoint_task_type == "sparse_embedding"
    # before the inference update API, the ML API scales it
    assert resolve_target("e2", endpoint, V8_16, owner=owner).managed_by == "trained_models"


def test_an_owner_that_is_itself_attached_does_not_own_the_deployment() -> None:
    endpoint = parse_endpoint(endpoint_body("e2", deployment_id="d"), "e2")
    owner = Endpoint("d", "sparse_embedding", "elasticsearch", deployment_id="other")
    assert resolve_target("e2", endpoint, V9_5, owner=owner).managed_by == "trained_models"


def test_a_default_endpoint_not_yet_deployed() -> None:
    endpoint = parse_endpoint(endpoint_body(".elser-2-elasticsearch"), ".elser-2-elasticsearch")
    target = resolve_target(".elser-2-elasticsearch", endpoint, V9_5, deployed=False)
    assert target.kind == "default_endpoint" and target.lazily_deployed
    assert "not deployed yet" in target.describe()
    deployed = resolve_target(".elser-2-elasticsearch", endpoint, V9_5, deployed=True)
    assert deployed.kind == "endpoint_deployment" and deployed.deployed and not deployed.lazily_deployed


def test_only_default_endpoints_are_deployed_lazily() -> None:
    endpoint = parse_endpoint(endpoint_body("custom"), "custom")
    assert resolve_target("custom", endpoint, V9_5, deployed=False).deployed


def test_an_endpoint_of_an_external_service_is_refused_by_name() -> None:
    endpoint = parse_endpoint(endpoint_body("openai-1", service="openai"), "openai-1")
    with pytest.raises(InvalidParameterError, match=r"deployment_id='openai-1'.*'openai' service"):
        resolve_target("openai-1", endpoint, V9_5)


def test_target_round_trips_and_describes_itself() -> None:
    endpoint = parse_endpoint(endpoint_body("e2", deployment_id="e1"), "e2")
    target = resolve_target("e2", endpoint, V9_5, owner=Endpoint("e1", "sparse_embedding", "elasticsearch"))
    assert Target.from_dict(target.to_dict()) == target
    assert target.describe() == (
        "inference endpoint e2 (sparse_embedding) on deployment e1, scaled through the inference API of endpoint e1"
    )
    assert resolve_target("d", None, V9_5).describe() == "trained-model deployment d"


def test_default_endpoints_have_their_task_types() -> None:
    assert DEFAULT_ENDPOINTS[".rerank-v1-elasticsearch"] == "rerank"
    assert DEFAULT_ENDPOINTS[".multilingual-e5-small-elasticsearch"] == "text_embedding"


# -- the inference _update body ------------------------------------------------------------------------------


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_count_becomes_num_allocations(exclusive: bool) -> None:
    assert inference_update_body({"number_of_allocations": 4}, exclusive=exclusive) == {
        "service_settings": {"num_allocations": 4}
    }


def test_adaptive_settings_go_into_service_settings_without_unset_bounds() -> None:
    adaptive = {"enabled": True, "min_number_of_allocations": 2, "max_number_of_allocations": None}
    body = {"adaptive_allocations": adaptive}
    assert inference_update_body(body, exclusive=True) == {
        "service_settings": {"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 2}}
    }


def test_a_count_that_switches_adaptive_off_depends_on_the_semantics() -> None:
    body = {"number_of_allocations": 3, "adaptive_allocations": {"enabled": False}}
    assert inference_update_body(body, exclusive=False) == {
        "service_settings": {"num_allocations": 3, "adaptive_allocations": {"enabled": False}}
    }
    assert inference_update_body(body, exclusive=True) == {"service_settings": {"num_allocations": 3}}


def test_an_empty_body_is_a_bug() -> None:
    with pytest.raises(ValueError, match="nothing to update"):
        inference_update_body({}, exclusive=True)


def test_other_semantics_reads_the_two_refusals() -> None:
    merged = "Validation Failed: 1: [number_of_allocations] cannot be set if adaptive allocations is enabled;"
    exclusive = "[num_allocations] cannot be set if [adaptive_allocations] is set"
    assert other_semantics(merged, exclusive=True) is False
    assert other_semantics(exclusive, exclusive=False) is True
    assert other_semantics(merged, exclusive=False) is None
    assert other_semantics("[num_threads] cannot be updated", exclusive=True) is None


# -- ownership 409s ------------------------------------------------------------------------------------------


def test_created_by_an_endpoint() -> None:
    reason = (
        "Cannot update deployment [e1] as it was created by inference endpoint [e1]. This model deployment must be "
        "updated through the inference API."
    )
    conflict = ownership_conflict(reason)
    assert conflict is not None and (conflict.owner, conflict.owner_id) == ("inference", "e1")
    message = conflict.message("update of deployment 'e1'", "e1", "e1")
    assert "inference API (PUT _inference/<task_type>/e1/_update)" in message
    assert "deployment_id='e1'" in message


def test_attached_to_a_trained_model_deployment() -> None:
    reason = (
        "Cannot update inference endpoint [e] using model deployment [d]. The model deployment must be updated "
        "through the trained models API."
    )
    conflict = ownership_conflict(reason)
    assert conflict is not None and conflict.owner == "trained_models"
    message = conflict.message("update", "e", "d")
    assert "trained models API (POST _ml/trained_models/d/deployment/_update)" in message
    assert "deployment_id='d'" in message


def test_attached_to_another_endpoints_deployment() -> None:
    reason = (
        "Cannot update inference endpoint [e2] for model deployment [e1] as it was created by another inference "
        "endpoint. The model can only be updated using inference endpoint id [e1]."
    )
    conflict = ownership_conflict(reason)
    assert conflict is not None and (conflict.owner, conflict.owner_id) == ("other_endpoint", "e1")
    assert "inference API of endpoint e1" in conflict.message("update", "e2", "e1")


def test_other_409s_are_not_ownership_conflicts() -> None:
    assert ownership_conflict("Cannot update deployment [d] as it is not in [started] state") is None


# -- deploying a default endpoint ----------------------------------------------------------------------------


def test_warm_up_body() -> None:
    assert warm_up_body("sparse_embedding") == {"input": ["warm up"]}
    assert warm_up_body("rerank") == {"query": "warm up", "input": ["warm up"]}
