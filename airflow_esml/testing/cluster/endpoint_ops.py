"""What the inference API does to the cluster: create, read, update and delete endpoints of the
``elasticsearch`` service, and run inference through them (lazily deploying a default endpoint first).

The records and the ownership rules are in :mod:`airflow_esml.testing.cluster.endpoints`; the HTTP parsing
in :mod:`airflow_esml.testing.api.inference`. Sources (elastic/elasticsearch):
x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/services/elasticsearch/ElasticsearchInternalService.java
(``parseRequestConfig``, ``validateAgainstDeployment``, ``updateModelsWithDynamicFields``),
BaseElasticsearchInternalService.java (``maybeStartDeployment``) and
x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/action/TransportUpdateInferenceModelAction.java.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_esml.testing.cluster.adaptive import AdaptiveSettings
from airflow_esml.testing.cluster.endpoints import (
    BUILTIN_MODELS,
    DEFAULT_CHUNKING,
    Endpoint,
    created_by,
    not_found,
    ownership_409s,
    update_attached_refused,
    update_foreign_refused,
)
from airflow_esml.testing.cluster.inference import fake_result
from airflow_esml.testing.cluster.params import DEFAULT_QUEUE_CAPACITY, StartParams, UpdateParams
from airflow_esml.testing.protocol import EsError

if TYPE_CHECKING:
    from airflow_esml.testing.cluster import Cluster

UNSET: Any = object()


@dataclass
class ServiceSettings:
    """Parsed ``service_settings`` of a create request (``None``: not given)."""

    model_id: str | None = None
    num_threads: int | None = None
    num_allocations: int | None = None
    adaptive: AdaptiveSettings | None = None
    deployment_id: str | None = None


@dataclass
class SettingsUpdate:
    """Parsed ``service_settings`` of an ``_update``; ``adaptive`` is ``UNSET`` when absent."""

    num_allocations: int | None = None
    adaptive: Any = UNSET
    exclusive: bool = False  # newest rule: setting one of the two clears the other


#: Elasticsearch's texts for a task type in the path that is not the endpoint's, by API
GET_MISMATCH = "Requested task type [{requested}] does not match the inference endpoint's task type [{actual}]"
UPDATE_MISMATCH = "Task type must match the task type of the existing endpoint"
INFER_MISMATCH = "Incompatible task_type, the requested type [{requested}] does not match the model type [{actual}]"


def _bad(reason: str, type_: str = "status_exception") -> EsError:
    return EsError(400, type_, reason)


class EndpointService:
    """The inference endpoints of one cluster (every method takes the cluster lock).

    :param cluster: the cluster model; endpoints live in ``cluster.inference_endpoints``.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    # -- create ----------------------------------------------------------------------------------

    def create(
        self,
        inference_id: str,
        task_type: str,
        service: str,
        settings: ServiceSettings,
        task_settings: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """``PUT _inference/{task_type}/{inference_id}``: store the endpoint and start its deployment."""
        cluster = self.cluster
        with cluster.lock:
            cluster._advance()
            if inference_id in cluster.inference_endpoints:
                raise EsError(
                    400, "resource_already_exists_exception", f"Inference endpoint [{inference_id}] already exists"
                )
            if inference_id in cluster.models or inference_id in cluster.deployments:
                raise _bad(
                    "Inference endpoint IDs must be unique. Requested inference endpoint ID "
                    f"[{inference_id}] matches existing trained model ID(s) but must not."
                )
            if settings.deployment_id is not None:
                endpoint = self._attached(inference_id, task_type, service, settings)
            else:
                endpoint = self._owned(inference_id, task_type, service, settings)
            endpoint.task_settings = dict(task_settings or {})
        if endpoint.owns_deployment:
            self._start(endpoint, timeout)
        with cluster.lock:
            cluster.inference_endpoints[inference_id] = endpoint
            cluster._record("endpoint_created", cluster._now(), inference_id=inference_id, task_type=task_type)
            return self.render(endpoint)

    def _attached(self, inference_id: str, task_type: str, service: str, settings: ServiceSettings) -> Endpoint:
        dep_id = settings.deployment_id
        assert dep_id is not None
        dep = self.cluster.deployments.get(dep_id)
        if dep is None:
            raise EsError(404, "status_exception", f"Cannot find deployment [{dep_id}]")
        if settings.model_id is not None and settings.model_id != dep.model_id:
            raise _bad(
                f"Deployment [{dep_id}] uses model [{dep.model_id}] which does not match the model "
                f"[{settings.model_id}] in the request."
            )
        return Endpoint(
            inference_id,
            task_type,
            service,
            dep.model_id,
            num_threads=dep.threads,
            num_allocations=None if dep.adaptive_enabled() else dep.target,
            adaptive=dep.adaptive,
            deployment_id=dep_id,
        )

    def _owned(self, inference_id: str, task_type: str, service: str, settings: ServiceSettings) -> Endpoint:
        model_id = settings.model_id
        assert model_id is not None
        self.ensure_model(model_id)
        if model_id not in self.cluster.models:
            raise EsError(404, "resource_not_found_exception", f"Could not find trained model [{model_id}]")
        return Endpoint(
            inference_id,
            task_type,
            service,
            model_id,
            num_threads=settings.num_threads or 1,
            num_allocations=settings.num_allocations,
            adaptive=settings.adaptive,
        )

    def ensure_model(self, model_id: str) -> None:
        """Add a built-in model on first use, as Elasticsearch downloads it (call with the lock held)."""
        if model_id in BUILTIN_MODELS and model_id not in self.cluster.models:
            self.cluster.add_model(model_id, model_bytes=438 * 2**20)

    def _start(self, endpoint: Endpoint, timeout: float) -> None:
        """Start the endpoint's deployment (``deployment_id == inference_id``) and wait until it is started."""
        adaptive = endpoint.adaptive
        params = StartParams(
            model_id=endpoint.model_id,
            deployment_id=endpoint.inference_id,
            number_of_allocations=endpoint.num_allocations,
            threads_per_allocation=endpoint.num_threads,
            queue_capacity=DEFAULT_QUEUE_CAPACITY,
            timeout=timeout,
            adaptive=adaptive,
        )
        if params.number_of_allocations is None and (adaptive is None or not adaptive.enabled):
            params.number_of_allocations = 1
        params.validate()
        dep_id = self.cluster.start(params)
        self.cluster.wait_started(dep_id, "started", timeout)

    # -- read --------------------------------------------------------------------------------------

    def get(self, inference_id: str | None, task_type: str | None) -> dict[str, Any]:
        """``GET _inference[/{task_type}][/{inference_id}|_all]``: ``{"endpoints": [...]}`` sorted by id."""
        cluster = self.cluster
        with cluster.lock:
            cluster._advance()
            if inference_id in (None, "_all", "*"):
                found = [e for e in cluster.inference_endpoints.values() if task_type in (None, e.task_type)]
            else:
                assert inference_id is not None
                found = [self.lookup(inference_id, task_type)]
            rendered = [self.render(e) for e in sorted(found, key=lambda e: e.inference_id)]
        return {"endpoints" if cluster.version.at_least("8.14") else "models": rendered}

    def lookup(self, inference_id: str, task_type: str | None, mismatch: str = GET_MISMATCH) -> Endpoint:
        """The endpoint, or 404; a task type that differs from the endpoint's is a 400.

        :param mismatch: the API's text for that 400, formatted with ``requested`` and ``actual``.
        """
        endpoint = self.cluster.inference_endpoints.get(inference_id)
        if endpoint is None:
            raise not_found(inference_id)
        if task_type is not None and task_type != endpoint.task_type:
            raise _bad(mismatch.format(requested=task_type, actual=endpoint.task_type))
        return endpoint

    def render(self, endpoint: Endpoint) -> dict[str, Any]:
        """The endpoint as GET and PUT return it; ``num_allocations`` read live from the deployment.

        8.13 names the id ``model_id`` (renamed ``inference_id`` in 8.14).
        """
        cluster = self.cluster
        settings: dict[str, Any] = {}
        dep = cluster.deployments.get(endpoint.ml_deployment_id)
        live = dep.target if dep is not None and cluster.version.at_least("8.16") else endpoint.num_allocations
        if live is not None:
            settings["num_allocations"] = live
        settings["num_threads"] = endpoint.num_threads
        settings["model_id"] = endpoint.model_id
        if endpoint.deployment_id is not None:
            settings["deployment_id"] = endpoint.deployment_id
        if endpoint.adaptive is not None:
            settings["adaptive_allocations"] = endpoint.adaptive.to_dict()
        out: dict[str, Any] = {
            "inference_id" if cluster.version.at_least("8.14") else "model_id": endpoint.inference_id,
            "task_type": endpoint.task_type,
            "service": endpoint.service,
            "service_settings": settings,
        }
        if endpoint.task_settings:
            out["task_settings"] = dict(endpoint.task_settings)
        if endpoint.task_type != "rerank" and cluster.version.at_least("8.16"):
            out["chunking_settings"] = dict(DEFAULT_CHUNKING)
        return out

    # -- update ------------------------------------------------------------------------------------

    def update(self, inference_id: str, task_type: str | None, change: SettingsUpdate) -> dict[str, Any]:
        """``PUT _inference/[{task_type}/]{inference_id}/_update`` for an ``elasticsearch`` endpoint."""
        cluster = self.cluster
        with cluster.lock:
            cluster._advance()
            endpoint = self.lookup(inference_id, task_type, UPDATE_MISMATCH)
            if ownership_409s(cluster.version) and endpoint.deployment_id is not None:
                owner = created_by(cluster.inference_endpoints.values(), endpoint.deployment_id)
                if owner is None:
                    raise update_attached_refused(inference_id, endpoint.deployment_id)
                raise update_foreign_refused(inference_id, owner.inference_id)
            merged = self._merge(endpoint, change)
            if (merged.num_allocations, merged.adaptive) == (endpoint.num_allocations, endpoint.adaptive):
                return self.render(endpoint)
            dep_id = endpoint.ml_deployment_id
            if dep_id not in cluster.deployments:
                raise EsError(
                    404,
                    "resource_not_found_exception",
                    f"Requested model ID [{dep_id}] does not have a matching trained model and thus cannot be updated.",
                )
            params = UpdateParams(number_of_allocations=merged.num_allocations)
            if merged.adaptive is not None or cluster.deployments[dep_id].adaptive is not None:
                params.adaptive_set = True
                params.adaptive_fields = merged.adaptive.to_dict() if merged.adaptive is not None else None
            cluster.update(dep_id, params, internal=True)
            cluster.inference_endpoints[inference_id] = merged
            cluster._record("endpoint_updated", cluster._now(), inference_id=inference_id)
            return self.render(merged)

    @staticmethod
    def _merge(endpoint: Endpoint, change: SettingsUpdate) -> Endpoint:
        """Old versions replace what is given; the newest clears the other of the two settings."""
        merged = replace(endpoint)
        if change.num_allocations is not None:
            merged.num_allocations = change.num_allocations
            if change.exclusive:
                merged.adaptive = None
        if change.adaptive is not UNSET:
            merged.adaptive = change.adaptive
            if change.exclusive:
                merged.num_allocations = None
        return merged

    # -- delete ------------------------------------------------------------------------------------

    def delete(self, inference_id: str, task_type: str | None) -> dict[str, Any]:
        """``DELETE _inference/[{task_type}/]{inference_id}``: a created deployment is stopped, an attached one kept."""
        cluster = self.cluster
        with cluster.lock:
            cluster._advance()
            endpoint = self.lookup(inference_id, task_type)
            if endpoint.default:
                raise _bad(
                    f"[{inference_id}] is a reserved inference endpoint. Cannot delete a reserved inference endpoint."
                )
            del cluster.inference_endpoints[inference_id]
            cluster._record("endpoint_deleted", cluster._now(), inference_id=inference_id)
        if endpoint.owns_deployment:
            cluster.stop(endpoint.inference_id, force=True, allow_no_match=True, internal=True)
        body: dict[str, Any] = {"acknowledged": True}
        if cluster.version.at_least("8.15"):
            body["pipelines"] = []
        return body

    # -- inference ---------------------------------------------------------------------------------

    def infer(
        self,
        inference_id: str,
        task_type: str | None,
        inputs: list[str],
        query: str | None,
        timeout: float,
    ) -> dict[str, Any]:
        """``POST _inference/[{task_type}/]{inference_id}``: through the deployment's allocations and queues."""
        cluster = self.cluster
        with cluster.lock:
            cluster._advance()
            endpoint = self.lookup(inference_id, task_type, INFER_MISMATCH)
            if endpoint.task_type == "rerank" and query is None:
                raise _bad("Field [query] cannot be null for task type [rerank]", "action_request_validation_exception")
            lazy = endpoint.default and endpoint.ml_deployment_id not in cluster.deployments
            if lazy:
                self.ensure_model(endpoint.model_id)
        if lazy:
            self._deploy_default(endpoint, timeout)
        field = cluster.models[endpoint.model_id].input_field
        cluster.infer(endpoint.ml_deployment_id, [{field: text} for text in inputs], timeout)
        return _results(endpoint, inputs, query)

    def _deploy_default(self, endpoint: Endpoint, timeout: float) -> None:
        """``maybeStartDeployment``: start the default endpoint's deployment, tolerating a concurrent start."""
        try:
            self._start(endpoint, timeout)
        except EsError as err:
            if "exist" not in err.reason:
                raise


def _weight(text: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{text}".encode()).digest()
    return round(int.from_bytes(digest[:2], "big") / 65535.0, 6)


def _tokens(text: str) -> dict[str, float]:
    """ELSER-like token weights: up to 16 distinct lower-cased words of the text."""
    words = sorted(set(text.lower().split()))[:16] or ["_"]
    return {word: _weight(word, text) for word in words}


def _results(endpoint: Endpoint, inputs: list[str], query: str | None) -> dict[str, Any]:
    """The response body of each task type (values derived from hashes of the input)."""
    if endpoint.task_type == "text_embedding":
        return {"text_embedding": [{"embedding": fake_result(text)["predicted_value"]} for text in inputs]}
    if endpoint.task_type == "sparse_embedding":
        return {"sparse_embedding": [{"is_truncated": False, "embedding": _tokens(text)} for text in inputs]}
    scored = sorted(
        ((i, _weight(text, query or "")) for i, text in enumerate(inputs)), key=lambda pair: (-pair[1], pair[0])
    )
    documents = bool(endpoint.task_settings.get("return_documents", True))
    ranked: list[dict[str, Any]] = []
    for index, score in scored:
        entry: dict[str, Any] = {"index": index, "relevance_score": score}
        if documents:
            entry["text"] = inputs[index]
        ranked.append(entry)
    return {"rerank": ranked}
