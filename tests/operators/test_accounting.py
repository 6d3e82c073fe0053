"""Capacity accounting in tasks, against the simulator: the windows of leases, reservations and update pairs,
their log line, and the figures sent to Airflow's ``Stats``."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.operators import accounting as window
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator
from airflow_esml.sensors.deployment import AllocationsStartedSensor
from tests.helpers import XComTI


def run(task: Any, xcoms: dict, run_id: str = "manual__1") -> Any:
    result = task.execute({"run_id": run_id, "ti": XComTI(xcoms, task.task_id)})
    xcoms[(task.task_id, "return_value")] = result
    return result


def infer(docs: int) -> None:
    hook = ElasticsearchMLHook()
    for start in range(0, docs, 50):
        hook.infer("my-e5", [{"text_field": f"doc {i}"} for i in range(start, min(docs, start + 50))])


def work_seconds(sim) -> float:
    """The deployment's busy time, from the simulator's own stats."""
    nodes = sim.cluster.deployment_stats("my-e5").get("nodes", [])
    return sum(n.get("inference_count", 0) * n.get("average_inference_time_ms", 0.0) for n in nodes) / 1000


def test_a_scaled_deployment_window_is_reported_at_release(sim, stats, capsys):
    sim.cluster.set_infer_seconds_per_doc(0.01)
    xcoms: dict = {}
    before = work_seconds(sim)
    acquire = AcquireDeploymentLeaseOperator(task_id="g.acquire", deployment_id="my-e5", number_of_allocations=4)
    opened = run(acquire, xcoms)
    assert window.LEASE_OWNER_KEY in opened["leases"][0]["owner"]
    run(AllocationsStartedSensor(task_id="g.wait", deployment_id="my-e5", min_allocations=4, poke_interval=0.05,
                                 timeout=30), xcoms)  # fmt: skip
    infer(400)
    done = work_seconds(sim) - before
    release = ReleaseDeploymentLeaseOperator(task_id="g.release", deployment_id="my-e5", wait_task_id="g.wait")
    result = run(release, xcoms)
    capacity = result["capacity_usage"]
    assert capacity["baseline"] == 1 and capacity["allocations"] == 4
    assert capacity["deployment_busy_allocation_seconds"] == pytest.approx(done, rel=0.02, abs=0.01)
    inferred = sum(e.data.get("docs", 0) for e in sim.audit.events("inference") if e.data.get("status", 200) == 200)
    assert inferred == 400  # the audit log: every document once, at 0.01 s each
    assert capacity["deployment_busy_allocation_seconds"] == pytest.approx(inferred * 0.01, rel=0.05)
    assert capacity["busy_allocation_seconds"] <= capacity["allocation_seconds"]
    assert 0 < capacity["loading_allocation_seconds"] <= capacity["allocation_seconds"]
    assert capacity["allocation_seconds"] == pytest.approx(3 * capacity["held_seconds"], rel=1e-3)
    lines = [line for line in capsys.readouterr().out.splitlines() if "held 4 allocations for" in line]
    assert len(lines) == 1 and "above the baseline of 1 (" in lines[0] and "busy (" in lines[0]
    names = {c.args[0]: c.args[1] for c in stats.gauge.call_args_list}
    assert names["esml.capacity.allocation_seconds"] == pytest.approx(capacity["allocation_seconds"], rel=1e-2)
    assert stats.gauge.call_args.kwargs["tags"] == {"deployment_id": "my-e5"}
    stats.incr.assert_called_once_with("esml.capacity.windows", tags={"deployment_id": "my-e5"})


def test_a_retried_acquire_keeps_the_windows_start(sim, stats):
    xcoms: dict = {}
    first = run(AcquireDeploymentLeaseOperator(task_id="a", deployment_id="my-e5", number_of_allocations=2), xcoms)
    again = run(AcquireDeploymentLeaseOperator(task_id="a", deployment_id="my-e5", number_of_allocations=2), xcoms)
    key = window.LEASE_OWNER_KEY
    assert again["leases"][0]["owner"][key] == first["leases"][0]["owner"][key]


def test_a_run_that_fails_half_way_still_reports_its_window(sim, stats):
    xcoms: dict = {}
    run(AcquireDeploymentLeaseOperator(task_id="a", deployment_id="my-e5", number_of_allocations=3), xcoms)
    # the batch failed before any inference: the teardown still closes the window, which was all idle
    result = run(ReleaseDeploymentLeaseOperator(task_id="r", deployment_id="my-e5"), xcoms)
    assert result["capacity_usage"]["busy_allocation_seconds"] == 0.0
    assert result["capacity_usage"]["utilisation"] == 0.0
    assert result["capacity_usage"]["loading_allocation_seconds"] is None  # no wait recorded when they started
    assert sim.cluster.target("my-e5") == 1


def test_an_update_pair_reports_the_window_at_the_scale_down(sim, stats):
    sim.cluster.set_infer_seconds_per_doc(0.01)
    xcoms: dict = {}
    up = UpdateDeploymentOperator(task_id="up", deployment_id="my-e5", number_of_allocations=4,
                                  wait_for_completion=True, poll_interval=0.05, timeout=30)  # fmt: skip
    opened = run(up, xcoms)
    assert opened["accounting"]["baseline"] == 1 and opened["accounting"]["ready_at"] is not None
    infer(200)
    down = UpdateDeploymentOperator(task_id="down", deployment_id="my-e5", number_of_allocations=1,
                                    scale_up_task_id="up")  # fmt: skip
    result = run(down, xcoms)
    capacity = result["capacity_usage"]
    assert capacity["allocations"] == 4 and capacity["baseline"] == 1
    assert capacity["loading_allocation_seconds"] > 0
    assert capacity["deployment_busy_allocation_seconds"] > 0
    assert "accounting" not in result  # a scale-down opens nothing
    assert sim.cluster.target("my-e5") == 1


def test_accounting_never_fails_the_task(sim, stats, monkeypatch):
    xcoms: dict = {}
    run(AcquireDeploymentLeaseOperator(task_id="a", deployment_id="my-e5", number_of_allocations=2), xcoms)
    stats.gauge.side_effect = RuntimeError("statsd is down")
    result = run(ReleaseDeploymentLeaseOperator(task_id="r", deployment_id="my-e5"), xcoms)
    assert result["capacity_usage"] is not None and result["restored"] is True


def test_a_reservation_window_is_reported_when_it_ends(sim, stats, monkeypatch):
    from datetime import datetime, timezone

    from airflow_esml.operators import reservation as module
    from airflow_esml.operators.reservation import EndReservationOperator, ReserveDeploymentOperator

    window = {"start": 8, "end": "18:00", "timezone": "Europe/Amsterdam", "lead_minutes": 30, "weekdays": "1-5"}
    reserve_at, end_at = datetime(2026, 3, 2, 6, 30, tzinfo=timezone.utc), datetime(2026, 3, 2, 17, tzinfo=timezone.utc)
    sim.cluster.set_infer_seconds_per_doc(0.01)
    monkeypatch.setattr(module, "utc_now", lambda: reserve_at)
    reserve = ReserveDeploymentOperator(task_id="reserve", deployment_id="my-e5", number_of_allocations=3, **window)
    reserve.execute({"run_id": "a", "logical_date": reserve_at, "ti": XComTI({}, "r")})
    sim.cluster.wait_for("my-e5")
    infer(100)
    monkeypatch.setattr(module, "utc_now", lambda: end_at)
    ended = EndReservationOperator(task_id="end", deployment_id="my-e5", **window).execute(
        {"run_id": "b", "logical_date": end_at, "ti": XComTI({}, "e")}
    )
    capacity = ended["capacity_usage"]
    assert capacity["allocations"] == 3 and capacity["baseline"] == 1
    assert capacity["loading_allocation_seconds"] is None  # opened and closed by two runs: no wait between
    assert capacity["deployment_busy_allocation_seconds"] == pytest.approx(1.0, rel=0.1)
    assert sim.cluster.target("my-e5") == 1
