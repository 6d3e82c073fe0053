"""Inference endpoints of the ``elasticsearch`` service (and its deprecated ``elser`` alias) as data: the
endpoint record, the default endpoints each version has, the built-in models they use, the version gates
and the ownership rules with Elasticsearch's messages.

The operations (create, get, update, delete, infer) are in
:mod:`airflow_esml.testing.cluster.endpoint_ops`. Sources (elastic/elasticsearch):
x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/services/elasticsearch/ElasticsearchInternalService.java,
ElasticsearchInternalServiceSettings.java, ElserInternalServiceSettings.java,
MultilingualE5SmallInternalServiceSettings.java (same folder), and
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/action/TransportUpdateTrainedModelDeploymentAction.java
(PR #130940), TransportStopTrainedModelDeploymentAction.java (PR #129325).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_esml.testing.cluster.adaptive import AdaptiveSettings
from airflow_esml.testing.protocol import EsError, EsVersion

TASK_TYPES = ("sparse_embedding", "text_embedding", "rerank")
SERVICES = ("elasticsearch", "elser")
ELSER_DEFAULT = ".elser-2-elasticsearch"
E5_DEFAULT = ".multilingual-e5-small-elasticsearch"
RERANK_DEFAULT = ".rerank-v1-elasticsearch"
#: the platform variant of the built-in models: the simulated ML nodes are linux-x86_64
PLATFORM_SUFFIX = "_linux-x86_64"
#: built-in models Elasticsearch downloads on first use, and their task type
BUILTIN_MODELS = {
    ".elser_model_2": "sparse_embedding",
    ".elser_model_2" + PLATFORM_SUFFIX: "sparse_embedding",
    ".multilingual-e5-small": "text_embedding",
    ".multilingual-e5-small" + PLATFORM_SUFFIX: "text_embedding",
    ".rerank-v1": "rerank",
}
DEFAULT_CHUNKING = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
ELSER_DEPRECATION = (
    "The [elser] service is deprecated and will be removed in a future release. Use the [elasticsearch] service "
    "instead, with [model_id] set to [{model}] in the [service_settings]"
)


@dataclass
class Endpoint:
    """One inference endpoint.

    :param inference_id: the endpoint id.
    :param task_type: ``sparse_embedding``, ``text_embedding`` or ``rerank``.
    :param service: ``elasticsearch`` or ``elser``.
    :param model_id: the trained model.
    :param num_threads: ``service_settings.num_threads``.
    :param num_allocations: the stored ``num_allocations`` (``None`` when unset).
    :param adaptive: the stored ``adaptive_allocations``.
    :param deployment_id: set when the endpoint was attached to an existing deployment.
    :param task_settings: the stored ``task_settings``.
    :param default: one of the default endpoints (never created, never deleted).
    """

    inference_id: str
    task_type: str
    service: str
    model_id: str
    num_threads: int = 1
    num_allocations: int | None = None
    adaptive: AdaptiveSettings | None = None
    deployment_id: str | None = None
    task_settings: dict[str, Any] = field(default_factory=dict)
    default: bool = False

    @property
    def ml_deployment_id(self) -> str:
        """The deployment inference goes to (``mlNodeDeploymentId``): the attached one, else the inference id."""
        return self.deployment_id or self.inference_id

    @property
    def owns_deployment(self) -> bool:
        """Whether the endpoint created (or, for a default endpoint, lazily creates) its deployment."""
        return self.deployment_id is None


def defaults_available(version: EsVersion) -> bool:
    """ELSER and E5 default endpoints: 8.17.0 (PR #116931)."""
    return version.at_least("8.17")


def default_endpoints(version: EsVersion) -> list[Endpoint]:
    """The default endpoints of ``version`` (``.rerank-v1-elasticsearch`` from 9.0, PR #117939)."""
    if not defaults_available(version):
        return []
    adaptive = AdaptiveSettings(enabled=True, min_number_of_allocations=0, max_number_of_allocations=32)
    found = [
        Endpoint(ELSER_DEFAULT, "sparse_embedding", "elasticsearch", ".elser_model_2" + PLATFORM_SUFFIX),
        Endpoint(E5_DEFAULT, "text_embedding", "elasticsearch", ".multilingual-e5-small" + PLATFORM_SUFFIX),
    ]
    if version.major >= 9:
        found.append(
            Endpoint(RERANK_DEFAULT, "rerank", "elasticsearch", ".rerank-v1", task_settings={"return_documents": True})
        )
    for endpoint in found:
        endpoint.adaptive, endpoint.default = adaptive, True
    return found


def update_api_available(version: EsVersion) -> bool:
    """``PUT _inference/.../_update``: 8.17.0 (spec ``@availability stack since=8.17.0``, PR #114457)."""
    return version.at_least("8.17")


def ownership_409s(version: EsVersion) -> bool:
    """Both directions of the ownership rules: 9.2.0 (PR #130940, no backport found)."""
    return version.at_least("9.2")


def stop_refusals(version: EsVersion) -> bool:
    """ML stop refused for endpoint deployments: 8.19.0 and 9.1.0 (PR #129325 and its backports).

    The 8.18.x and 9.0.x patch releases that also got it are not known, so 8.18 and 9.0 never refuse.
    """
    return (version.at_least("8.19") and version.major == 8) or version.at_least("9.1")


def created_by(endpoints: Iterable[Endpoint], deployment_id: str) -> Endpoint | None:
    """The endpoint that created the deployment ``deployment_id`` (its inference id equals the deployment id)."""
    return next((e for e in endpoints if e.owns_deployment and e.inference_id == deployment_id), None)


def used_by(endpoints: Iterable[Endpoint], deployment_id: str) -> list[Endpoint]:
    """Endpoints attached to ``deployment_id`` without having created it."""
    return sorted((e for e in endpoints if e.deployment_id == deployment_id), key=lambda e: e.inference_id)


def ml_update_refused(endpoint: Endpoint, deployment_id: str) -> EsError:
    return EsError(
        409,
        "status_exception",
        f"Cannot update deployment [{deployment_id}] as it was created by inference endpoint "
        f"[{endpoint.inference_id}]. This model deployment must be updated through the inference API.",
    )


def update_attached_refused(inference_id: str, deployment_id: str) -> EsError:
    return EsError(
        409,
        "status_exception",
        f"Cannot update inference endpoint [{inference_id}] using model deployment [{deployment_id}]. "
        "The model deployment must be updated through the trained models API.",
    )


def update_foreign_refused(inference_id: str, owner_id: str) -> EsError:
    return EsError(
        409,
        "status_exception",
        f"Cannot update inference endpoint [{inference_id}] for model deployment [{owner_id}] as it was created by "
        f"another inference endpoint. The model can only be updated using inference endpoint id [{owner_id}].",
    )


def stop_refused(deployment_id: str, endpoint: Endpoint, created: bool) -> EsError:
    how = "was created by" if created else "is used by"
    return EsError(
        409,
        "status_exception",
        f"Cannot stop deployment [{deployment_id}] as it {how} inference endpoint [{endpoint.inference_id}]",
    )


def not_found(inference_id: str) -> EsError:
    return EsError(404, "resource_not_found_exception", f"Inference endpoint not found [{inference_id}]")
