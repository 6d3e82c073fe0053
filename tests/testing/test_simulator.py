"""The Simulator's lifecycle, thread cleanup, control endpoints and connection URI."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from tests.testing.conftest import EsTarget


def test_url_and_lifecycle(no_stray_threads: None) -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError, match="start the simulator first"):
        sim.client()
    with sim:
        host, port = sim.url.removeprefix("http://").split(":")
        assert host == "127.0.0.1" and int(port) > 0
        assert sim.ca_certs is None
        with pytest.raises(RuntimeError, match="already started"):
            sim.start()
        with sim.client() as es:
            assert es.ping() is True
    sim.stop()  # idempotent


def test_rejects_unsupported_versions() -> None:
    with pytest.raises(ValueError, match=r"between 8\.13 and 9\.x"):
        Simulator(es_version="8.12.0")
    with pytest.raises(ValueError):
        Simulator(es_version="nine")


def test_stop_closes_many_keep_alive_connections(no_stray_threads: None) -> None:
    sim = Simulator().start()
    clients = [sim.client() for _ in range(3)]
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: clients[i % 3].info()["tagline"], range(24)))
        assert results == ["You Know, for Search"] * 24
        server_threads = [t for t in threading.enumerate() if t.name.startswith("Thread-")]
        assert server_threads  # idle keep-alive connection threads are still there
    finally:
        sim.stop()
        for es in clients:
            es.close()


def test_stop_cuts_injected_latency_short(no_stray_threads: None) -> None:
    sim = Simulator().start()
    sim.inject_fault(endpoint="info", latency=30)
    es = sim.client(max_retries=0, request_timeout=60)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            es.info()
        except Exception as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while not sim.audit.events("fault_injected") and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 5
    caller.join(10)
    es.close()
    assert not caller.is_alive()


def test_audit_over_http_with_since(simulator: Simulator) -> None:
    with simulator.client() as es:
        es.info()
        cut = time.time()
        es.index(index="a", id="1", document={})
        events = es.perform_request("GET", "/_sim/audit", params={"kind": "request", "since": str(cut)})["events"]
    assert [e["data"]["endpoint"] for e in events] == ["doc_index"]
    assert all(e["at"] > cut for e in events)


def test_same_seed_gives_same_cluster_uuid() -> None:
    with (
        Simulator(seed=5) as a,
        Simulator(seed=5) as b,
        Simulator(seed=6) as c,
        a.client() as ea,
        b.client() as eb,
        c.client() as ec,
    ):
        assert ea.info()["cluster_uuid"] == eb.info()["cluster_uuid"] != ec.info()["cluster_uuid"]


def test_connection_uri_plain(simulator: Simulator) -> None:
    from airflow.models.connection import Connection

    conn = Connection(conn_id="sim", uri=simulator.connection_uri())
    assert conn.conn_type == "elasticsearch"
    assert f"{conn.schema}://{conn.host}:{conn.port}" == simulator.url
    assert conn.extra_dejson == {}


def test_ml_routes_are_served(simulator: Simulator) -> None:
    with simulator.client() as es:
        models = es.ml.get_trained_models(model_id="my-e5")
        assert models["count"] == 1
        es.ml.start_trained_model_deployment(model_id="my-e5", wait_for="started", number_of_allocations=1)
        simulator.inject_fault(endpoint="update", status=429, times=2)
        es.ml.update_trained_model_deployment(model_id="my-e5", number_of_allocations=2)
        stats = simulator.cluster.wait_for("my-e5", "fully_allocated", timeout=5)
        assert stats["allocation_status"]["allocation_count"] == 2
    assert [e.data["status"] for e in simulator.audit.events("request", endpoint="update")] == [429, 429, 200]
    assert simulator.audit.events("request", endpoint="models")
    assert [new for _, new in simulator.audit.target_history("my-e5")][-1] == 2


def test_unknown_model_is_not_found(es_target: EsTarget) -> None:
    with es_target.client() as es, pytest.raises(elasticsearch.NotFoundError) as info:
        es.ml.get_trained_models(model_id="esml-no-such-model")
    assert info.value.message == "resource_not_found_exception"


def test_fail_node_over_http(simulator: Simulator) -> None:
    with simulator.client() as es:
        es.ml.start_trained_model_deployment(model_id="my-e5", wait_for="started", number_of_allocations=2)
        es.perform_request(
            "POST",
            "/_sim/nodes/ml-node-2/_fail",
            body={"reason": "disk on fire"},
            headers={"content-type": "application/json"},
        )
    assert simulator.audit.events("node_failed")


def test_stop_does_not_wait_for_a_blocked_start(no_stray_threads: None) -> None:
    sim = Simulator(load_seconds=60).start()
    es = sim.client(request_timeout=30, max_retries=0)
    outcome: list[object] = []

    def start() -> None:
        try:
            outcome.append(es.ml.start_trained_model_deployment(model_id="my-e5", wait_for="started", timeout="30s"))
        except Exception as exc:
            outcome.append(exc)

    caller = threading.Thread(target=start)
    caller.start()
    deadline = time.monotonic() + 5
    while not sim.audit.events("deployment_started") and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    sim.stop()
    assert time.monotonic() - began < 5
    caller.join(10)
    es.close()
    assert not caller.is_alive() and outcome
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        sim.start()
