"""The hook's routing by target (hooks/ml.py): which id it reads, which API it updates through, what it deploys.

A fake client answers like Elasticsearch; the simulator's own ``_inference`` APIs are covered in
tests/operators/test_endpoints.py.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_esml.exceptions import (
    DeploymentNotFoundError,
    DeploymentOwnershipError,
    ElasticsearchRequestError,
    InvalidParameterError,
)
from airflow_esml.hooks import ml
from airflow_esml.hooks.ml import ElasticsearchMLHook, client_sends_put
from tests.hooks.test_retry import api_error


def stats_body(deployment_id: str, allocations: int = 1) -> dict[str, Any]:
    return {
        "count": 1,
        "trained_model_stats": [
            {
                "model_id": ".elser_model_2",
                "deployment_stats": {
                    "deployment_id": deployment_id,
                    "model_id": ".elser_model_2",
                    "state": "started",
                    "number_of_allocations": allocations,
                    "threads_per_allocation": 1,
                    "allocation_status": {
                        "allocation_count": allocations,
                        "target_allocation_count": allocations,
                        "state": "fully_allocated",
                    },
                    "nodes": [],
                },
            }
        ],
    }


def endpoint(inference_id: str, task_type: str = "sparse_embedding", service: str = "elasticsearch", **settings: Any):
    return {
        "endpoints": [
            {
                "inference_id": inference_id,
                "task_type": task_type,
                "service": service,
                "service_settings": {"num_threads": 1, "model_id": ".elser_model_2", **settings},
            }
        ]
    }


class FakeClient:
    """Answers GET /, GET _inference/<id>, the stats, both update APIs and inference; records every call.

    :param endpoints: the inference endpoints by id (GET _inference answers 404 for others).
    :param deployments: the deployment ids the stats API lists.
    :param inference_status: what GET _inference answers instead of the endpoints (e.g. 403, 400).
    """

    def __init__(
        self,
        *,
        version: str = "9.5.1",
        endpoints: dict[str, dict[str, Any]] | None = None,
        deployments: set[str] | None = None,
        inference_status: int | None = None,
        errors: dict[str, list[Exception]] | None = None,
        on_infer: Callable[[], None] | None = None,
    ) -> None:
        self.version = version
        self.endpoints = endpoints or {}
        self.deployments = set(deployments or ())
        self.inference_status = inference_status
        self.errors = errors or {}
        self.on_infer = on_infer
        self.calls: list[tuple[str, ...]] = []
        self.bodies: list[Any] = []
        self.ml = SimpleNamespace(get_trained_models_stats=self._stats, update_trained_model_deployment=self._ml_update)
        self.inference = SimpleNamespace(update=self._inference_update)

    def options(self, **kwargs: Any) -> FakeClient:
        return self

    def _raise(self, name: str) -> None:
        queue = self.errors.get(name)
        if queue:
            raise queue.pop(0)

    def info(self) -> Any:
        self.calls.append(("GET", "/"))
        self.bodies.append(None)
        return SimpleNamespace(body={"version": {"number": self.version}})

    def perform_request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((method, path))
        self.bodies.append(kwargs.get("body"))
        parts = path.strip("/").split("/")
        if method == "GET" and parts[0] == "_inference":
            if self.inference_status is not None:
                raise api_error(self.inference_status, "security_exception", "action [cluster:monitor/xpack/inference]")
            if parts[-1] not in self.endpoints:
                raise api_error(404, "resource_not_found_exception", f"Inference endpoint not found [{parts[-1]}]")
            return SimpleNamespace(body=self.endpoints[parts[-1]])
        if method == "PUT" and parts[-1] == "_update":
            self._raise("inference_update")
            return SimpleNamespace(body={"inference_id": parts[2]})
        if method == "POST" and parts[0] == "_inference":
            self._raise("infer")
            if self.on_infer:
                self.on_infer()
            return SimpleNamespace(body={"sparse_embedding": [{"embedding": {"warm": 1.0}}]})
        raise AssertionError(f"unexpected {method} {path}")

    def _stats(self, model_id: str, **kwargs: Any) -> Any:
        self.calls.append(("GET", f"/_ml/trained_models/{model_id}/_stats"))
        self.bodies.append(None)
        if model_id not in self.deployments:
            raise api_error(404, "resource_not_found_exception", f"No known trained model with model_id [{model_id}]")
        return SimpleNamespace(body=stats_body(model_id))

    def _ml_update(self, model_id: str, body: dict[str, Any]) -> Any:
        self.calls.append(("POST", f"/_ml/trained_models/{model_id}/deployment/_update"))
        self.bodies.append(body)
        self._raise("ml_update")
        return SimpleNamespace(body={"assignment": {"deployment_id": model_id}})

    def _inference_update(self, inference_id: str, task_type: str, inference_config: dict[str, Any]) -> Any:
        return self.perform_request("PUT", f"/_inference/{task_type}/{inference_id}/_update", body=inference_config)


def hook_with(client: FakeClient) -> ElasticsearchMLHook:
    hook = ElasticsearchMLHook()
    hook.__dict__["client"] = client
    return hook


def updates(client: FakeClient) -> list[tuple[str, ...]]:
    return [c for c in client.calls if c[1].endswith("_update")]


# -- resolution -------------------------------------------------------------------------------------------


def test_a_trained_model_deployment_costs_one_endpoint_read_once_per_hook() -> None:
    client = FakeClient(deployments={"my-e5"})
    hook = hook_with(client)
    assert hook.get_deployment("my-e5").deployment_id == "my-e5"
    hook.get_deployment("my-e5")
    assert client.calls.count(("GET", "/_inference/my-e5")) == 1
    assert ("GET", "/") not in client.calls  # the version matters only for endpoints
    assert hook.target("my-e5").to_xcom() == {"managed_by": "trained_models", "inference_id": None, "task_type": None}


@pytest.mark.parametrize("status", [400, 403, 405, 410])
def test_no_inference_api_or_no_privilege_means_a_trained_model_deployment(status: int) -> None:
    client = FakeClient(deployments={"elser-1"}, inference_status=status, endpoints={"elser-1": endpoint("elser-1")})
    target = hook_with(client).target("elser-1")
    assert target.kind == "trained_model_deployment"


def test_an_attached_endpoint_reads_the_stats_of_its_deployment() -> None:
    client = FakeClient(deployments={"d"}, endpoints={"e": endpoint("e", deployment_id="d")})
    status = hook_with(client).get_deployment("e")
    assert status.deployment_id == "d"
    assert ("GET", "/_ml/trained_models/d/_stats") in client.calls
    assert ("GET", "/_inference/d") in client.calls  # is d another endpoint's deployment?


def test_an_endpoint_of_an_external_service_is_refused_before_any_change() -> None:
    client = FakeClient(endpoints={"oai": endpoint("oai", service="openai")})
    with pytest.raises(InvalidParameterError, match="'openai' service"):
        hook_with(client).update_deployment("oai", number_of_allocations=2)
    assert not updates(client)


def test_the_cache_is_per_hook() -> None:
    client = FakeClient(deployments={"my-e5"})
    hook_with(client).target("my-e5")
    hook_with(client).target("my-e5")
    assert client.calls.count(("GET", "/_inference/my-e5")) == 2


# -- updates go the right way ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("8.13.4", ("POST", "/_ml/trained_models/elser-1/deployment/_update")),
        ("8.16.6", ("POST", "/_ml/trained_models/elser-1/deployment/_update")),
        ("8.19.3", ("PUT", "/_inference/sparse_embedding/elser-1/_update")),
        ("9.5.1", ("PUT", "/_inference/sparse_embedding/elser-1/_update")),
    ],
)
def test_an_endpoint_created_deployment_is_updated_through_the_inference_api_where_it_exists(version, expected):
    client = FakeClient(version=version, deployments={"elser-1"}, endpoints={"elser-1": endpoint("elser-1")})
    hook_with(client).update_deployment("elser-1", number_of_allocations=3)
    assert updates(client) == [expected]
    assert client.bodies[-1] == (
        {"number_of_allocations": 3} if expected[0] == "POST" else {"service_settings": {"num_allocations": 3}}
    )


def test_an_attached_endpoint_is_updated_through_the_ml_api_of_its_deployment() -> None:
    client = FakeClient(deployments={"d"}, endpoints={"e": endpoint("e", deployment_id="d")})
    hook_with(client).update_deployment("e", number_of_allocations=2)
    assert updates(client) == [("POST", "/_ml/trained_models/d/deployment/_update")]


def test_an_endpoint_on_another_endpoints_deployment_is_updated_through_that_endpoint() -> None:
    client = FakeClient(
        deployments={"e1"},
        endpoints={"e1": endpoint("e1", "text_embedding"), "e2": endpoint("e2", "text_embedding", deployment_id="e1")},
    )
    hook = hook_with(client)
    hook.update_deployment("e2", number_of_allocations=2)
    assert updates(client) == [("PUT", "/_inference/text_embedding/e1/_update")]
    expected = {"managed_by": "inference", "inference_id": "e1", "task_type": "text_embedding"}
    assert hook.target("e2").to_xcom() == expected


def test_the_update_of_old_clients_is_sent_as_put(monkeypatch) -> None:
    assert client_sends_put("8.18.0") and client_sends_put("9.5.1")
    assert not client_sends_put("8.17.2") and not client_sends_put("8.13.2")
    monkeypatch.setattr(ml, "client_sends_put", lambda: False)
    client = FakeClient(deployments={"elser-1"}, endpoints={"elser-1": endpoint("elser-1")})
    client.inference = SimpleNamespace()  # 8.13 has no inference.update
    hook_with(client).update_deployment("elser-1", number_of_allocations=3)
    assert updates(client) == [("PUT", "/_inference/sparse_embedding/elser-1/_update")]


@pytest.mark.parametrize(
    ("version", "body"),
    [
        ("9.2.0", {"service_settings": {"num_allocations": 2, "adaptive_allocations": {"enabled": False}}}),
        ("9.5.1", {"service_settings": {"num_allocations": 2}}),
    ],
)
def test_switching_adaptive_off_follows_the_version(version, body) -> None:
    client = FakeClient(version=version, deployments={"elser-1"}, endpoints={"elser-1": endpoint("elser-1")})
    hook_with(client).update_deployment("elser-1", number_of_allocations=2, adaptive_allocations={"enabled": False})
    assert client.bodies[-1] == body


def test_a_refusal_of_the_other_semantics_is_answered_by_one_resend() -> None:
    refusal = api_error(400, "validation_exception", "[num_allocations] cannot be set if [adaptive_allocations] is set")
    client = FakeClient(
        version="9.2.0",
        deployments={"elser-1"},
        endpoints={"elser-1": endpoint("elser-1")},
        errors={"inference_update": [refusal]},
    )
    hook_with(client).update_deployment("elser-1", number_of_allocations=2, adaptive_allocations={"enabled": False})
    assert len(updates(client)) == 2
    assert client.bodies[-1] == {"service_settings": {"num_allocations": 2}}


def test_other_400s_of_the_inference_update_fail_at_once() -> None:
    refusal = api_error(400, "validation_exception", "Validation Failed: 1: [num_threads] cannot be updated;")
    client = FakeClient(
        deployments={"elser-1"}, endpoints={"elser-1": endpoint("elser-1")}, errors={"inference_update": [refusal]}
    )
    with pytest.raises(ElasticsearchRequestError, match=r"num_threads\] cannot be updated"):
        hook_with(client).update_deployment("elser-1", number_of_allocations=2)
    assert len(updates(client)) == 1


# -- ownership 409s -------------------------------------------------------------------------------------------


def test_the_ml_apis_409_names_the_inference_api_and_the_id() -> None:
    conflict = api_error(
        409,
        "status_exception",
        "Cannot update deployment [elser-1] as it was created by inference endpoint [elser-1]. This model "
        "deployment must be updated through the inference API.",
    )
    # the key may not read endpoints: the id is taken for a trained-model deployment, and the ML API refuses
    client = FakeClient(deployments={"elser-1"}, inference_status=403, errors={"ml_update": [conflict]})
    with pytest.raises(DeploymentOwnershipError, match=r"inference API \(PUT _inference/<task_type>/elser-1/_update\)"):
        hook_with(client).update_deployment("elser-1", number_of_allocations=2)
    assert len(updates(client)) == 1  # not retried


def test_the_inference_apis_409_names_the_trained_models_api() -> None:
    conflict = api_error(
        409,
        "status_exception",
        "Cannot update inference endpoint [elser-1] using model deployment [elser-1]. The model deployment must be "
        "updated through the trained models API.",
    )
    client = FakeClient(
        deployments={"elser-1"}, endpoints={"elser-1": endpoint("elser-1")}, errors={"inference_update": [conflict]}
    )
    with pytest.raises(DeploymentOwnershipError, match=r"trained models API \(POST _ml/trained_models/elser-1/"):
        hook_with(client).update_deployment("elser-1", number_of_allocations=2)


def test_other_409s_keep_their_reason() -> None:
    conflict = api_error(409, "status_exception", "Cannot update deployment [d] as it is not in [started] state")
    client = FakeClient(deployments={"d"}, errors={"ml_update": [conflict]})
    with pytest.raises(ElasticsearchRequestError, match=r"not in \[started\] state") as raised:
        hook_with(client).update_deployment("d", number_of_allocations=2)
    assert not isinstance(raised.value, DeploymentOwnershipError)


# -- default endpoints ----------------------------------------------------------------------------------------

ELSER = ".elser-2-elasticsearch"


def test_a_default_endpoint_not_deployed_is_not_found_with_a_reason() -> None:
    client = FakeClient(endpoints={ELSER: endpoint(ELSER)})
    with pytest.raises(DeploymentNotFoundError, match="deploys it at its first inference call"):
        hook_with(client).get_deployment(ELSER)


def test_ensure_deployed_deploys_a_default_endpoint_with_one_inference_call(capsys) -> None:
    client = FakeClient(endpoints={ELSER: endpoint(ELSER)})
    client.on_infer = lambda: client.deployments.add(ELSER)
    hook = hook_with(client)
    target = hook.ensure_deployed(ELSER, timeout=30)
    assert target.deployed and target.kind == "endpoint_deployment"
    assert ("POST", f"/_inference/sparse_embedding/{ELSER}") in client.calls
    assert client.bodies[client.calls.index(("POST", f"/_inference/sparse_embedding/{ELSER}"))] == {
        "input": ["warm up"]
    }
    assert "deploying it with one inference call" in capsys.readouterr().out
    assert hook.get_deployment(ELSER).deployment_id == ELSER
    hook.ensure_deployed(ELSER, timeout=30)  # deployed: no second call
    assert [c for c in client.calls if c[0] == "POST"] == [("POST", f"/_inference/sparse_embedding/{ELSER}")]


def test_ensure_deployed_leaves_other_targets_alone() -> None:
    client = FakeClient(deployments={"my-e5"})
    assert hook_with(client).ensure_deployed("my-e5", timeout=5).deployed
    assert not [c for c in client.calls if c[0] == "POST"]


def test_ensure_deployed_fails_when_the_deployment_does_not_appear() -> None:
    client = FakeClient(endpoints={ELSER: endpoint(ELSER)})
    with pytest.raises(DeploymentNotFoundError, match="still lists no deployment"):
        hook_with(client).ensure_deployed(ELSER, timeout=5)


def test_a_timed_out_deploy_fails_with_elasticsearchs_reason() -> None:
    timeout = api_error(408, "status_exception", f"Timed out after [5s] waiting for trained model deployment [{ELSER}]")
    client = FakeClient(endpoints={ELSER: endpoint(ELSER)}, errors={"infer": [timeout]})
    with pytest.raises(ElasticsearchRequestError, match="Timed out after"):
        hook_with(client).ensure_deployed(ELSER, timeout=5)
