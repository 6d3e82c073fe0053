"""The ``_inference`` API of the simulator through the real client, across 8.13, 8.19, 9.1 and 9.5."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from tests.testing.ml_helpers import raw

E5 = {"service": "elasticsearch", "service_settings": {"model_id": "my-e5", "num_threads": 1, "num_allocations": 1}}
DEFAULTS_817 = [".elser-2-elasticsearch", ".multilingual-e5-small-elasticsearch"]


@contextmanager
def sim(version: str, **kwargs: Any) -> Iterator[tuple[Simulator, elasticsearch.Elasticsearch]]:
    with Simulator(es_version=version, load_seconds=0.02, seed=5, **kwargs) as simulator:
        yield simulator, simulator.client(max_retries=0)


def call(es: elasticsearch.Elasticsearch, version: str, method: str, path: str, body: Any = None) -> Any:
    """A request with the compatible media type of the simulated major (8.x refuses the 9.x client's default)."""
    return raw(es, method, path, body=body, compat=int(version.split(".")[0]))


def error(es: elasticsearch.Elasticsearch, version: str, method: str, path: str, body: Any = None) -> tuple[int, str]:
    with pytest.raises(elasticsearch.ApiError) as excinfo:
        call(es, version, method, path, body)
    err = excinfo.value
    reason = err.body["error"] if isinstance(err.body["error"], str) else err.body["error"]["reason"]
    return err.meta.status, reason


def settings(**kw: Any) -> dict[str, Any]:
    return {"service": "elasticsearch", "service_settings": {"model_id": "my-e5", **kw}}


@pytest.mark.parametrize("version", ["8.13.4", "8.19.3", "9.1.5", "9.5.1"])
def test_create_get_infer_delete_on_every_version(version: str) -> None:
    with sim(version) as (simulator, es):
        created = call(es, version, "PUT", "/_inference/text_embedding/my-ep", E5)
        assert created["service_settings"] == {"num_allocations": 1, "num_threads": 1, "model_id": "my-e5"}
        id_key = "model_id" if version == "8.13.4" else "inference_id"
        assert created[id_key] == "my-ep" and created["task_type"] == "text_embedding"
        stats = call(es, version, "GET", "/_ml/trained_models/my-ep/_stats")
        [entry] = stats["trained_model_stats"]
        assert (entry["model_id"], entry["deployment_stats"]["deployment_id"]) == ("my-e5", "my-ep")
        listed = call(es, version, "GET", "/_inference/_all")
        key = "models" if version == "8.13.4" else "endpoints"
        defaults = DEFAULTS_817 if version == "8.19.3" else [*DEFAULTS_817, ".rerank-v1-elasticsearch"]
        assert [e[id_key] for e in listed[key]] == ([] if version == "8.13.4" else defaults) + ["my-ep"]
        assert call(es, version, "GET", "/_inference/text_embedding/my-ep")[key][0][id_key] == "my-ep"
        result = call(es, version, "POST", "/_inference/text_embedding/my-ep", {"input": ["a", "b"]})
        assert [len(r["embedding"]) for r in result["text_embedding"]] == [8, 8]
        assert call(es, version, "POST", "/_inference/my-ep", {"input": "a"})["text_embedding"]
        deleted = call(es, version, "DELETE", "/_inference/my-ep")
        assert deleted["acknowledged"] is True
        assert "my-ep" not in simulator.cluster.deployments
        assert error(es, version, "GET", "/_inference/my-ep") == (404, "Inference endpoint not found [my-ep]")


def test_response_shapes_of_each_task_type_and_the_elser_warning() -> None:
    with sim("9.5.1", models=("my-e5", "my-rerank")) as (_, es):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            es.inference.put(
                task_type="sparse_embedding",
                inference_id="my-elser",
                inference_config={"service": "elser", "service_settings": {"num_threads": 1, "num_allocations": 1}},
            )
        assert [str(w.message) for w in caught] == [
            "The [elser] service is deprecated and will be removed in a future release. Use the [elasticsearch] "
            "service instead, with [model_id] set to [.elser_model_2] in the [service_settings]"
        ]
        sparse = es.inference.inference(inference_id="my-elser", input="Hello hello world").body
        assert sparse["sparse_embedding"][0]["is_truncated"] is False
        assert sorted(sparse["sparse_embedding"][0]["embedding"]) == ["hello", "world"]
        es.inference.put(
            task_type="rerank",
            inference_id="my-rr",
            inference_config=settings(model_id="my-rerank", num_threads=1, num_allocations=1),
        )
        ranked = es.inference.inference(inference_id="my-rr", query="q", input=["x", "y", "z"]).body["rerank"]
        assert sorted(r["index"] for r in ranked) == [0, 1, 2]
        assert [r["relevance_score"] for r in ranked] == sorted((r["relevance_score"] for r in ranked), reverse=True)
        with pytest.raises(elasticsearch.BadRequestError) as bad:
            es.inference.inference(inference_id="my-rr", task_type="text_embedding", input="x")
        assert bad.value.body["error"]["reason"] == (
            "Incompatible task_type, the requested type [text_embedding] does not match the model type [rerank]"
        )


def test_create_validation_messages() -> None:
    version = "9.5.1"
    with sim(version) as (_, es):
        path = "/_inference/text_embedding/bad"
        assert error(es, version, "PUT", path, settings(num_allocations=1)) == (
            400,
            "Validation Failed: 1: [service_settings] does not contain the required setting [num_threads];",
        )
        assert error(es, version, "PUT", path, settings(num_threads=3, num_allocations=1)) == (
            400,
            "Validation Failed: 1: [service_settings] Invalid value [3]. [num_threads] must be a power of 2 "
            "less than or equal to 32;",
        )
        assert error(es, version, "PUT", path, settings(num_threads=1)) == (
            400,
            "Validation Failed: 1: [service_settings] does not contain one of the required settings "
            "[num_allocations, adaptive_allocations];",
        )
        both = settings(num_threads=1, num_allocations=2, adaptive_allocations={"enabled": True})
        assert error(es, version, "PUT", path, both) == (
            400,
            "Validation Failed: 1: [number_of_allocations] cannot be set if adaptive allocations is enabled;",
        )
        assert error(es, version, "PUT", path, settings(num_threads=1, num_allocations=1, foo=1)) == (
            400,
            "Model configuration contains settings [{foo=1}] unknown to the [elasticsearch] service",
        )
        assert error(
            es, version, "PUT", "/_inference/text_embedding/my-e5", settings(num_threads=1, num_allocations=1)
        ) == (
            400,
            "Inference endpoint IDs must be unique. Requested inference endpoint ID [my-e5] matches existing "
            "trained model ID(s) but must not.",
        )
        for reserved in ".elser-2-elasticsearch", ".rerank-v1-elasticsearch":
            assert error(es, version, "PUT", f"/_inference/sparse_embedding/{reserved}", E5) == (
                400,
                f"[{reserved}] is a reserved inference Id. Cannot create a new inference endpoint with a reserved Id",
            )
        assert error(es, version, "GET", "/_inference/nope") == (404, "Inference endpoint not found [nope]")
        for task in "completion", "any":
            assert error(es, version, "PUT", f"/_inference/{task}/x", E5) == (
                400,
                f"The [elasticsearch] service does not support task type [{task}]",
            )


def test_attach_to_an_existing_deployment() -> None:
    version = "9.5.1"
    with sim(version, models=("my-e5", "other")) as (simulator, es):
        es.ml.start_trained_model_deployment(model_id="my-e5", deployment_id="dep", number_of_allocations=2)
        body = {"service": "elasticsearch", "service_settings": {"deployment_id": "dep"}}
        attached = call(es, version, "PUT", "/_inference/text_embedding/att", body)
        assert attached["service_settings"] == {
            "num_allocations": 2,
            "num_threads": 1,
            "model_id": "my-e5",
            "deployment_id": "dep",
        }
        missing = {"service": "elasticsearch", "service_settings": {"deployment_id": "nope"}}
        assert error(es, version, "PUT", "/_inference/text_embedding/x", missing) == (
            404,
            "Cannot find deployment [nope]",
        )
        mismatch = {"service": "elasticsearch", "service_settings": {"deployment_id": "dep", "model_id": "other"}}
        assert error(es, version, "PUT", "/_inference/text_embedding/y", mismatch) == (
            400,
            "Deployment [dep] uses model [my-e5] which does not match the model [other] in the request.",
        )
        assert call(es, version, "POST", "/_inference/att", {"input": "a"})["text_embedding"]
        call(es, version, "DELETE", "/_inference/att")
        assert "dep" in simulator.cluster.deployments  # an attached endpoint's delete leaves the deployment


@pytest.mark.parametrize(("version", "defaults"), [("8.13.4", []), ("8.19.3", DEFAULTS_817)])
def test_default_endpoints_by_version(version: str, defaults: list[str]) -> None:
    with sim(version) as (_, es):
        listed = call(es, version, "GET", "/_inference")
        assert [e.get("inference_id", e.get("model_id")) for e in next(iter(listed.values()))] == defaults


def test_default_endpoint_deploys_lazily_on_first_inference() -> None:
    with sim("9.5.1") as (simulator, es):
        before = es.inference.get(inference_id=".elser-2-elasticsearch").body["endpoints"][0]
        assert before["service_settings"] == {
            "num_threads": 1,
            "model_id": ".elser_model_2_linux-x86_64",
            "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 32},
        }
        with pytest.raises(elasticsearch.NotFoundError) as missing:
            es.ml.get_trained_models_stats(model_id=".elser-2-elasticsearch")
        assert missing.value.body["error"]["reason"] == (
            "No known trained model with model_id [.elser-2-elasticsearch]"
        )
        result = es.inference.inference(inference_id=".elser-2-elasticsearch", input="first call").body
        assert result["sparse_embedding"][0]["embedding"]
        [entry] = es.ml.get_trained_models_stats(model_id=".elser-2-elasticsearch").body["trained_model_stats"]
        stats = entry["deployment_stats"]
        assert (entry["model_id"], stats["deployment_id"]) == (".elser_model_2_linux-x86_64", ".elser-2-elasticsearch")
        assert (stats["threads_per_allocation"], stats["number_of_allocations"]) == (1, 1)
        assert stats["adaptive_allocations"] == {
            "enabled": True,
            "min_number_of_allocations": 0,
            "max_number_of_allocations": 32,
        }
        after = es.inference.get(inference_id=".elser-2-elasticsearch").body["endpoints"][0]
        assert after["service_settings"]["num_allocations"] == 1
        assert ".multilingual-e5-small-elasticsearch" not in simulator.cluster.deployments
        with pytest.raises(elasticsearch.BadRequestError):
            es.inference.delete(inference_id=".elser-2-elasticsearch")


def test_update_api_by_version() -> None:
    with sim("8.13.4") as (_, es):
        call(es, "8.13.4", "PUT", "/_inference/text_embedding/ep", E5)
        status, reason = error(es, "8.13.4", "PUT", "/_inference/text_embedding/ep/_update", {})
        assert (status, reason) == (
            400,
            "no handler found for uri [/_inference/text_embedding/ep/_update] and method [PUT]",
        )
    with sim("8.19.3") as (simulator, es):
        call(es, "8.19.3", "PUT", "/_inference/text_embedding/ep", E5)
        body = {"service_settings": {"num_allocations": 2, "num_threads": 4}}
        updated = call(es, "8.19.3", "PUT", "/_inference/ep/_update", body)
        assert updated["service_settings"]["num_allocations"] == 2
        assert updated["service_settings"]["num_threads"] == 1  # ignored before 9.2.2
        assert simulator.cluster.target("ep") == 2
        for path in "/_inference/ep/_update", "/_inference/text_embedding/ep/_update":
            assert error(es, "8.19.3", "POST", path, {}) == (
                405,
                f"Incorrect HTTP method for uri [{path}] and method [POST], allowed: [PUT]",
            )
        assert error(es, "8.19.3", "PUT", "/_inference/sparse_embedding/ep/_update", body) == (
            400,
            "Task type must match the task type of the existing endpoint",
        )


def test_update_api_newest_rules() -> None:
    with sim("9.5.1") as (simulator, es):
        es.inference.put(task_type="text_embedding", inference_id="ep", inference_config=E5)
        update = es.inference.update
        with pytest.raises(elasticsearch.BadRequestError) as threads:
            update(inference_id="ep", inference_config={"service_settings": {"num_threads": 2}})
        assert threads.value.body["error"]["reason"] == "[num_threads] cannot be updated"
        with pytest.raises(elasticsearch.BadRequestError) as both:
            update(
                inference_id="ep",
                inference_config={
                    "service_settings": {"num_allocations": 2, "adaptive_allocations": {"enabled": True}}
                },
            )
        assert both.value.body["error"]["reason"] == "[num_allocations] cannot be set if [adaptive_allocations] is set"
        adaptive = {"enabled": True, "min_number_of_allocations": 2, "max_number_of_allocations": 4}
        body = update(inference_id="ep", inference_config={"service_settings": {"adaptive_allocations": adaptive}}).body
        assert body["service_settings"]["adaptive_allocations"] == adaptive  # num_allocations cleared, read live
        assert body["service_settings"]["num_allocations"] == 2 == simulator.cluster.target("ep")
        fixed = update(inference_id="ep", inference_config={"service_settings": {"num_allocations": 3}}).body
        assert "adaptive_allocations" not in fixed["service_settings"] and simulator.cluster.target("ep") == 3
    with sim("9.2.2") as (_, es):
        es.inference.put(task_type="text_embedding", inference_id="ep", inference_config=E5)
        with pytest.raises(elasticsearch.BadRequestError) as threads:
            es.inference.update(inference_id="ep", inference_config={"service_settings": {"num_threads": 2}})
        assert threads.value.body["error"]["reason"] == "Validation Failed: 1: [num_threads] cannot be updated;"


def test_ownership_409s_from_9_2() -> None:
    with sim("9.5.1") as (_, es):
        es.inference.put(task_type="text_embedding", inference_id="e1", inference_config=E5)
        es.ml.start_trained_model_deployment(model_id="my-e5", deployment_id="ml-dep")
        attach = {"service": "elasticsearch", "service_settings": {"deployment_id": "ml-dep"}}
        es.inference.put(task_type="text_embedding", inference_id="att", inference_config=attach)
        es.inference.put(
            task_type="text_embedding",
            inference_id="e2",
            inference_config={"service": "elasticsearch", "service_settings": {"deployment_id": "e1"}},
        )
        es.inference.inference(inference_id=".elser-2-elasticsearch", input="deploy")
        for dep in "e1", ".elser-2-elasticsearch":
            with pytest.raises(elasticsearch.ConflictError) as refused:
                es.ml.update_trained_model_deployment(model_id=dep, number_of_allocations=2)
            assert refused.value.body["error"]["reason"] == (
                f"Cannot update deployment [{dep}] as it was created by inference endpoint [{dep}]. "
                "This model deployment must be updated through the inference API."
            )
        new = {"service_settings": {"num_allocations": 2}}
        with pytest.raises(elasticsearch.ConflictError) as attached:
            es.inference.update(inference_id="att", inference_config=new)
        assert attached.value.body["error"]["reason"] == (
            "Cannot update inference endpoint [att] using model deployment [ml-dep]. "
            "The model deployment must be updated through the trained models API."
        )
        with pytest.raises(elasticsearch.ConflictError) as foreign:
            es.inference.update(inference_id="e2", inference_config=new)
        assert foreign.value.body["error"]["reason"] == (
            "Cannot update inference endpoint [e2] for model deployment [e1] as it was created by another inference "
            "endpoint. The model can only be updated using inference endpoint id [e1]."
        )
        assert es.ml.update_trained_model_deployment(model_id="ml-dep", number_of_allocations=2)


def test_before_9_2_the_ml_update_is_accepted_and_get_reads_it_live() -> None:
    with sim("9.1.5") as (_, es):
        es.inference.put(task_type="text_embedding", inference_id="e1", inference_config=E5)
        es.ml.update_trained_model_deployment(model_id="e1", number_of_allocations=2)
        got = es.inference.get(inference_id="e1").body["endpoints"][0]
        assert got["service_settings"]["num_allocations"] == 2


@pytest.mark.parametrize(
    ("version", "refused"), [("8.18.8", False), ("8.19.3", True), ("9.0.7", False), ("9.1.5", True)]
)
def test_ml_stop_refused_for_endpoint_deployments(version: str, refused: bool) -> None:
    with sim(version) as (simulator, es):
        call(es, version, "PUT", "/_inference/text_embedding/e1", E5)
        simulator.start_deployment("my-e5", deployment_id="ml-dep")
        body = {"service": "elasticsearch", "service_settings": {"deployment_id": "ml-dep"}}
        call(es, version, "PUT", "/_inference/text_embedding/att", body)
        if not refused:
            assert call(es, version, "POST", "/_ml/trained_models/e1/deployment/_stop") == {"stopped": True}
            return
        assert error(es, version, "POST", "/_ml/trained_models/e1/deployment/_stop") == (
            409,
            "Cannot stop deployment [e1] as it was created by inference endpoint [e1]",
        )
        assert error(es, version, "POST", "/_ml/trained_models/ml-dep/deployment/_stop") == (
            409,
            "Cannot stop deployment [ml-dep] as it is used by inference endpoint [att]",
        )
        forced = call(es, version, "POST", "/_ml/trained_models/ml-dep/deployment/_stop?force=true")
        assert forced == {"stopped": True} and "ml-dep" not in simulator.cluster.deployments


def test_update_of_a_default_endpoint_needs_its_deployment() -> None:
    with sim("9.5.1") as (simulator, es):
        adaptive = {"enabled": True, "min_number_of_allocations": 2, "max_number_of_allocations": 32}
        new = {"service_settings": {"adaptive_allocations": adaptive}}
        with pytest.raises(elasticsearch.NotFoundError) as missing:
            es.inference.update(inference_id=".elser-2-elasticsearch", inference_config=new)
        assert missing.value.body["error"]["reason"] == (
            "Requested model ID [.elser-2-elasticsearch] does not have a matching trained model and thus cannot be "
            "updated."
        )
        es.inference.inference(inference_id=".elser-2-elasticsearch", input="deploy")
        body = es.inference.update(inference_id=".elser-2-elasticsearch", inference_config=new).body
        assert body["service_settings"]["adaptive_allocations"] == adaptive
        assert simulator.cluster.target(".elser-2-elasticsearch") == 2
        by_task = es.inference.get(task_type="sparse_embedding").body["endpoints"]
        assert [e["inference_id"] for e in by_task] == [".elser-2-elasticsearch"]
        assert [e.data["endpoint"] for e in simulator.audit.events("request", method="PUT")] == ["inference_update"] * 2
