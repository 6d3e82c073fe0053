"""Capacity accounting of overlapping leases on one deployment: the windows' allocation-seconds add up to what the
cluster held above its baseline, as the simulator's audit log of target changes shows (docs/accounting.md)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator
from tests.operators.test_accounting import run


def held_above(history: list[tuple[float, int]], baseline: int) -> float:
    """Allocation-seconds above ``baseline`` from ``(time, target)`` changes, up to the last change."""
    return sum((target - baseline) * (history[i + 1][0] - at) for i, (at, target) in enumerate(history[:-1]))


def timed(calls: list[tuple[float, float]], fn: Any) -> Any:
    """``fn()``, recording when the call started and ended."""
    start = time.time()
    try:
        return fn()
    finally:
        calls.append((start, time.time()))


def test_overlapping_leases_share_the_capacity_they_held_together(sim, stats):
    xcoms_a: dict = {}
    xcoms_b: dict = {}
    calls: list[tuple[float, float]] = []
    acquire_a = AcquireDeploymentLeaseOperator(task_id="a.acquire", deployment_id="my-e5", number_of_allocations=3)
    acquire_b = AcquireDeploymentLeaseOperator(task_id="b.acquire", deployment_id="my-e5", number_of_allocations=5)
    release_a = ReleaseDeploymentLeaseOperator(task_id="a.release", deployment_id="my-e5")
    release_b = ReleaseDeploymentLeaseOperator(task_id="b.release", deployment_id="my-e5")
    timed(calls, lambda: run(acquire_a, xcoms_a, run_id="run_a"))
    time.sleep(0.4)
    timed(calls, lambda: run(acquire_b, xcoms_b, run_id="run_b"))
    time.sleep(1.0)  # the overlap: counted twice, it would add 2 x 1 s above what the cluster held
    usage_a = timed(calls, lambda: run(release_a, xcoms_a, run_id="run_a"))["capacity_usage"]
    time.sleep(0.4)
    usage_b = timed(calls, lambda: run(release_b, xcoms_b, run_id="run_b"))["capacity_usage"]

    history = sim.audit.target_history("my-e5")
    assert [target for _, target in history] == [1, 3, 5, 1]  # started at 1; release a changes nothing
    truth = held_above(history, 1)
    reported = usage_a["allocation_seconds"] + usage_b["allocation_seconds"]
    # each change of the target happened inside one operator call, and so did the moment the windows' shares
    # changed: the two may differ by at most the call's duration times the allocations the change moved
    changes = [abs(history[i + 1][1] - history[i][1]) for i in range(len(history) - 1)]
    changing_calls = [calls[0], calls[1], calls[3]]
    tolerance = sum(moved * (end - start) for moved, (start, end) in zip(changes, changing_calls, strict=True))
    assert reported == pytest.approx(truth, abs=tolerance + 0.01)
    assert usage_a["busy_allocation_seconds"] <= usage_a["allocation_seconds"]
    assert usage_b["busy_allocation_seconds"] <= usage_b["allocation_seconds"]
    # the shared part is split: a held 2 above the baseline alone, then shared its 2 with b's 4
    assert usage_a["allocation_seconds"] < 2 * usage_a["held_seconds"]
