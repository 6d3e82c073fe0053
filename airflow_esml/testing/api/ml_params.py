"""Request parameters of start / update / stop: where each version reads them (query vs body) and how
it parses them, with Elasticsearch's parse errors. The parsed values are validated by
:mod:`airflow_esml.testing.cluster.params`.

Sources (elastic/elasticsearch):
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/rest/inference/RestStartTrainedModelDeploymentAction.java
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/rest/inference/RestUpdateTrainedModelDeploymentAction.java
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/action/StopTrainedModelDeploymentAction.java
"""

from __future__ import annotations

from typing import Any

from airflow_esml.testing.api.request_values import (
    body_bool,
    body_int,
    body_location,
    body_parse_error,
    body_str,
    query_bool,
    query_int,
    unrecognized_params,
)
from airflow_esml.testing.cluster.adaptive import from_fields
from airflow_esml.testing.cluster.params import StartParams, UpdateParams
from airflow_esml.testing.cluster.values import bad_request, parse_bytes, parse_time
from airflow_esml.testing.protocol import EsError, EsVersion, SimRequest

START_ACTION = "cluster:admin/xpack/ml/trained_models/deployment/start"
UPDATE_ACTION = "cluster:admin/xpack/ml/trained_models/deployment/update"
STOP_ACTION = "cluster:admin/xpack/ml/trained_models/deployment/stop"
SETTINGS_PARSER = "adaptive_allocation_settings"
_ADAPTIVE_FIELDS = ("enabled", "min_number_of_allocations", "max_number_of_allocations")
_START_STRINGS = ("deployment_id", "cache_size", "priority", "timeout", "wait_for")
_START_INTS = ("number_of_allocations", "threads_per_allocation", "queue_capacity")
_ENUM_PREFIX = "No enum constant org.elasticsearch.xpack.core.ml.inference.assignment."


def parse_priority(value: str) -> str:
    if value.lower() not in ("normal", "low"):
        raise bad_request("illegal_argument_exception", f"{_ENUM_PREFIX}Priority.{value.upper()}")
    return value.lower()


def parse_wait_for(value: str) -> str:
    if value.lower() not in ("starting", "started", "fully_allocated"):
        raise bad_request("illegal_argument_exception", f"{_ENUM_PREFIX}AllocationStatus.State.{value.upper()}")
    return value.lower()


def _adaptive_available(version: EsVersion) -> bool:
    return version.at_least("8.16")


def _known_body(body: Any, known: tuple[str, ...], action: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("x_content_parse_exception", f"[1:1] [{action}] Expected START_OBJECT")
    for key in body:
        if key not in known:
            raise bad_request(
                "x_content_parse_exception", f"{body_location(body, key)} [{action}] unknown field [{key}]"
            )
    return body


def _check_model_id(body: dict[str, Any], path_id: str, action: str, key: str = "model_id") -> None:
    if key in body and body_str(body, key, action) != path_id:
        raise bad_request(
            "status_exception",
            f"Inconsistent model_id; '{body[key]}' specified in the body differs from '{path_id}' "
            "specified as a URL argument",
        )


def _apply_start_value(params: StartParams, key: str, value: Any) -> None:
    if key == "deployment_id":
        params.deployment_id = value
    elif key == "cache_size":
        parse_bytes(value, "cache_size")
        params.cache_size = value
    elif key == "priority":
        params.priority = parse_priority(value)
    elif key == "timeout":
        params.timeout = parse_time(value, "timeout")
    elif key == "wait_for":
        params.wait_for = parse_wait_for(value)
    else:
        setattr(params, key, value)


def parse_start(request: SimRequest, version: EsVersion) -> StartParams:
    """Start parameters from a request: 8.0-8.14 body excludes the query; 8.15+ merges, query wins."""
    model_id = request.path_params["model_id"]
    params = StartParams(model_id=model_id)
    read_query = not request.has_body or version.at_least("8.15")
    allowed = set(_START_STRINGS + _START_INTS) if read_query else set()
    unrecognized_params(request.path, request.query, allowed)
    if request.has_body:
        known: tuple[str, ...] = ("model_id", *_START_STRINGS, *_START_INTS)
        if _adaptive_available(version):
            known = (*known, "adaptive_allocations")
        body = _known_body(request.body, known, START_ACTION)
        _check_model_id(body, model_id, START_ACTION)
        for key in body:
            if key in _START_INTS and body[key] is not None:
                _apply_start_value(params, key, body_int(body, key, START_ACTION))
            elif key in _START_STRINGS and body[key] is not None:
                try:
                    _apply_start_value(params, key, body_str(body, key, START_ACTION))
                except EsError as err:
                    raise body_parse_error(body, key, START_ACTION, err) from None
            elif key == "adaptive_allocations":
                fields = parse_settings(body, key, START_ACTION)
                params.adaptive = from_fields(fields) if fields is not None else None
    if read_query:
        for key in _START_STRINGS:
            if key in request.query:
                _apply_start_value(params, key, request.query[key])
        for key in _START_INTS:
            value = query_int(request.query, key)
            if value is not None:
                _apply_start_value(params, key, value)
    return params


def parse_update(request: SimRequest, version: EsVersion) -> UpdateParams:
    """Update parameters: 8.15+ query ``number_of_allocations`` ignores the body; else the body is required."""
    query_n = version.at_least("8.15")
    allowed = {"timeout", "master_timeout"} | ({"number_of_allocations"} if query_n else set())
    unrecognized_params(request.path, request.query, allowed)
    for key in ("timeout", "master_timeout"):
        if key in request.query:
            parse_time(request.query[key], key)
    if query_n and "number_of_allocations" in request.query:
        return UpdateParams(number_of_allocations=query_int(request.query, "number_of_allocations"))
    if not request.has_body:
        raise bad_request("parse_exception", "request body is required")
    known: tuple[str, ...] = ("number_of_allocations", "model_id", "timeout")
    if _adaptive_available(version):
        known = (*known, "adaptive_allocations")
    body = _known_body(request.body, known, UPDATE_ACTION)
    _check_model_id(body, request.path_params["model_id"], UPDATE_ACTION)
    params = UpdateParams()
    if body.get("number_of_allocations") is not None:
        params.number_of_allocations = body_int(body, "number_of_allocations", UPDATE_ACTION)
    elif not version.at_least("8.15"):
        params.number_of_allocations = 0  # a primitive int before 8.15: absent means 0
    if "timeout" in body:
        parse_time(body_str(body, "timeout", UPDATE_ACTION), "timeout")
    if "adaptive_allocations" in body:
        params.adaptive_set = True
        params.adaptive_fields = parse_settings(body, "adaptive_allocations", UPDATE_ACTION)
    return params


def parse_stop(request: SimRequest) -> tuple[bool, bool]:
    """``(allow_no_match, force)`` from the query and/or a JSON body (query wins)."""
    unrecognized_params(request.path, request.query, {"allow_no_match", "force"})
    allow, force = True, False
    if request.has_body:
        body = _known_body(request.body, ("model_id", "id", "allow_no_match", "force"), STOP_ACTION)
        for key in ("model_id", "id"):
            _check_model_id(body, request.path_params["model_id"], STOP_ACTION, key)
        if "allow_no_match" in body:
            allow = body_bool(body, "allow_no_match", STOP_ACTION)
        if "force" in body:
            force = body_bool(body, "force", STOP_ACTION)
    return query_bool(request.query, "allow_no_match", allow), query_bool(request.query, "force", force)


def parse_settings(body: dict[str, Any], key: str, action: str) -> dict[str, Any] | None:
    """The fields present in ``body[key]`` (an object or JSON null -> ``None``).

    :param body: the request body.
    :param key: ``adaptive_allocations``.
    :param action: the parser name for error messages.
    """
    value = body[key]
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(
            "x_content_parse_exception", f"{body_location(body, key)} [{action}] failed to parse field [{key}]"
        )
    present: dict[str, Any] = {}
    for name, raw in value.items():
        if name not in _ADAPTIVE_FIELDS:
            raise bad_request(
                "x_content_parse_exception", f"{body_location(value, name)} [{SETTINGS_PARSER}] unknown field [{name}]"
            )
        if raw is None:
            present[name] = None
        elif name == "enabled":
            present[name] = body_bool(value, name, SETTINGS_PARSER)
        else:
            present[name] = body_int(value, name, SETTINGS_PARSER)
    return present
