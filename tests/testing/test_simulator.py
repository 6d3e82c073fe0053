"""The Simulator's lifecycle, thread cleanup, control endpoints and connection URI."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from airflow_esml.testing import Simulator


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
    if not simulator.cluster.routes():
        pytest.skip("cluster model without routes")
    with simulator.client() as es:
        models = es.ml.get_trained_models(model_id="my-e5")
    assert models["count"] == 1
    assert simulator.audit.events("request", endpoint="models")
