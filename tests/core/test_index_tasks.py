"""Sizing of in-cluster batches and the reading of GET _tasks/<id>, pure."""

from __future__ import annotations

import pytest

from airflow_esml.core.index_tasks import MAX_AUTO_SLICES, TaskProgress, judge_task, parse_task, plan_batches
from tests.fake_tasks import status


@pytest.mark.parametrize(
    ("allocations", "threads", "queue", "slices", "size"),
    [
        (1, 1, 10000, 1, 1000),  # one allocation: one slice, the default scroll size
        (4, 1, 1024, 4, 256),  # the whole task fits in the queue
        (8, 2, 10000, 16, 625),
        (64, 1, 10000, MAX_AUTO_SLICES, 312),
        (4, 1, None, 4, 256),  # unknown queue: the 8.4-8.10 default of 1024
        (4, 1, 2, 2, 1),  # a tiny queue: fewer slices, never more in flight than it holds
    ],
)
def test_plan_batches(allocations, threads, queue, slices, size):
    plan = plan_batches(status(allocations, threads, queue))
    assert (plan.slices, plan.size) == (slices, size)
    assert plan.in_flight <= plan.queue_capacity


def test_overrides_are_kept_and_a_risky_one_is_noted():
    plan = plan_batches(status(4, 1, 1024), slices=8, size=500)
    assert (plan.slices, plan.size) == (8, 500)
    assert "expect 429s" in plan.describe()
    idle = plan_batches(status(8, 1, 1024), slices=1, size=4)
    assert "some will idle" in idle.describe()


RUNNING = {
    "completed": False,
    "task": {"status": {"total": 1000, "created": 200, "updated": 50, "batches": 3, "version_conflicts": 0},
             "running_time_in_nanos": 5 * 10**9},
}  # fmt: skip


def test_a_running_task():
    progress = parse_task("n:1", RUNNING)
    assert progress.done == 250 and progress.total == 1000 and not progress.completed
    assert progress.describe() == "250 of 1000 documents (25%), 50 docs/s, ETA 15s"


def test_a_completed_task_with_failures():
    body = {
        "completed": True,
        "task": {"running_time_in_nanos": 10 * 10**9},
        "response": {"total": 10, "created": 4, "batches": 1, "failures": [
            {"index": "out", "id": str(i), "status": 400,
             "cause": {"type": "illegal_argument_exception", "reason": f"bad {i}"}} for i in range(7)]},
    }  # fmt: skip
    progress = parse_task("n:1", body)
    assert progress.failure_count == 7 and len(progress.failures) == 5
    assert progress.failures[0] == {"index": "out", "id": "0", "status": 400,
                                    "reason": "illegal_argument_exception: bad 0"}  # fmt: skip
    assert "7 failed" in progress.describe()
    assert judge_task(progress, "warn") is None
    assert "7 document failure(s), the task stopped at 4 of 10: out/0: 400" in judge_task(progress, "fail")


def test_a_cancelled_and_a_failed_task():
    cancelled = parse_task("n:1", {"completed": True, "task": {}, "response": {"canceled": "by user request"}})
    assert "cancelled (by user request)" in judge_task(cancelled, "warn")
    failed = parse_task("n:1", {"completed": True, "task": {}, "error": {
        "type": "index_not_found_exception", "reason": "no such index [x]"}})  # fmt: skip
    assert judge_task(failed, "warn") == "task n:1 failed: index_not_found_exception: no such index [x]"


def test_progress_survives_a_round_trip():
    progress = parse_task("n:1", RUNNING)
    assert TaskProgress.from_dict(progress.to_dict()) == progress
