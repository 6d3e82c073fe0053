"""Capacity accounting, pure: snapshots, busy deltas, the window's figures and its log line."""

from __future__ import annotations

import json

import pytest

from airflow_esml.core.accounting import (
    METRIC_NAMES,
    WindowStart,
    busy_seconds,
    close_window,
    duration,
    open_window,
    snapshot,
)
from airflow_esml.core.status import DeploymentStatus, NodeRoute


def status(*nodes: NodeRoute) -> DeploymentStatus:
    return DeploymentStatus("d", "m", "started", 8, 8, "fully_allocated", nodes=tuple(nodes))


def node(node_id: str, count: int, avg: float | None, state: str = "started") -> NodeRoute:
    return NodeRoute(node_id, node_id, state, inference_count=count, average_inference_time_ms=avg)


def test_snapshot_keeps_started_nodes_only():
    seen = snapshot(status(node("a", 10, 20.0), node("b", 0, None), node("c", 0, None, state="starting")))
    assert seen == {"a": (10, 20.0), "b": (0, 0.0)}


def test_busy_seconds_is_the_delta_of_count_times_average():
    start = {"a": (100, 20.0)}  # 2 s of work so far
    end = {"a": (400, 25.0), "b": (1000, 30.0)}  # a: 10 s, b (new): 30 s
    assert busy_seconds(start, end) == pytest.approx(8.0 + 30.0)


def test_a_node_that_restarted_counts_from_zero():
    assert busy_seconds({"a": (500, 10.0)}, {"a": (100, 10.0)}) == pytest.approx(1.0)


def test_the_example_of_the_issue():
    # 8 allocations, baseline 1, 5m12s: 36.4 allocation-min above the baseline
    start = WindowStart("d", 1, 8, 1000.0, {"a": (0, 0.0)}, ready_at=1000.0 + 18)
    busy_total = 30.9 * 60 * 8 / 7  # every allocation did the same share: 30.9 min above the baseline
    usage = close_window(start, {"a": (int(busy_total * 10), 100.0)}, 1312.0)
    assert usage.allocation_seconds == pytest.approx(7 * 312)
    assert usage.loading_allocation_seconds == pytest.approx(7 * 18)
    assert usage.busy_allocation_seconds == pytest.approx(30.9 * 60, rel=1e-3)
    assert usage.describe() == (
        "held 8 allocations for 5m12s above the baseline of 1 (36.4 allocation-min): 2.1 loading, 30.9 busy (85%)"
    )


def test_busy_time_is_shared_by_every_allocation_and_capped():
    start = WindowStart("d", 2, 4, 0.0, {})
    little = close_window(start, {"a": (100, 10.0)}, 100.0)  # 1 s of work: half of it on the 2 extra allocations
    assert little.busy_allocation_seconds == pytest.approx(0.5)
    assert little.deployment_busy_allocation_seconds == pytest.approx(1.0)
    assert little.utilisation == pytest.approx(0.0025)
    full = close_window(start, {"a": (1_000_000, 10.0)}, 100.0)  # more than 4 allocations could do
    assert full.busy_allocation_seconds == full.allocation_seconds == 200.0
    assert full.utilisation == 1.0


def test_unknown_loading_and_nothing_above_the_baseline():
    usage = close_window(WindowStart("d", 1, 4, 0.0, {}), {}, 60.0)
    assert usage.loading_allocation_seconds is None
    assert "? loading" in usage.describe()
    assert METRIC_NAMES["loading_allocation_seconds"] not in usage.metrics()
    flat = close_window(WindowStart("d", 4, 4, 0.0, {}), {"a": (60, 1000.0)}, 60.0)
    assert flat.allocation_seconds == 0.0 and flat.utilisation is None
    assert flat.describe().startswith("held nothing above the baseline of 4")


def test_ready_at_from_the_wait_when_the_record_has_none():
    usage = close_window(WindowStart("d", 0, 2, 0.0, {}), {}, 100.0, ready_at=10.0)
    assert usage.loading_allocation_seconds == pytest.approx(20.0)
    late = close_window(WindowStart("d", 0, 2, 0.0, {}), {}, 100.0, ready_at=500.0)  # never ready in time
    assert late.loading_allocation_seconds == pytest.approx(200.0)


def test_the_record_survives_json():
    start = open_window(status(node("a", 3, 1.5)), baseline=1, allocations=4, now=5.0)
    back = WindowStart.from_dict(json.loads(json.dumps(start.to_dict())))
    assert back == start


def test_metrics_names_and_values():
    usage = close_window(WindowStart("d", 0, 2, 0.0, {}, ready_at=1.0), {"a": (100, 1000.0)}, 100.0)
    assert usage.metrics() == {
        "esml.capacity.held_seconds": 100.0,
        "esml.capacity.allocation_seconds": 200.0,
        "esml.capacity.loading_allocation_seconds": 2.0,
        "esml.capacity.busy_allocation_seconds": 100.0,
        "esml.capacity.utilisation_percent": 50.0,
    }


@pytest.mark.parametrize(("value", "text"), [(42.4, "42s"), (312, "5m12s"), (3780, "1h03m"), (0, "0s")])
def test_duration(value, text):
    assert duration(value) == text


def test_a_short_window_is_told_in_allocation_seconds():
    usage = close_window(WindowStart("d", 1, 4, 0.0, {}, ready_at=2.0), {"a": (100, 100.0)}, 10.0)
    assert usage.describe() == (
        "held 4 allocations for 10s above the baseline of 1 (30.0 allocation-s): 6.0 loading, 7.5 busy (25%)"
    )
