"""Inference and adaptive allocations of the cluster model (real time, small service times)."""

from __future__ import annotations

import random
import threading
import time

import pytest

from airflow_esml.testing.cluster import Cluster
from airflow_esml.testing.cluster.adaptive import AdaptiveSettings, ScalerConfig, desired_allocations, merge
from airflow_esml.testing.protocol import AuditLog, EsError, EsVersion
from tests.testing.ml_helpers import wait_for_pending


def make(*, nodes: dict[str, int] | None = None, per_doc: float = 0.005) -> Cluster:
    cluster = Cluster(
        version=EsVersion.parse("9.5.1"),
        audit=AuditLog(),
        load_seconds=0.02,
        infer_seconds_per_doc=per_doc,
        rng=random.Random(3),
    )
    for name, processors in (nodes or {"ml-1": 4, "ml-2": 4}).items():
        cluster.add_ml_node(name, processors)
    cluster.add_model("my-e5")
    return cluster


def docs(count: int) -> list[dict[str, str]]:
    return [{"text_field": f"doc {i}"} for i in range(count)]


def timed_batch(cluster: Cluster, deployment_id: str, count: int) -> float:
    started = time.monotonic()
    cluster.infer(deployment_id, docs(count))
    return time.monotonic() - started


def test_four_allocations_serve_about_four_times_the_docs_of_one() -> None:
    cluster = make()
    cluster.start_deployment("my-e5", deployment_id="one", number_of_allocations=1, wait=True)
    cluster.start_deployment("my-e5", deployment_id="four", number_of_allocations=4, wait=True)
    one = timed_batch(cluster, "one", 200)
    four = timed_batch(cluster, "four", 200)
    assert one / four >= 2.5


def test_threads_per_allocation_add_workers() -> None:
    cluster = make()
    cluster.start_deployment("my-e5", deployment_id="t4", threads_per_allocation=4, wait=True)
    cluster.start_deployment("my-e5", deployment_id="t1", wait=True)
    assert timed_batch(cluster, "t1", 120) / timed_batch(cluster, "t4", 120) >= 2.5


def test_results_are_deterministic_one_per_doc_in_order() -> None:
    cluster = make(per_doc=0.0)
    cluster.start_deployment("my-e5", number_of_allocations=2, wait=True)
    first = cluster.infer("my-e5", [{"text_field": "a"}, {"text_field": "b"}])
    again = cluster.infer("my-e5", [{"text_field": "b"}])
    assert len(first) == 2 and first[1] == again[0] and first[0] != first[1]
    assert len(first[0]["predicted_value"]) == 8


def test_stats_counters_follow_completed_docs() -> None:
    cluster = make(per_doc=0.002)
    cluster.start_deployment("my-e5", number_of_allocations=2, wait=True)
    assert "inference_count" not in cluster.deployment_stats("my-e5")
    cluster.infer("my-e5", docs(30))
    stats = cluster.deployment_stats("my-e5")
    assert stats["inference_count"] == 30
    started = [n for n in stats["nodes"] if n["routing_state"]["routing_state"] == "started"]
    assert sum(n["inference_count"] for n in started) == 30
    assert sum(n["throughput_last_minute"] for n in started) == 30
    assert stats["peak_throughput_per_minute"] == 30
    assert all(n["average_inference_time_ms"] == pytest.approx(2.0) for n in started if n["inference_count"])
    assert all("last_access" in n for n in started if n["inference_count"])
    assert [e.data["docs"] for e in cluster.audit.events("inference", deployment_id="my-e5")] == [30]


def test_queue_capacity_rejects_with_429() -> None:
    cluster = make(nodes={"ml-1": 1}, per_doc=0.3)  # the queue stays full for about a second
    cluster.start_deployment("my-e5", queue_capacity=3, wait=True)
    worker = threading.Thread(target=cluster.infer, args=("my-e5", docs(4)))
    worker.start()
    try:
        wait_for_pending(cluster, "my-e5", 3)  # one document runs, three wait: the queue is full
        with pytest.raises(EsError) as err:
            cluster.infer("my-e5", docs(1))
        assert (err.value.status, err.value.reason) == (
            429,
            "inference process queue is full. Unable to execute command",
        )
        assert cluster.deployment_stats("my-e5")["rejected_execution_count"] == 1
    finally:
        worker.join()


def test_infer_errors() -> None:
    cluster = make()
    with pytest.raises(EsError) as err:
        cluster.infer("missing", docs(1))
    assert (err.value.status, err.value.reason) == (404, "Could not find trained model [missing]")
    with pytest.raises(EsError) as err:
        cluster.infer("my-e5", docs(1))
    assert err.value.status == 409 and err.value.reason.startswith("Model [my-e5] must be deployed to use.")
    cluster.set_load_seconds(5.0)
    cluster.start_deployment("my-e5")
    with pytest.raises(EsError) as err:
        cluster.infer("my-e5", docs(1))
    assert (err.value.status, err.value.reason) == (
        409,
        "Trained model deployment [my-e5] is not allocated to any nodes",
    )


def test_infer_timeout_is_408() -> None:
    cluster = make(nodes={"ml-1": 1}, per_doc=0.05)
    cluster.start_deployment("my-e5", wait=True)
    with pytest.raises(EsError) as err:
        cluster.infer("my-e5", docs(10), timeout=0.1)
    assert (err.value.status, err.value.reason) == (408, "timeout [100ms] waiting for inference result")
    time.sleep(0.45)
    assert cluster.deployment_stats("my-e5")["timeout_count"] == 1


def test_adaptive_settings_merge_and_validation() -> None:
    base = AdaptiveSettings(enabled=True, min_number_of_allocations=1, max_number_of_allocations=4)
    merged = merge(base, {"max_number_of_allocations": 8})
    assert merged == AdaptiveSettings(True, 1, 8)
    assert merge(merged, {"min_number_of_allocations": None}).to_dict() == {
        "enabled": True,
        "max_number_of_allocations": 8,
    }
    assert AdaptiveSettings(True, 0, 2).errors() == []
    assert AdaptiveSettings(True, 3, 2).errors() == [
        "[min_number_of_allocations] must not be larger than [max_number_of_allocations]"
    ]
    assert AdaptiveSettings(None, -1, 0).errors()[:2] == [
        "[min_number_of_allocations] must be a non-negative integer or null",
        "[max_number_of_allocations] must be a positive integer or null",
    ]
    assert AdaptiveSettings().to_dict() == {"enabled": False}


def test_scaler_rules() -> None:
    config = ScalerConfig(interval=1.0, scale_down_cooldown=0.0, scale_to_zero_after=5.0)
    settings = AdaptiveSettings(True, 1, 4)
    assert desired_allocations(settings, 1, 2.5, 0.0, 100.0, config) == 3
    assert desired_allocations(settings, 1, 10.0, 0.0, 100.0, config) == 4
    assert desired_allocations(settings, 3, 0.5, 0.0, 100.0, config) == 1
    assert desired_allocations(AdaptiveSettings(True, 0, 4), 1, 0.0, 6.0, 100.0, config) == 0
    cooled = ScalerConfig(interval=1.0, scale_down_cooldown=50.0)
    assert desired_allocations(settings, 3, 0.0, 0.0, 10.0, cooled) == 3


def test_adaptive_scaler_scales_up_under_load_and_audits() -> None:
    cluster = make(per_doc=0.01)
    cluster.scaler = ScalerConfig(interval=0.2, scale_down_cooldown=0.0, scale_to_zero_after=3600.0)
    cluster.start_deployment(
        "my-e5", adaptive_allocations={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4}
    )
    cluster.wait_for("my-e5")
    stop = time.monotonic() + 1.0
    while time.monotonic() < stop:
        cluster.infer("my-e5", docs(40))
    assert cluster.target("my-e5") > 1
    assert any(e.data["new"] > 1 for e in cluster.audit.events("target_changed", deployment_id="my-e5"))
    stats = cluster.deployment_stats("my-e5")
    assert stats["adaptive_allocations"] == {
        "enabled": True,
        "min_number_of_allocations": 1,
        "max_number_of_allocations": 4,
    }
    time.sleep(1.0)
    assert cluster.target("my-e5") == 1  # idle: back to min


def test_adaptive_scale_to_zero_and_back_on_infer() -> None:
    cluster = make(per_doc=0.0)
    cluster.scaler = ScalerConfig(interval=0.05, scale_down_cooldown=0.0, scale_to_zero_after=0.1)
    cluster.start_deployment("my-e5", adaptive_allocations={"enabled": True, "min_number_of_allocations": 0})
    cluster.wait_for("my-e5")
    time.sleep(0.3)
    stats = cluster.deployment_stats("my-e5")
    assert stats["number_of_allocations"] == 0
    # 9.x: fully_allocated with target 0 (PR #114570); the assignment stays started with no routes (C3)
    zero = {"allocation_count": 0, "target_allocation_count": 0, "state": "fully_allocated"}
    assert stats["allocation_status"] == zero
    assert (stats["state"], stats["nodes"]) == ("started", [])
    assert cluster.infer("my-e5", docs(1))[0]["predicted_value"]
    assert cluster.target("my-e5") == 1


def test_update_adaptive_rules() -> None:
    cluster = make()
    cluster.start_deployment("my-e5", wait=True)
    with pytest.raises(EsError) as err:
        cluster.update_deployment("my-e5", number_of_allocations=2, adaptive_allocations={"enabled": True})
    assert err.value.type == "action_request_validation_exception"
    cluster.update_deployment("my-e5", adaptive_allocations={"enabled": True, "min_number_of_allocations": 2})
    assert cluster.target("my-e5") == 2
    with pytest.raises(EsError) as err:
        cluster.update_deployment("my-e5", number_of_allocations=3)
    assert (err.value.status, err.value.type) == (400, "validation_exception")
    assert err.value.reason == (
        "Validation Failed: 1: [number_of_allocations] cannot be set if adaptive allocations is enabled;"
    )
    cluster.update_deployment("my-e5", number_of_allocations=3, adaptive_allocations={"enabled": False})
    assert cluster.target("my-e5") == 3
    assert cluster.update_deployment("my-e5", adaptive_allocations=None)["adaptive_allocations"] is None
    kinds = [e.data["new"] for e in cluster.audit.events("adaptive_changed", deployment_id="my-e5")]
    assert kinds[-1] is None and kinds[0] == {"enabled": True, "min_number_of_allocations": 2}
