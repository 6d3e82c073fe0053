"""Capacity accounting checked against the simulator's audit log, not against the provider's own numbers.

The expected figures come from what the simulator recorded: the ``target_changed`` events of the scale-up and
the scale-down (the capacity actually held), the ``route_state``/``route_allocations`` events of the new
allocations (when they really started) and the ``inference`` events with their documents (the work done). The
tolerances come from the audit too: the provider may open a window between its opening task's first request
and the scale-up, and close it within its closing task, so the bounds are those times, whatever the load of
the machine. No test sleeps or asserts on how long something took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest

from airflow_esml.exceptions import EsmlError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.operators.inference import BatchInferenceOperator
from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator
from airflow_esml.sensors.deployment import AllocationsStartedSensor
from airflow_esml.testing import Simulator
from airflow_esml.testing.protocol import AuditEvent
from tests.helpers import XComTI

SECONDS_PER_DOC = 0.01
DEPLOYMENT = "my-e5"


@dataclass
class Traced:
    """One task's run: its result (or error), the requests the simulator received meanwhile, and when it ran."""

    result: Any
    error: BaseException | None
    requests: list[AuditEvent]
    started: float
    ended: float

    @property
    def first_request_start(self) -> float:
        return start_of(self.requests[0])

    def updates(self) -> list[AuditEvent]:
        return [e for e in self.requests if e.data.get("endpoint") == "update"]


def start_of(request: AuditEvent) -> float:
    """When the simulator received ``request`` (its audit time is when it answered)."""
    return request.at - float(request.data.get("duration") or 0.0)


def traced(sim: Simulator, task: Any, xcoms: dict[tuple[str, str], Any]) -> Traced:
    """Run ``task`` as its task instance would, keeping its XCom result; an error is kept, not raised."""
    seen = {id(e) for e in sim.audit.events("request")}
    started = time.time()
    result, error = None, None
    try:
        result = task.execute({"run_id": "manual__1", "ti": XComTI(xcoms, task.task_id)})
        xcoms[(task.task_id, "return_value")] = result
    except Exception as exc:
        error = exc
    ended = time.time()
    requests = [e for e in sim.audit.events("request") if id(e) not in seen]
    return Traced(result, error, requests, started, ended)


def target_changes(sim: Simulator) -> list[AuditEvent]:
    return sim.audit.events("target_changed", deployment_id=DEPLOYMENT)


def started_at(sim: Simulator, since: float, until: float) -> float:
    """When the simulator started the last of the allocations added after ``since`` (a new route started, or
    a started route took more allocations)."""
    events = [
        e.at
        for e in sim.audit.events(deployment_id=DEPLOYMENT)
        if since < e.at <= until
        and ((e.kind == "route_state" and e.data.get("state") == "started") or e.kind == "route_allocations")
    ]
    assert events, "the simulator started no allocation after the scale-up"
    return max(events)


def inferred_docs(sim: Simulator, since: float, until: float) -> int:
    """Documents the deployment accepted for inference between two times (audit ``inference`` events)."""
    events = sim.audit.events("inference", deployment_id=DEPLOYMENT, status=200)
    return sum(int(e.data["docs"]) for e in events if since <= e.at <= until)


def docs(count: int, tag: str) -> list[dict[str, str]]:
    """Distinct documents (no inference cache hits)."""
    return [{"text_field": f"{tag} document {i}"} for i in range(count)]


def infer_all(batch: list[dict[str, str]]) -> Callable[[], None]:
    def run() -> None:
        hook = ElasticsearchMLHook()
        for first in range(0, len(batch), 50):
            hook.infer(DEPLOYMENT, batch[first : first + 50])

    return run


class Call:
    """A callable as a task, for work that is not an operator (the test's own inference loop)."""

    def __init__(self, task_id: str, work: Callable[[], None]) -> None:
        self.task_id, self.work = task_id, work

    def execute(self, context: Any) -> None:
        self.work()


def check_window(
    sim: Simulator, capacity: dict[str, Any], opening: Traced, waiting: Traced | None, closing: Traced
) -> tuple[AuditEvent, AuditEvent]:
    """Check held, allocation-seconds and loading against the audit log; return the two target changes."""
    (up_request,) = opening.updates()
    (down_request,) = closing.updates()
    up, down = [e for e in target_changes(sim) if opening.started <= e.at <= closing.ended]
    assert start_of(up_request) <= up.at <= up_request.at and start_of(down_request) <= down.at <= down_request.at
    # the capacity the cluster held: the scale-up's target above the baseline, until the scale-down restored it
    assert (capacity["baseline"], capacity["allocations"]) == (up.data["old"], up.data["new"])
    assert down.data == {**down.data, "old": up.data["new"], "new": up.data["old"]}
    above = up.data["new"] - up.data["old"]
    held = down.at - up.at
    # the window opens between the opening task's first request and the scale-up, and closes in the closing task
    low, high = closing.first_request_start - up.at, closing.ended - opening.first_request_start
    assert low <= held <= high  # the audit's own figure fits the bounds, which are only the provider's requests
    assert low <= capacity["held_seconds"] <= high
    assert capacity["allocation_seconds"] == pytest.approx(above * capacity["held_seconds"], abs=0.01)
    if waiting is None:  # nobody waited for the allocations: their loading time is unknown
        assert capacity["loading_allocation_seconds"] is None
        return up, down
    # loading: from the scale-up until the simulator started the new allocations; the wait sees them after that
    ready = started_at(sim, up.at, waiting.ended)
    loading = capacity["loading_allocation_seconds"]
    assert above * (ready - up.at) <= loading <= above * (waiting.ended - opening.first_request_start)
    return up, down


def check_busy(capacity: dict[str, Any], done: int) -> None:
    """Busy figures against the documents the audit log says the deployment inferred."""
    busy = done * SECONDS_PER_DOC
    assert capacity["deployment_busy_allocation_seconds"] == pytest.approx(busy, rel=1e-3, abs=1e-3)
    share = (capacity["allocations"] - capacity["baseline"]) / capacity["allocations"]
    assert capacity["busy_allocation_seconds"] == pytest.approx(busy * share, rel=1e-3, abs=1e-3)
    assert capacity["utilisation"] == pytest.approx(
        capacity["busy_allocation_seconds"] / capacity["allocation_seconds"], rel=1e-2, abs=1e-3
    )


def test_a_lease_window_matches_the_audit_log(sim: Simulator, stats: mock.MagicMock) -> None:
    sim.cluster.set_infer_seconds_per_doc(SECONDS_PER_DOC)
    infer_all(docs(60, "before the window"))()  # work the window must not count
    xcoms: dict[tuple[str, str], Any] = {}
    opening = traced(sim, AcquireDeploymentLeaseOperator(task_id="acquire", deployment_id=DEPLOYMENT,
                                                         number_of_allocations=4), xcoms)  # fmt: skip
    waiting = traced(sim, AllocationsStartedSensor(task_id="wait", deployment_id=DEPLOYMENT, min_allocations=4,
                                                   poke_interval=0.05, timeout=60), xcoms)  # fmt: skip
    work = traced(sim, Call("infer", infer_all(docs(300, "lease"))), xcoms)
    closing = traced(sim, ReleaseDeploymentLeaseOperator(task_id="release", deployment_id=DEPLOYMENT,
                                                         wait_task_id="wait"), xcoms)  # fmt: skip
    assert opening.error is waiting.error is work.error is closing.error is None
    capacity = closing.result["capacity_usage"]
    check_window(sim, capacity, opening, waiting, closing)
    done = inferred_docs(sim, opening.started, closing.ended)
    assert done == 300
    check_busy(capacity, done)
    assert closing.result["restored"] is True and sim.cluster.target(DEPLOYMENT) == 1


def test_an_update_pair_window_matches_the_audit_log(sim: Simulator, stats: mock.MagicMock) -> None:
    sim.cluster.set_infer_seconds_per_doc(SECONDS_PER_DOC)
    infer_all(docs(60, "before the window"))()  # work the window must not count
    xcoms: dict[tuple[str, str], Any] = {}
    opening = traced(sim, UpdateDeploymentOperator(task_id="up", deployment_id=DEPLOYMENT, number_of_allocations=3,
                                                   wait_for_completion=True, poll_interval=0.05, timeout=60),
                     xcoms)  # fmt: skip
    work = traced(sim, Call("infer", infer_all(docs(200, "pair"))), xcoms)
    closing = traced(sim, UpdateDeploymentOperator(task_id="down", deployment_id=DEPLOYMENT,
                                                   number_of_allocations=1, scale_up_task_id="up"),
                     xcoms)  # fmt: skip
    assert opening.error is work.error is closing.error is None
    capacity = closing.result["capacity_usage"]
    check_window(sim, capacity, opening, opening, closing)  # the scale-up waited itself
    done = inferred_docs(sim, opening.started, closing.ended)
    assert done == 200
    check_busy(capacity, done)
    assert sim.cluster.target(DEPLOYMENT) == 1


def test_a_run_that_fails_half_way_reports_the_part_that_ran(sim: Simulator, stats: mock.MagicMock) -> None:
    sim.cluster.set_infer_seconds_per_doc(SECONDS_PER_DOC)
    infer_all(docs(60, "before the window"))()  # work the window must not count
    xcoms: dict[tuple[str, str], Any] = {}
    opening = traced(sim, AcquireDeploymentLeaseOperator(task_id="acquire", deployment_id=DEPLOYMENT,
                                                         number_of_allocations=4), xcoms)  # fmt: skip
    waiting = traced(sim, AllocationsStartedSensor(task_id="wait", deployment_id=DEPLOYMENT, min_allocations=4,
                                                   poke_interval=0.05, timeout=60), xcoms)  # fmt: skip
    # the batch's 201st document lacks the model's input field: Elasticsearch refuses its request with 400
    batch = [*docs(200, "first half"), {"body": "no input field"}, *docs(200, "second half")]
    inference = BatchInferenceOperator(task_id="infer", deployment_id=DEPLOYMENT, docs=batch, chunk_size=50,
                                       in_flight=1, return_results=False)  # fmt: skip
    work = traced(sim, inference, xcoms)
    closing = traced(sim, ReleaseDeploymentLeaseOperator(task_id="release", deployment_id=DEPLOYMENT,
                                                         wait_task_id="wait"), xcoms)  # fmt: skip
    assert opening.error is waiting.error is closing.error is None
    assert isinstance(work.error, EsmlError)  # the inference task failed half-way
    done = inferred_docs(sim, work.started, work.ended)
    assert 0 < done < len(batch) - 1  # part of the batch ran
    assert inferred_docs(sim, opening.started, closing.ended) == done  # and nothing else in the window
    capacity = closing.result["capacity_usage"]
    check_window(sim, capacity, opening, waiting, closing)
    check_busy(capacity, done)
    # the teardown gave the baseline back
    assert closing.result["restored"] is True and sim.cluster.target(DEPLOYMENT) == 1
    assert target_changes(sim)[-1].data["new"] == 1


def test_a_retried_scale_down_reports_its_window_once(sim: Simulator, stats: mock.MagicMock) -> None:
    xcoms: dict[tuple[str, str], Any] = {}
    opening = traced(sim, UpdateDeploymentOperator(task_id="up", deployment_id=DEPLOYMENT, number_of_allocations=3,
                                                   wait_for_completion=True, poll_interval=0.05, timeout=60),
                     xcoms)  # fmt: skip
    down = UpdateDeploymentOperator(task_id="down", deployment_id=DEPLOYMENT, number_of_allocations=1,
                                    scale_up_task_id="up")  # fmt: skip
    sim.inject_fault(endpoint="update", status=400, times=1)
    failed = traced(sim, down, xcoms)
    assert failed.error is not None and sim.cluster.target(DEPLOYMENT) == 3  # the capacity is still held
    assert not stats.incr.called  # so its window has not ended
    retried = traced(sim, down, xcoms)
    assert retried.error is None and sim.cluster.target(DEPLOYMENT) == 1
    stats.incr.assert_called_once_with("esml.capacity.windows", tags={"deployment_id": DEPLOYMENT})
    # one window, held until the retry's scale-down
    check_window(sim, retried.result["capacity_usage"], opening, opening, retried)


def test_a_renewed_reservation_is_one_window_from_its_first_scale_up(
    sim: Simulator, stats: mock.MagicMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime, timezone

    from airflow_esml.operators import reservation as module
    from airflow_esml.operators.reservation import EndReservationOperator, ReserveDeploymentOperator

    hours = {"start": 8, "end": "18:00", "timezone": "Europe/Amsterdam", "lead_minutes": 30, "weekdays": "1-5"}
    sim.cluster.set_infer_seconds_per_doc(SECONDS_PER_DOC)

    def scheduled(task: Any, hour: int, minute: int = 0) -> Any:
        """``task`` as the run of that time on 2 March 2026 (a Monday) runs it."""
        when = datetime(2026, 3, 2, hour, minute, tzinfo=timezone.utc)
        monkeypatch.setattr(module, "utc_now", lambda: when)

        class Task:
            task_id = task.task_id

            def execute(self, context: dict[str, Any]) -> Any:
                return task.execute({**context, "run_id": f"scheduled__{when.isoformat()}", "logical_date": when})

        return Task()

    xcoms: dict[tuple[str, str], Any] = {}
    reserve = ReserveDeploymentOperator(task_id="reserve", deployment_id=DEPLOYMENT, number_of_allocations=3, **hours)
    opening = traced(sim, scheduled(reserve, 6, 30), xcoms)
    sim.cluster.wait_for(DEPLOYMENT)
    first = traced(sim, Call("infer", infer_all(docs(100, "morning"))), xcoms)
    renewal = traced(sim, scheduled(reserve, 12), xcoms)  # a later run renews the same reservation
    second = traced(sim, Call("infer", infer_all(docs(100, "afternoon"))), xcoms)
    end = EndReservationOperator(task_id="end", deployment_id=DEPLOYMENT, **hours)
    closing = traced(sim, scheduled(end, 17), xcoms)
    assert None is opening.error is first.error is renewal.error is second.error is closing.error
    assert renewal.updates() == []  # the renewal changed nothing in the cluster
    capacity = closing.result["capacity_usage"]
    check_window(sim, capacity, opening, None, closing)  # held from the first run's scale-up, not the renewal's
    done = inferred_docs(sim, opening.started, closing.ended)
    assert done == 200
    check_busy(capacity, done)  # both runs' work, each once
    assert stats.incr.call_count == 1 and sim.cluster.target(DEPLOYMENT) == 1


def test_a_gradual_scale_down_ends_the_window_at_its_first_step(sim: Simulator, stats: mock.MagicMock) -> None:
    xcoms: dict[tuple[str, str], Any] = {}
    opening = traced(sim, UpdateDeploymentOperator(task_id="up", deployment_id=DEPLOYMENT, number_of_allocations=3,
                                                   wait_for_completion=True, poll_interval=0.05, timeout=60),
                     xcoms)  # fmt: skip
    down = UpdateDeploymentOperator(task_id="down", deployment_id=DEPLOYMENT, number_of_allocations=1, max_step=1,
                                    scale_up_task_id="up", poll_interval=0.05, timeout=60)  # fmt: skip
    closing = traced(sim, down, xcoms)
    assert opening.error is closing.error is None
    up, first, last = [e for e in target_changes(sim) if e.at >= opening.started]
    assert [(e.data["old"], e.data["new"]) for e in (up, first, last)] == [(1, 3), (3, 2), (2, 1)]
    capacity = closing.result["capacity_usage"]
    stats.incr.assert_called_once_with("esml.capacity.windows", tags={"deployment_id": DEPLOYMENT})
    # held from before the scale-up until the first step was sent (the window's figures travel with the steps):
    # it closes before the request that follows that step's update (the wait for the step's allocations)
    step = closing.requests.index(closing.updates()[0])
    after_step = start_of(closing.requests[step + 1])
    # and the scale-up opened it after its last request before the update (its stats and capacity reads)
    before_up = opening.requests[opening.requests.index(opening.updates()[0]) - 1].at
    assert first.at - up.at <= capacity["held_seconds"] <= after_step - before_up
