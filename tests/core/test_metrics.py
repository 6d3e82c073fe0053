from __future__ import annotations

from dataclasses import replace

import pytest

from airflow_esml.core.metrics import judge_performance, metrics_of, pending_per_allocation
from airflow_esml.core.readiness import Verdict, assess
from airflow_esml.core.status import DeploymentStatus
from tests.helpers import stats_example


@pytest.fixture
def status() -> DeploymentStatus:
    return stats_example()


def test_metrics_of_the_stats_example(status):
    metrics = metrics_of(status)
    assert metrics.to_dict() == {
        "deployment_id": "my-e5-batch",
        "started_allocations": 2,
        "throughput_last_minute": 1180,
        "peak_throughput_per_minute": 2410,
        "average_inference_time_ms": 24.7,
        "pending_requests": 3,
        "pending_per_allocation": 1.5,
        "inference_count": 15234,
    }
    assert "throughput 1180/min" in metrics.describe() and "24.7 ms" in metrics.describe()


def test_no_started_allocation_has_no_per_allocation_figure(status):
    idle = replace(status, started_allocations=0, nodes=())
    assert pending_per_allocation(idle) is None
    assert metrics_of(idle).average_inference_time_ms is None and "n/a" in metrics_of(idle).describe()


@pytest.mark.parametrize(("bound", "outcome"), [(None, "success"), (1.5, "success"), (2, "success"), (1.0, "waiting")])
def test_judge_performance_bounds_pending_per_allocation(status, bound, outcome):
    verdict = judge_performance(assess(status, min_allocations=2), bound)
    assert verdict.outcome == outcome
    if bound is not None and outcome == "waiting":
        assert "1.50 per allocation, above the bound of 1" in verdict.message


def test_judge_performance_leaves_other_verdicts_alone(status):
    waiting = assess(status)  # 2/3 started
    assert judge_performance(waiting, 0) is waiting
    failed = Verdict("failed", "boom")
    assert judge_performance(failed, 0) is failed
