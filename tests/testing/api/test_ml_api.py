"""Behaviour of the ML endpoints through the real ``elasticsearch`` client (docs/simulator-cluster.md, "Endpoints").

Tests taking ``es_target`` also run against a real cluster when ``ESML_REAL_CLUSTER_URL`` is set (a PyTorch
model ``my-e5`` must exist there); tests taking ``simulator`` need the simulator's controls.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from tests.testing.conftest import EsTarget
from tests.testing.ml_helpers import MODEL, api_error, cleanup, poll, raw, stats, wait_for_pending


@pytest.fixture
def es(es_target: EsTarget) -> elasticsearch.Elasticsearch:
    return es_target.client(request_timeout=30, max_retries=0)


def start(client: elasticsearch.Elasticsearch, dep: str, **kwargs: Any) -> dict[str, Any]:
    return dict(client.ml.start_trained_model_deployment(model_id=MODEL, deployment_id=dep, **kwargs).body)


def test_fact1_allocation_count_counts_started_allocations(es: elasticsearch.Elasticsearch) -> None:
    with cleanup(es, "f1"):
        body = start(es, "f1", number_of_allocations=2, wait_for="starting")
        assert body["assignment"]["task_parameters"]["number_of_allocations"] == 2
        early = stats(es, "f1")
        if early["allocation_status"]["allocation_count"] == 0:
            assert early["allocation_status"]["state"] == "starting"
        done = poll(es, "f1", "fully_allocated")
        assert done["allocation_status"] == {
            "allocation_count": 2,
            "target_allocation_count": 2,
            "state": "fully_allocated",
        }


def test_fact2_top_level_number_is_the_target(es: elasticsearch.Elasticsearch) -> None:
    with cleanup(es, "f2"):
        start(es, "f2", number_of_allocations=1, wait_for="started")
        body = es.ml.update_trained_model_deployment(model_id="f2", number_of_allocations=2).body
        assert body["assignment"]["task_parameters"]["number_of_allocations"] == 2
        assert stats(es, "f2")["number_of_allocations"] == 2
        final = poll(es, "f2", "fully_allocated")
        started = [n for n in final["nodes"] if n["routing_state"]["routing_state"] == "started"]
        assert sum(n["number_of_allocations"] for n in started) == 2


def test_fact3_update_while_starting(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    simulator.set_load_seconds(5.0)
    start(es, "f3", wait_for="starting")
    same = es.ml.update_trained_model_deployment(model_id="f3", number_of_allocations=1)
    assert same["assignment"]["assignment_state"] == "starting"
    with pytest.raises(elasticsearch.ConflictError) as err:
        es.ml.update_trained_model_deployment(model_id="f3", number_of_allocations=2)
    assert api_error(err) == (409, "status_exception", "cannot update deployment that is not in [started] state")
    assert str(err.value) == (
        "ConflictError(409, 'status_exception', 'cannot update deployment that is not in [started] state')"
    )


def test_fact4_fixed_cluster_429_changes_nothing(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    start(es, "f4", wait_for="started")
    with pytest.raises(elasticsearch.ApiError) as err:
        es.ml.update_trained_model_deployment(model_id="f4", number_of_allocations=9)
    assert type(err.value) is elasticsearch.ApiError
    assert api_error(err) == (
        429,
        "status_exception",
        "Could not update deployment because there are not enough resources to provide all requested allocations",
    )
    assert stats(es, "f4")["number_of_allocations"] == 1


def test_fact4_autoscaling_cluster_answers_200_then_adds_a_node() -> None:
    with Simulator(ml_nodes={"ml-1": 2}, load_seconds=0.05, autoscale=True, seed=1) as sim:
        sim.cluster.autoscale_delay_seconds = 0.3
        es = sim.client(max_retries=0)
        start(es, "f4a", wait_for="started")
        body = es.ml.update_trained_model_deployment(model_id="f4a", number_of_allocations=4).body
        assert body["assignment"]["task_parameters"]["number_of_allocations"] == 4
        lingering = stats(es, "f4a")
        assert lingering["state"] == "started" and lingering["allocation_status"]["state"] == "started"
        assert "insufficient allocated processors" in lingering["reason"]
        poll(es, "f4a", "fully_allocated")
        nodes = es.nodes.info(node_id="ml:true").body["nodes"]
        assert len(nodes) == 2
        assert sim.audit.events("node_added", node="ml-autoscaled-1")


def test_fact5_not_deployed_update_404_stop_200(es: elasticsearch.Elasticsearch) -> None:
    with pytest.raises(elasticsearch.NotFoundError) as err:
        es.ml.update_trained_model_deployment(model_id=MODEL, number_of_allocations=2)
    assert api_error(err) == (404, "resource_not_found_exception", f"No known model deployment with id [{MODEL}]")
    assert es.ml.stop_trained_model_deployment(model_id=MODEL).body == {"stopped": True}
    with pytest.raises(elasticsearch.NotFoundError) as err:
        es.ml.stop_trained_model_deployment(model_id=MODEL, allow_no_match=False)
    assert api_error(err)[2] == f"No known model deployment with id [{MODEL}]"


def test_fact6_field_presence(es: elasticsearch.Elasticsearch, es_target: EsTarget) -> None:
    with cleanup(es, "f6"):
        start(es, "f6", wait_for="started")
        current = stats(es, "f6")
        for key in ("inference_count", "error_count", "timeout_count", "rejected_execution_count"):
            assert key not in current
        node = next(n for n in current["nodes"] if n["routing_state"]["routing_state"] == "started")
        assert node["inference_count"] == 0
        assert "average_inference_time_ms" not in node and "last_access" not in node
        assert node["routing_state"] == {"routing_state": "started"}


def test_fact6_non_started_route_keys_and_stopping(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    simulator.set_load_seconds(5.0)
    start(es, "f6b", wait_for="starting")
    [node] = stats(es, "f6b")["nodes"]
    assert node["routing_state"] == {"routing_state": "starting", "reason": ""}
    assert set(node) == {"node", "routing_state", "peak_throughput_per_minute", "throughput_last_minute"}
    simulator.set_load_seconds(0.0)
    start(es, "f6c", wait_for="started")
    simulator.cluster.set_infer_seconds_per_doc(0.1)  # about two seconds of work to drain while stopping
    worker = threading.Thread(target=simulator.cluster.infer, args=("f6c", [{"text_field": "x"}] * 20))
    worker.start()
    wait_for_pending(simulator.cluster, "f6c", 1)
    stopper = threading.Thread(target=es.ml.stop_trained_model_deployment, kwargs={"model_id": "f6c"})
    stopper.start()
    try:
        deadline = time.monotonic() + 5
        while (during := stats(es, "f6c"))["state"] != "stopping" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert during["state"] == "stopping" and "allocation_status" not in during
    finally:
        stopper.join()
        worker.join()
    after = es.ml.get_trained_models_stats(model_id=MODEL)["trained_model_stats"]
    assert [e["deployment_stats"]["deployment_id"] for e in after] == ["f6b"]


def test_fact7_timestamps_and_cache_size(es: elasticsearch.Elasticsearch) -> None:
    with cleanup(es, "f7"):
        assignment = start(es, "f7", wait_for="started", cache_size="10kb")["assignment"]
        assert isinstance(assignment["start_time"], str) and assignment["start_time"].endswith("Z")
        assert assignment["task_parameters"]["cache_size"] == "10kb"
        current = stats(es, "f7")
        assert isinstance(current["start_time"], int) and current["start_time"] > 1_600_000_000_000
        assert current["cache_size"] == "10kb"
    with cleanup(es, "f7b"):
        default = start(es, "f7b", wait_for="starting")["assignment"]["task_parameters"]
        assert default["cache_size"] == f"{default['model_bytes']}b"


def test_fact8_update_body_and_error_message_is_type(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    start(es, "f8", wait_for="started")
    es.ml.update_trained_model_deployment(model_id="f8", number_of_allocations=2)
    with pytest.raises(elasticsearch.BadRequestError) as err:
        es.ml.update_trained_model_deployment(model_id="f8")
    assert err.value.message == "parse_exception"
    assert api_error(err)[2] == "request body is required"


def test_fact9_client_retries_429_three_times(simulator: Simulator) -> None:
    es = simulator.client()
    start(es, "f9", wait_for="started")
    with pytest.raises(elasticsearch.ApiError) as err:
        es.ml.update_trained_model_deployment(model_id="f9", number_of_allocations=50)
    assert err.value.meta.status == 429
    requests = [e for e in simulator.audit.events("request") if e.data["path"].endswith("/f9/deployment/_update")]
    assert len(requests) == 4


def test_fact10_wait_for_returns_when_nothing_is_starting() -> None:
    with Simulator(ml_nodes={"ml-1": 2}, load_seconds=0.05, autoscale=True, seed=2) as sim:
        sim.cluster.autoscale_delay_seconds = 30.0
        es = sim.client(max_retries=0)
        body = start(es, "f10", number_of_allocations=4, wait_for="fully_allocated")
        assert body["assignment"]["assignment_state"] == "started"
        assert stats(es, "f10")["allocation_status"]["state"] == "started"
    with Simulator(ml_nodes={}, load_seconds=0.05, autoscale=True, seed=2) as sim:
        body = start(sim.client(max_retries=0), "f10b", wait_for="fully_allocated")
        assert body["assignment"]["assignment_state"] == "starting"
        assert body["assignment"]["routing_table"] == {}


def test_fact10_408_keeps_the_deployment(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    simulator.set_load_seconds(1.0)
    with pytest.raises(elasticsearch.ApiError) as err:
        start(es, "f10c", wait_for="started", timeout="200ms")
    status, type_, reason = api_error(err)
    assert (status, type_) == (408, "status_exception")
    assert reason.startswith("Timed out after [200ms] waiting for trained model deployment [f10c] to start.")
    assert stats(es, "f10c")["state"] == "starting"
    poll(es, "f10c", "fully_allocated")


def test_fact10_stats_one_entry_per_deployment_count_models(es: elasticsearch.Elasticsearch) -> None:
    with cleanup(es, "f10d-a", "f10d-b"):
        start(es, "f10d-b", wait_for="starting")
        start(es, "f10d-a", wait_for="starting")
        body = es.ml.get_trained_models_stats(model_id=MODEL).body
        assert body["count"] == 1
        ids = [e["deployment_stats"]["deployment_id"] for e in body["trained_model_stats"]]
        assert ids == ["f10d-a", "f10d-b"]
        by_dep = es.ml.get_trained_models_stats(model_id="f10d-b").body
        assert [e["deployment_stats"]["deployment_id"] for e in by_dep["trained_model_stats"]] == ["f10d-b"]
        wildcard = es.ml.get_trained_models_stats(model_id="f10d-*,lang_ident_model_1").body
        assert wildcard["count"] == 2


def test_start_fails_with_500_and_deletes_when_a_route_fails(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    simulator.set_load_seconds(1.0)
    timer = threading.Timer(0.2, simulator.cluster.fail_node, args=("ml-node-1", "boom"))
    timer.start()
    try:
        with pytest.raises(elasticsearch.ApiError) as err:
            start(es, "fail", number_of_allocations=8, wait_for="started")
    finally:
        timer.join()
    status, _, reason = api_error(err)
    assert status == 500
    assert reason.startswith("Could not start trained model deployment, the following nodes failed with errors [{")
    assert "=boom" in reason
    gone = es.options(ignore_status=404).ml.stop_trained_model_deployment(model_id="fail", allow_no_match=False)
    assert gone.meta.status == 404


def test_update_query_parameter_from_8_15(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    start(es, "q", wait_for="started")
    path = "/_ml/trained_models/q/deployment/_update"
    body = raw(es, "POST", path, params={"number_of_allocations": 3}, body={"number_of_allocations": "junk"})
    assert body["assignment"]["task_parameters"]["number_of_allocations"] == 3


def test_update_query_parameter_unknown_before_8_15() -> None:
    with Simulator(load_seconds=0.0, es_version="8.14.3", seed=3) as sim:
        es = sim.client(max_retries=0)
        raw(es, "POST", f"/_ml/trained_models/{MODEL}/deployment/_start", params={"deployment_id": "q"}, compat=8)
        path = "/_ml/trained_models/q/deployment/_update"
        with pytest.raises(elasticsearch.BadRequestError) as err:
            raw(es, "POST", path, params={"number_of_allocations": 3}, body={"number_of_allocations": 2}, compat=8)
        assert api_error(err)[2] == f"request [{path}] contains unrecognized parameter: [number_of_allocations]"
        with pytest.raises(elasticsearch.BadRequestError) as err:
            raw(es, "POST", path, body={}, compat=8)
        assert api_error(err)[2] == "Validation Failed: 1: [number_of_allocations] must be a positive integer;"
        with pytest.raises(elasticsearch.BadRequestError) as err:
            raw(es, "POST", path, body={"adaptive_allocations": {"enabled": True}}, compat=8)
        assert api_error(err)[1] == "x_content_parse_exception"


def test_start_body_and_query_merge_rules() -> None:
    path = "/_ml/trained_models/my-e5/deployment/_start"
    with Simulator(load_seconds=0.0, es_version="8.15.0", seed=4) as sim:
        es = sim.client(max_retries=0)
        query = {"number_of_allocations": 2, "wait_for": "starting"}
        body = raw(es, "POST", path, params=query, body={"number_of_allocations": 1}, compat=8)
        assert body["assignment"]["task_parameters"]["number_of_allocations"] == 2
    with Simulator(load_seconds=0.0, es_version="8.14.0", seed=4) as sim:
        es = sim.client(max_retries=0)
        with pytest.raises(elasticsearch.BadRequestError) as err:
            raw(es, "POST", path, params={"cache_size": "1kb"}, body={}, compat=8)
        assert api_error(err) == (
            400,
            "illegal_argument_exception",
            f"request [{path}] contains unrecognized parameter: [cache_size]",
        )


def test_body_number_coercion(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    start(es, "coerce", wait_for="started")
    body = es.ml.update_trained_model_deployment(model_id="coerce", body={"number_of_allocations": "3"}).body
    assert body["assignment"]["task_parameters"]["number_of_allocations"] == 3
    body = es.ml.update_trained_model_deployment(model_id="coerce", body={"number_of_allocations": 2.7}).body
    assert body["assignment"]["task_parameters"]["number_of_allocations"] == 2


def test_infer_and_stats_counters(es: elasticsearch.Elasticsearch) -> None:
    with cleanup(es, "inf"):
        start(es, "inf", wait_for="started")
        docs = [{"text_field": f"hello {i}"} for i in range(5)]
        body = es.ml.infer_trained_model(model_id="inf", docs=docs).body
        assert len(body["inference_results"]) == 5
        assert stats(es, "inf")["inference_count"] == 5


def test_clear_cache_get_nodes_and_ml_info(simulator: Simulator) -> None:
    es = simulator.client(max_retries=0)
    start(es, "cc", wait_for="started")
    assert es.ml.clear_trained_model_deployment_cache(model_id="cc").body == {"cleared": True}
    configs = es.ml.get_trained_models(model_id="my-e5").body
    assert configs["count"] == 1 and configs["trained_model_configs"][0]["model_type"] == "pytorch"
    every = es.ml.get_trained_models().body
    assert [c["model_id"] for c in every["trained_model_configs"]] == ["lang_ident_model_1", "my-e5"]
    nodes = es.nodes.info().body["nodes"]
    ml_nodes = [n for n in nodes.values() if "ml" in n["roles"]]
    assert sorted(n["attributes"]["ml.allocated_processors"] for n in ml_nodes) == ["4", "4"]
    limits = es.ml.info().body["limits"]
    assert limits["max_single_ml_node_processors"] == 4 and limits["total_ml_processors"] == 8


async def test_async_client_start_update_stats(simulator: Simulator) -> None:
    es = simulator.async_client(max_retries=0)
    try:
        await es.ml.start_trained_model_deployment(model_id=MODEL, wait_for="started")
        body = await es.ml.update_trained_model_deployment(model_id=MODEL, number_of_allocations=2)
        assert body["assignment"]["task_parameters"]["number_of_allocations"] == 2
        result = await es.ml.infer_trained_model(model_id=MODEL, docs=[{"text_field": "a"}])
        assert len(result["inference_results"]) == 1
        with pytest.raises(elasticsearch.NotFoundError):
            await es.ml.update_trained_model_deployment(model_id="nope", number_of_allocations=1)
        stopped = await es.ml.stop_trained_model_deployment(model_id=MODEL)
        assert stopped.body == {"stopped": True}
    finally:
        await es.close()


def test_cluster_settings_tell_an_autoscaling_cluster_from_a_fixed_one():
    from airflow_esml.testing import Simulator

    for autoscale in (False, True):
        with Simulator(ml_nodes={"n": 2}, autoscale=autoscale) as sim:
            body = sim.client().cluster.get_settings(include_defaults=True, flat_settings=True).body
        lazy = int(body["persistent"].get("xpack.ml.max_lazy_ml_nodes", body["defaults"]["xpack.ml.max_lazy_ml_nodes"]))
        assert (lazy > 1) is autoscale
