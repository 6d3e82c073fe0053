"""The Serverless flavour: ``GET /`` says ``serverless`` with a version that is not the stack's, the operator-only
APIs answer 410 ``api_not_available_exception`` (recorded in the audit log), and fixed counts are refused."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from urllib.error import HTTPError

import pytest

from airflow_esml.testing import Simulator


@pytest.fixture
def project() -> Iterator[Simulator]:
    with Simulator(serverless=True, es_version="9.3.0", seed=4) as sim:
        sim.cluster.start_deployment("my-e5", wait=True)
        yield sim


def call(sim: Simulator, method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sim.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_info_reports_the_serverless_flavour(project: Simulator) -> None:
    status, body = call(project, "GET", "/")
    assert status == 200 and body["version"]["build_flavor"] == "serverless"
    assert body["version"]["number"] == "9.4.0"  # "the next target release", not the stack's 9.3.0


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("GET", "/_nodes", "nodes"),
        ("GET", "/_nodes/stats", "stats"),
        ("GET", "/_nodes/_all/ml", "nodes"),
        ("GET", "/_ml/info", "ml_info"),
        ("GET", "/_ml/memory/_stats", "stats"),
        ("GET", "/_cluster/settings?include_defaults=true", "settings"),
        ("GET", "/_cluster/health", "health"),
        ("GET", "/_cluster/stats", "stats"),
        ("POST", "/_ml/trained_models/my-e5/deployment/cache/_clear", "clear"),
    ],
)
def test_operator_only_apis_answer_410(project: Simulator, method: str, path: str, endpoint: str) -> None:
    status, body = call(project, method, path)
    reason = (
        f"Request for uri [{path}] with method [{method}] exists but is not available when running in serverless mode"
    )
    assert status == 410
    assert body == {
        "error": {"root_cause": [{"type": "api_not_available_exception", "reason": reason}],
                  "type": "api_not_available_exception", "reason": reason},
        "status": 410,
    }  # fmt: skip
    assert project.audit.events("request", method=method, path=path.split("?")[0], endpoint=endpoint, status=410)


def test_a_fixed_count_is_refused_and_adaptive_settings_are_accepted(project: Simulator) -> None:
    status, body = call(project, "POST", "/_ml/trained_models/my-e5/deployment/_update", {"number_of_allocations": 2})
    assert status == 400 and body["error"]["type"] == "action_request_validation_exception"
    assert body["error"]["reason"] == (
        "Validation Failed: 1: [number_of_allocations] cannot be set if adaptive allocations is enabled;"
    )
    adaptive = {"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4}
    status, _ = call(
        project, "POST", "/_ml/trained_models/my-e5/deployment/_update", {"adaptive_allocations": adaptive}
    )
    assert status == 200
    status, body = call(project, "POST", "/_ml/trained_models/my-e5/deployment/_update",
                        {"adaptive_allocations": {"enabled": False}})  # fmt: skip
    assert status == 400 and "[adaptive_allocations.enabled] cannot be false" in body["error"]["reason"]


def test_the_inference_update_refuses_num_allocations() -> None:
    from airflow_esml.testing.protocol import EsError
    from airflow_esml.testing.server.serverless import check_request

    template = "/_inference/{task_type}/{inference_id}/_update"
    with pytest.raises(EsError) as raised:
        check_request(
            "PUT", template, "/_inference/sparse_embedding/e/_update", {"service_settings": {"num_allocations": 2}}
        )
    assert raised.value.status == 400 and "[number_of_allocations] cannot be set" in raised.value.reason
    check_request("PUT", template, "/x", {"service_settings": {"adaptive_allocations": {"enabled": True}}})


def test_the_stateful_flavour_is_unchanged() -> None:
    with Simulator(es_version="9.3.0") as sim:
        assert call(sim, "GET", "/_ml/info")[0] == 200
        version = call(sim, "GET", "/")[1]["version"]
        assert version["number"] == "9.3.0" and version["build_flavor"] == "default"
        assert call(sim, "GET", "/_cluster/health")[0] == 400  # not simulated outside Serverless
