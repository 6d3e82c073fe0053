"""The endpoint records, default endpoints, version gates and ownership rules (``cluster/endpoints.py``)."""

from __future__ import annotations

import pytest

from airflow_esml.testing.cluster.endpoints import (
    Endpoint,
    created_by,
    default_endpoints,
    ownership_409s,
    stop_refusals,
    update_api_available,
    used_by,
)
from airflow_esml.testing.cluster.inference import cache_lookup
from airflow_esml.testing.protocol import EsVersion


@pytest.mark.parametrize(
    ("version", "ids"),
    [
        ("8.16.6", []),
        ("8.17.0", [".elser-2-elasticsearch", ".multilingual-e5-small-elasticsearch"]),
        ("8.19.3", [".elser-2-elasticsearch", ".multilingual-e5-small-elasticsearch"]),
        ("9.0.0", [".elser-2-elasticsearch", ".multilingual-e5-small-elasticsearch", ".rerank-v1-elasticsearch"]),
    ],
)
def test_default_endpoints_by_version(version: str, ids: list[str]) -> None:
    found = default_endpoints(EsVersion.parse(version))
    assert [e.inference_id for e in found] == ids
    for endpoint in found:
        assert endpoint.default and endpoint.owns_deployment and endpoint.num_threads == 1
        assert endpoint.num_allocations is None
        assert endpoint.adaptive is not None and endpoint.adaptive.to_dict() == {
            "enabled": True,
            "min_number_of_allocations": 0,
            "max_number_of_allocations": 32,
        }


@pytest.mark.parametrize(
    ("version", "update", "ownership", "stop"),
    [
        ("8.13.4", False, False, False),
        ("8.17.0", True, False, False),
        ("8.18.8", True, False, False),
        ("8.19.3", True, False, True),
        ("9.0.7", True, False, False),
        ("9.1.5", True, False, True),
        ("9.2.0", True, True, True),
        ("9.5.1", True, True, True),
    ],
)
def test_version_gates(version: str, update: bool, ownership: bool, stop: bool) -> None:
    parsed = EsVersion.parse(version)
    assert (update_api_available(parsed), ownership_409s(parsed), stop_refusals(parsed)) == (update, ownership, stop)


def test_created_by_and_used_by() -> None:
    owner = Endpoint("e1", "text_embedding", "elasticsearch", "m")
    attached = Endpoint("att", "text_embedding", "elasticsearch", "m", deployment_id="e1")
    other = Endpoint("b", "text_embedding", "elasticsearch", "m", deployment_id="e1")
    endpoints = [other, owner, attached]
    assert created_by(endpoints, "e1") is owner and created_by(endpoints, "att") is None
    assert [e.inference_id for e in used_by(endpoints, "e1")] == ["att", "b"]
    assert attached.ml_deployment_id == "e1" and owner.ml_deployment_id == "e1"


def test_cache_lookup_is_an_lru_of_inputs() -> None:
    cache: dict[str, None] = {}
    assert cache_lookup(cache, 0, ["a", "a"]) == 0 and cache == {}
    assert cache_lookup(cache, 2 * 4096, ["a", "b", "a"]) == 1
    assert cache_lookup(cache, 2 * 4096, ["c"]) == 0  # evicts b, the least recently used
    assert list(cache) == ["a", "c"]
    assert cache_lookup(cache, 2 * 4096, ["b", "a"]) == 0  # b was evicted; then a was evicted by b
