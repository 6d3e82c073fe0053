"""Fault injection seen through the real client: retries on 429/502-504, resets, latency, seeded randomness."""

from __future__ import annotations

import random
import time

import elasticsearch
import pytest

from airflow_esml.testing import AuditLog, Simulator
from airflow_esml.testing.server.faults import Fault, FaultInjector


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_client_retries_retryable_statuses_then_raises_api_error(simulator: Simulator, status: int) -> None:
    simulator.inject_fault(endpoint="info", status=status)
    with simulator.client() as es, pytest.raises(elasticsearch.ApiError) as info:
        es.info()
    err = info.value
    assert type(err) is elasticsearch.ApiError  # no dedicated subclass for these statuses
    assert err.status_code == status
    assert err.body["status"] == status
    assert err.body["error"]["root_cause"][0]["type"] == err.message
    # 1 attempt + the client's 3 default retries
    assert len(simulator.audit.events("request", endpoint="info", status=status)) == 4
    assert len(simulator.audit.events("fault_injected", endpoint="info")) == 4


def test_429_envelope_and_str(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="info", status=429, times=1)
    with simulator.client(max_retries=0) as es:
        with pytest.raises(elasticsearch.ApiError) as info:
            es.info()
        assert str(info.value).startswith("ApiError(429, 'es_rejected_execution_exception', 'rejected execution of")
        assert es.info()["tagline"] == "You Know, for Search"  # times=1 is used up


def test_scripted_fault_is_absorbed_by_retries(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="info", status=503, times=2)
    with simulator.client() as es:
        assert es.info()["tagline"] == "You Know, for Search"
    statuses = [e.data["status"] for e in simulator.audit.events("request", endpoint="info")]
    assert statuses == [503, 503, 200]


def test_fault_only_hits_its_endpoint(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="doc_get", status=500)
    with simulator.client() as es:
        es.index(index="x", id="1", document={"a": 1})
        with pytest.raises(elasticsearch.ApiError) as info:
            es.get(index="x", id="1")
    assert info.value.status_code == 500
    simulator.clear_faults()
    with simulator.client() as es:
        assert es.get(index="x", id="1")["found"] is True


def test_connection_reset_raises_connection_error(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="info", reset=True)
    with simulator.client() as es, pytest.raises(elasticsearch.ConnectionError):
        es.info()
    resets = simulator.audit.events("request", endpoint="info", reset=True)
    assert len(resets) == 4  # ConnectionError is retried too


def test_one_reset_is_retried_transparently(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="info", reset=True, times=1)
    with simulator.client() as es:
        assert es.info()["tagline"] == "You Know, for Search"
    assert [e.data["reset"] for e in simulator.audit.events("request", endpoint="info")] == [True, False]


def test_latency(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="info", latency=0.3, times=1)
    with simulator.client() as es:
        started = time.monotonic()
        es.info()
        assert time.monotonic() - started >= 0.3
        with pytest.raises(elasticsearch.ConnectionTimeout):
            simulator.inject_fault(endpoint="info", latency=0.5, times=1)
            es.options(request_timeout=0.1, max_retries=0).info()


async def test_async_client_sees_faults(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="info", status=429)
    async with simulator.async_client() as es:
        with pytest.raises(elasticsearch.ApiError) as info:
            await es.info()
    assert info.value.status_code == 429
    assert len(simulator.audit.events("request", endpoint="info")) == 4


def test_probabilistic_faults_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        injector = FaultInjector(rng=random.Random(seed), audit=AuditLog())
        injector.add(Fault(status=503, probability=0.5))
        return [injector.decide("info", method="GET", path="/") is not None for _ in range(40)]

    first = run(3)
    assert first == run(3)
    assert first != run(4)
    assert 5 < sum(first) < 35


def test_simulator_seed_controls_faults() -> None:
    def run() -> list[int]:
        with Simulator(seed=11) as sim, sim.client(max_retries=0) as es:
            sim.inject_fault(endpoint="info", status=502, probability=0.5)
            statuses = []
            for _ in range(12):
                try:
                    es.info()
                    statuses.append(200)
                except elasticsearch.ApiError as exc:
                    statuses.append(exc.status_code)
            return statuses

    first = run()
    assert first == run()
    assert {200, 502} == set(first)


def test_invalid_faults_are_refused(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="probability"):
        simulator.inject_fault(status=503, probability=2.0)
    with pytest.raises(ValueError, match="needs a status"):
        simulator.inject_fault(endpoint="info")
    with pytest.raises(ValueError, match="error status"):
        simulator.inject_fault(status=200)


def test_faults_over_http_control_endpoints(simulator: Simulator) -> None:
    with simulator.client() as es:
        es.perform_request(
            "POST",
            "/_sim/faults",
            body={"endpoint": "info", "status": 503, "times": 1},
            headers={"content-type": "application/json"},
        )
        with pytest.raises(elasticsearch.ApiError):
            es.options(max_retries=0).info()
        es.perform_request(
            "POST",
            "/_sim/faults",
            body={"endpoint": "info", "status": 503},
            headers={"content-type": "application/json"},
        )
        es.perform_request("DELETE", "/_sim/faults")
        assert es.info()["tagline"] == "You Know, for Search"
        with pytest.raises(elasticsearch.BadRequestError):
            es.perform_request("POST", "/_sim/faults", body={"bogus": 1}, headers={"content-type": "application/json"})


async def test_async_client_connection_reset(simulator: Simulator) -> None:
    simulator.inject_fault(endpoint="doc_get", reset=True)
    async with simulator.async_client() as es:
        await es.index(index="r", id="1", document={})
        with pytest.raises(elasticsearch.ConnectionError):
            await es.get(index="r", id="1")
    # 4 transport attempts; aiohttp itself re-sends a GET once when a reused connection is reset
    assert len(simulator.audit.events("request", endpoint="doc_get", reset=True)) in (4, 8)
