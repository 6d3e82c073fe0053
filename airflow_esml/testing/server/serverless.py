"""The Elastic Cloud Serverless flavour of the simulator: the APIs a Serverless project does not offer answer
410, and adaptive allocations cannot be turned into a fixed count.

Sources: the ``@availability serverless ... visibility=private`` markers of elastic/elasticsearch-specification
(``ml.info``, ``ml.get_memory_stats``, ``ml.clear_trained_model_deployment_cache``, ``nodes.info``,
``nodes.stats``, ``cluster.get_settings``, ``cluster.health``, ``cluster.stats``), the 410
``api_not_available_exception`` of ``RestController`` in elastic/elasticsearch (its operator-only REST test shows
the exact body), and issue elastic/elasticsearch#128758 for the refused ``number_of_allocations``. How Serverless
enforces "adaptive allocations are always on" is closed code: the texts below for it are the simulator's guess
(docs/simulator.md).
"""

from __future__ import annotations

from typing import Any

from airflow_esml.testing.protocol import EsError, Route, SimRequest, SimResponse
from airflow_esml.testing.server.privileges import route_key

_TM = "/_ml/trained_models"

#: routes (as :func:`~airflow_esml.testing.server.privileges.route_key` writes them) that answer 410
UNAVAILABLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/_nodes"),
        ("GET", "/_nodes/{}"),
        ("GET", "/_nodes/{}/{}"),
        ("GET", "/_nodes/stats"),
        ("GET", "/_ml/info"),
        ("GET", "/_ml/memory/_stats"),
        ("GET", "/_ml/memory/{}/_stats"),
        ("GET", "/_cluster/settings"),
        ("PUT", "/_cluster/settings"),
        ("GET", "/_cluster/health"),
        ("GET", "/_cluster/health/{}"),
        ("GET", "/_cluster/stats"),
        ("POST", f"{_TM}/{{}}/deployment/cache/_clear"),
    }
)

#: the ML update routes, and the inference update routes (whichever handler serves them)
_ML_UPDATE = {("POST", f"{_TM}/{{}}/deployment/_update")}
_INFERENCE_UPDATE = {("PUT", "/_inference/{}/_update"), ("PUT", "/_inference/{}/{}/_update")}

#: issue elastic/elasticsearch#128758, on Serverless
FIXED_COUNT_REFUSED = "Validation Failed: 1: [number_of_allocations] cannot be set if adaptive allocations is enabled;"
#: the simulator's guess for switching adaptive allocations off on Serverless
ADAPTIVE_OFF_REFUSED = "Validation Failed: 1: [adaptive_allocations.enabled] cannot be false in serverless mode;"


def not_available(method: str, uri: str) -> EsError:
    """The 410 of an API that a Serverless project does not offer (``uri``: path and query, as requested)."""
    return EsError(
        410,
        "api_not_available_exception",
        f"Request for uri [{uri}] with method [{method}] exists but is not available when running in serverless mode",
    )


def check_request(method: str, template: str, uri: str, body: Any) -> None:
    """Raise what Serverless answers for this request, if it refuses it (410, or 400 for a fixed count)."""
    key = route_key(method, template)
    if key in UNAVAILABLE:
        raise not_available(method, uri)
    if not isinstance(body, dict):
        return
    if key in _ML_UPDATE:
        fixed = body.get("number_of_allocations") is not None
        adaptive = body.get("adaptive_allocations")
    elif key in _INFERENCE_UPDATE:
        found = body.get("service_settings")
        settings: dict[str, Any] = found if isinstance(found, dict) else {}
        fixed = settings.get("num_allocations") is not None
        adaptive = settings.get("adaptive_allocations")
    else:
        return
    if fixed:
        raise EsError(400, "action_request_validation_exception", FIXED_COUNT_REFUSED)
    if isinstance(adaptive, dict) and adaptive.get("enabled") is False:
        raise EsError(400, "action_request_validation_exception", ADAPTIVE_OFF_REFUSED)


def _never(request: SimRequest) -> SimResponse:  # pragma: no cover - the 410 is answered before any handler
    raise not_available(request.method, request.path)


def serverless_only_routes() -> list[Route]:
    """Routes the simulator serves only in the Serverless flavour, where they answer 410 (the stateful
    simulator does not simulate them: 400 "no handler found")."""
    return [
        ("GET", "/_ml/memory/_stats", _never),
        ("GET", "/_ml/memory/{node_id}/_stats", _never),
        ("GET", "/_cluster/health", _never),
        ("GET", "/_cluster/health/{index}", _never),
        ("GET", "/_cluster/stats", _never),
        ("GET", "/_nodes/stats", _never),
    ]
