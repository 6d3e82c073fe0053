"""HTTP handlers of the inference API (``_inference``) for endpoints of the ``elasticsearch`` service.

Parses each request the way the simulated version does and calls
:class:`~airflow_esml.testing.cluster.endpoint_ops.EndpointService`. Sources (elastic/elasticsearch):
x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/rest/ (``RestPutInferenceModelAction``,
``RestGetInferenceModelAction``, ``RestDeleteInferenceEndpointAction``, ``RestInferenceAction``,
``RestUpdateInferenceModelAction``, which routes PUT only) and the services' settings parsers
(ElasticsearchInternalServiceSettings.java, ServiceUtils.java).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_esml.testing.api.ml_params import parse_settings
from airflow_esml.testing.api.request_values import body_int, unrecognized_params
from airflow_esml.testing.cluster.adaptive import from_fields
from airflow_esml.testing.cluster.endpoint_ops import UNSET, EndpointService, ServiceSettings, SettingsUpdate
from airflow_esml.testing.cluster.endpoints import (
    ELSER_DEPRECATION,
    SERVICES,
    TASK_TYPES,
    update_api_available,
)
from airflow_esml.testing.cluster.params import validation_error
from airflow_esml.testing.cluster.values import bad_request, parse_time
from airflow_esml.testing.protocol import EsError, EsVersion, SimRequest, SimResponse

if TYPE_CHECKING:
    from airflow_esml.testing.cluster import Cluster

_INF = "/_inference"
_CREATE_KEYS = ("service", "service_settings", "task_settings", "chunking_settings")
_RERANK_KEYS = ("long_document_strategy", "max_chunks_per_doc")
_SETTINGS = "service_settings"
_ACTION = "inference_update"
_INFER_KEYS = ("input", "query", "task_settings", "input_type", "return_documents", "top_n")


def _java_map(values: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in values.items()) + "}"


def _unknown_settings(left: dict[str, Any], service: str) -> EsError:
    """``throwIfNotEmptyMap``."""
    return bad_request(
        "status_exception",
        f"Model configuration contains settings [{_java_map(left)}] unknown to the [{service}] service",
    )


def _missing(name: str) -> str:
    return f"[{_SETTINGS}] does not contain the required setting [{name}]"


def _positive(raw: dict[str, Any], name: str, errors: list[str]) -> int | None:
    if name not in raw or raw[name] is None:
        return None
    value = body_int(raw, name, _SETTINGS)
    if value < 1:
        errors.append(f"[{_SETTINGS}] Invalid value [{value}]. [{name}] must be a positive integer")
    return value


def parse_create_settings(raw: Any, service: str, task_type: str, version: EsVersion) -> ServiceSettings:
    """``service_settings`` of a create request, with the validation messages of the service.

    :param raw: the JSON value.
    :param service: ``elasticsearch`` or ``elser``.
    :param task_type: the endpoint's task type.
    :param version: the simulated version (``adaptive_allocations`` and ``deployment_id`` from 8.16).
    """
    if not isinstance(raw, dict):
        raise validation_error([_missing(_SETTINGS)], type_="validation_exception")
    left = dict(raw)
    errors: list[str] = []
    settings = ServiceSettings()
    settings.num_threads = _positive(left, "num_threads", errors)
    settings.num_allocations = _positive(left, "num_allocations", errors)
    threads = settings.num_threads
    if threads is not None and threads > 0 and (threads > 32 or threads & (threads - 1)):
        errors.append(
            f"[{_SETTINGS}] Invalid value [{threads}]. [num_threads] must be a power of 2 less than or equal to 32"
        )
    left.pop("num_threads", None)
    left.pop("num_allocations", None)
    model = left.pop("model_id", None)
    settings.model_id = str(model) if model is not None else None
    newer = version.at_least("8.16")
    if newer and "adaptive_allocations" in left:
        fields = parse_settings(left, "adaptive_allocations", _SETTINGS)
        left.pop("adaptive_allocations")
        settings.adaptive = from_fields(fields) if fields is not None else None
        if settings.adaptive is not None:
            errors.extend(settings.adaptive.errors())
    if newer and "deployment_id" in left:
        settings.deployment_id = str(left.pop("deployment_id"))
    if task_type == "rerank":
        for key in _RERANK_KEYS:
            left.pop(key, None)
    if left:
        raise _unknown_settings(left, service)
    if settings.deployment_id is None:
        if threads is None:
            errors.append(_missing("num_threads"))
        if settings.num_allocations is None and settings.adaptive is None:
            errors.append(
                f"[{_SETTINGS}] does not contain one of the required settings [num_allocations, adaptive_allocations]"
                if newer
                else _missing("num_allocations")
            )
        if settings.model_id is None and service == "elser":
            settings.model_id = ".elser_model_2"
        elif settings.model_id is None:
            errors.append(_missing("model_id"))
    if errors:
        raise validation_error(errors, type_="validation_exception")
    return settings


def parse_update_settings(raw: Any, version: EsVersion) -> SettingsUpdate:
    """``service_settings`` of ``_update``, by version (see docs/simulator-cluster.md, inference endpoints)."""
    if raw is None:
        return SettingsUpdate()
    if not isinstance(raw, dict):
        raise bad_request("x_content_parse_exception", f"[1:2] [{_ACTION}] failed to parse field [{_SETTINGS}]")
    left = dict(raw)
    newest = version.at_least("9.4")
    change = SettingsUpdate(exclusive=newest)
    if "num_threads" in left:
        if newest:
            raise bad_request("parse_exception", "[num_threads] cannot be updated")
        if version.at_least("9.2.2"):
            raise validation_error(["[num_threads] cannot be updated"], type_="validation_exception")
        left.pop("num_threads")  # ignored up to 9.2.1 (issue #137129)
    errors: list[str] = []
    change.num_allocations = _positive(left, "num_allocations", errors)
    left.pop("num_allocations", None)
    if "adaptive_allocations" in left:
        fields = parse_settings(left, "adaptive_allocations", _SETTINGS)
        left.pop("adaptive_allocations")
        change.adaptive = from_fields(fields) if fields is not None else None
        if change.adaptive is not None:
            errors.extend(change.adaptive.errors())
    if left:
        raise _unknown_settings(left, "elasticsearch")
    if errors:
        raise validation_error(errors, type_="validation_exception")
    if newest:
        has_adaptive = change.adaptive is not UNSET
        if change.num_allocations is not None and has_adaptive:
            raise bad_request("parse_exception", "[num_allocations] cannot be set if [adaptive_allocations] is set")
        if change.num_allocations is None and not has_adaptive:
            raise bad_request(
                "parse_exception",
                f"[{_SETTINGS}] does not contain one of the required settings [num_allocations, adaptive_allocations]",
            )
    return change


def _inputs(body: Any) -> tuple[list[str], str | None]:
    if not isinstance(body, dict) or body.get("input") is None:
        raise validation_error(["Field [input] cannot be null"])
    unknown = [
        k for k in body if k not in ("input", "query", "task_settings", "input_type", "return_documents", "top_n")
    ]
    if unknown:
        raise bad_request("x_content_parse_exception", f"[1:2] [inference_request] unknown field [{unknown[0]}]")
    raw = body["input"]
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise bad_request("x_content_parse_exception", "[1:10] [inference_request] failed to parse field [input]")
    query = body.get("query")
    return inputs, str(query) if query is not None else None


def create_endpoint(
    cluster: Cluster,
    inference_id: str,
    model_id: str | None,
    *,
    task_type: str,
    num_allocations: int | None,
    num_threads: int,
    adaptive_allocations: Mapping[str, Any] | None,
    deployment_id: str | None = None,
) -> dict[str, Any]:
    """Create an ``elasticsearch`` endpoint from Python, validated as the PUT request would be."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
    raw: dict[str, Any] = {} if model_id is None else {"model_id": model_id}
    if deployment_id is not None:
        raw["deployment_id"] = deployment_id  # attach: the rest comes from the deployment
    else:
        raw["num_threads"] = num_threads
        if num_allocations is not None:
            raw["num_allocations"] = num_allocations
        if adaptive_allocations is not None:
            raw["adaptive_allocations"] = dict(adaptive_allocations)
    settings = parse_create_settings(raw, "elasticsearch", task_type, cluster.version)
    return EndpointService(cluster).create(inference_id, task_type, "elasticsearch", settings)


class InferenceApi:
    """The ``_inference`` handlers, bound to one cluster.

    :param cluster: the cluster model.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.service = EndpointService(cluster)

    def routes(self) -> list[tuple[str, str, Any, str]]:
        """``(method, template, handler, endpoint name)``; ``_update`` only where the version has it."""
        found: list[tuple[str, str, Any, str]] = [
            ("PUT", f"{_INF}/{{task_type}}/{{inference_id}}", self.put, "inference_put"),
            ("GET", _INF, self.get, "inference_get"),
            ("GET", f"{_INF}/{{inference_id}}", self.get, "inference_get"),
            ("GET", f"{_INF}/{{task_type}}/{{inference_id}}", self.get, "inference_get"),
            ("DELETE", f"{_INF}/{{inference_id}}", self.delete, "inference_delete"),
            ("DELETE", f"{_INF}/{{task_type}}/{{inference_id}}", self.delete, "inference_delete"),
            ("POST", f"{_INF}/{{inference_id}}", self.infer, "inference"),
            ("POST", f"{_INF}/{{task_type}}/{{inference_id}}", self.infer, "inference"),
        ]
        if update_api_available(self.cluster.version):
            found += [
                ("PUT", f"{_INF}/{{task_type}}/{{inference_id}}/_update", self.update, "inference_update"),
                ("PUT", f"{_INF}/{{inference_id}}/_update", self.update, "inference_update"),
            ]
        return found

    def _task_type(self, request: SimRequest) -> str | None:
        task_type = request.path_params.get("task_type")
        if task_type is not None and task_type not in (*TASK_TYPES, "completion", "chat_completion", "any"):
            raise bad_request("illegal_argument_exception", f"Unknown task_type [{task_type}]")
        return None if task_type == "any" else task_type

    def put(self, request: SimRequest) -> SimResponse:
        unrecognized_params(request.path, request.query, {"timeout"})
        timeout = parse_time(request.query.get("timeout", "30s"), "timeout")
        inference_id = request.path_params["inference_id"]
        task_type = self._task_type(request) or "any"
        body = request.body
        if not isinstance(body, dict) or "service" not in body:
            raise bad_request("status_exception", "Inference endpoint configuration is missing [service]")
        service = str(body["service"])
        if service not in SERVICES:
            raise bad_request("status_exception", f"Unknown service [{service}] for model [{inference_id}]")
        if inference_id in self.cluster.inference_endpoints and self.cluster.inference_endpoints[inference_id].default:
            raise bad_request(
                "status_exception",
                f"[{inference_id}] is a reserved inference Id. "
                "Cannot create a new inference endpoint with a reserved Id",
            )
        if task_type not in TASK_TYPES or (service == "elser" and task_type != "sparse_embedding"):
            raise bad_request("status_exception", f"The [{service}] service does not support task type [{task_type}]")
        left = {k: v for k, v in body.items() if k not in _CREATE_KEYS}
        if left:
            raise _unknown_settings(left, service)
        settings = parse_create_settings(body.get("service_settings"), service, task_type, self.cluster.version)
        task_settings = body.get("task_settings") if isinstance(body.get("task_settings"), dict) else None
        result = self.service.create(inference_id, task_type, service, settings, task_settings, timeout)
        headers = []
        if service == "elser" and self.cluster.version.at_least("8.16"):
            message = ELSER_DEPRECATION.format(model=result["service_settings"]["model_id"])
            headers.append(("Warning", f'299 Elasticsearch-{self.cluster.version}-0000000 "{message}"'))
        return SimResponse(200, result, headers)

    def get(self, request: SimRequest) -> SimResponse:
        unrecognized_params(request.path, request.query, set())
        task_type = self._task_type(request)
        inference_id = request.path_params.get("inference_id")
        if task_type is None and inference_id in TASK_TYPES:
            task_type, inference_id = inference_id, None  # GET _inference/{task_type}
        return SimResponse(200, self.service.get(inference_id, task_type))

    def delete(self, request: SimRequest) -> SimResponse:
        unrecognized_params(request.path, request.query, {"force", "dry_run"})
        body = self.service.delete(request.path_params["inference_id"], self._task_type(request))
        return SimResponse(200, body)

    def update(self, request: SimRequest) -> SimResponse:
        allowed = {"timeout"} if self.cluster.version.at_least("9.5") else set()
        unrecognized_params(request.path, request.query, allowed)
        body = request.body
        if not isinstance(body, dict):
            raise bad_request("parse_exception", "request body is required")
        for key in body:
            if key not in ("service_settings", "task_settings", "task_type"):
                raise bad_request("x_content_parse_exception", f"[1:2] [{_ACTION}] unknown field [{key}]")
        task_type = self._task_type(request)
        if "task_type" in body and task_type is not None and body["task_type"] != task_type:
            raise bad_request("status_exception", "Task type must match the task type of the existing endpoint")
        task_type = task_type or (str(body["task_type"]) if "task_type" in body else None)
        change = parse_update_settings(body.get("service_settings"), self.cluster.version)
        return SimResponse(200, self.service.update(request.path_params["inference_id"], task_type, change))

    def infer(self, request: SimRequest) -> SimResponse:
        unrecognized_params(request.path, request.query, {"timeout"})
        timeout = parse_time(request.query.get("timeout", "30s"), "timeout")
        inputs, query = _inputs(request.body)
        body = self.service.infer(request.path_params["inference_id"], self._task_type(request), inputs, query, timeout)
        return SimResponse(200, body)
