"""The shared wait of the operators and the sensor: one look, polling in the worker, the trigger, wait-or-defer.

Fake hooks (an object with ``get_deployment``) answer with scripted statuses or errors, so no cluster is needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import BaseOperator, TaskDeferred

from airflow_esml.core.readiness import Verdict, WaitWindow, assess
from airflow_esml.core.status import DeploymentStatus, NodeRoute
from airflow_esml.core.target import Target, trained_model_target
from airflow_esml.exceptions import (
    AllocationsTimeoutError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    ElasticsearchRequestError,
    EsmlError,
    TransientRequestError,
)
from airflow_esml.operators.waiting import (
    AllocationsWaitMixin,
    ProgressLog,
    check_now,
    make_trigger,
    observed,
    wait_in_worker,
)
from airflow_esml.triggers.deployment import AllocationsStartedTrigger

log = logging.getLogger(__name__)


def status(started: int = 1, target: int = 3, state: str | None = "started") -> DeploymentStatus:
    routes = tuple(NodeRoute(f"n{i}", f"node-{i}", "started", allocations=1) for i in range(started))
    allocation_state = "starting" if started == 0 else ("fully_allocated" if started >= target else "started")
    return DeploymentStatus("my-e5", "my-e5", state, target, started, allocation_state, nodes=routes)


class FakeHook:
    """Answers ``get_deployment`` with the scripted results in turn (the last one repeats); errors are raised."""

    def __init__(self, results: Iterable[DeploymentStatus | BaseException]) -> None:
        self.results = list(results)
        self.calls = 0

    def get_deployment(self, deployment_id: str, *, deadline: float | None = None) -> DeploymentStatus:
        assert deployment_id == "my-e5" and deadline is not None  # every look is bounded by its window
        result = self.results[min(self.calls, len(self.results) - 1)]
        self.calls += 1
        if isinstance(result, BaseException):
            raise result
        return result

    def target(self, deployment_id: str) -> Target:
        return trained_model_target(deployment_id)


def window(seconds: float = 30.0) -> WaitWindow:
    return WaitWindow.starting_now(seconds)


# -- check_now ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started", "needed", "expected"),
    [(3, None, "success"), (1, None, "waiting"), (2, 2, "success"), (1, 2, "waiting")],
)
def test_check_now_assesses_the_status(started: int, needed: int | None, expected: str) -> None:
    seen = status(started=started)
    verdict = check_now(FakeHook([seen]), "my-e5", needed, window())
    assert verdict.outcome == expected
    assert verdict.status is seen
    total = 3 if needed is None else needed
    assert verdict.message.startswith(f"my-e5: {started}/{total} allocations started (")
    assert verdict.message.endswith("s of 30s")  # the window's progress


def test_check_now_waits_on_a_transient_error() -> None:
    error = TransientRequestError("stats of deployment 'my-e5': still failing after retries (503 ...)")
    verdict = check_now(FakeHook([error]), "my-e5", None, window())
    assert verdict.outcome == "waiting" and not verdict.done
    assert "still failing after retries" in verdict.message and "will poll again" in verdict.message
    assert verdict.status is None


def test_check_now_fails_on_a_missing_deployment() -> None:
    verdict = check_now(FakeHook([DeploymentNotFoundError("my-e5: no such deployment")]), "my-e5", 2, window())
    assert verdict.outcome == "failed"
    assert verdict.message == "my-e5: no such deployment"


def test_check_now_fails_on_a_failed_deployment() -> None:
    verdict = check_now(FakeHook([status(started=0, state="failed")]), "my-e5", None, window())
    assert verdict.outcome == "failed"
    assert "deployment is failed" in verdict.message


@pytest.mark.parametrize(
    "error",
    [
        ElasticsearchRequestError("stats: authentication failed, check the connection's credentials"),
        ElasticsearchRequestError("stats: TLS verification failed"),
        EsmlError("something else of the provider"),
        RuntimeError("a bug"),
    ],
)
def test_check_now_raises_other_errors_with_their_own_type(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        check_now(FakeHook([error]), "my-e5", None, window())
    assert raised.value is error
    assert type(raised.value) is type(error)  # not turned into a TransientRequestError or a verdict


# -- wait_in_worker -----------------------------------------------------------------------------------


def test_wait_in_worker_polls_until_the_allocations_are_started() -> None:
    hook = FakeHook([status(started=0), TransientRequestError("blip"), status(started=2), status(started=3)])
    verdict = wait_in_worker(hook, "my-e5", None, window(), 0.01, log)
    assert verdict.outcome == "success"
    assert hook.calls == 4
    assert verdict.status is not None and verdict.status.started_allocations == 3


def test_wait_in_worker_times_out_with_the_last_status_within_the_window() -> None:
    last = status(started=1)
    hook = FakeHook([last])
    begin = time.monotonic()
    verdict = wait_in_worker(hook, "my-e5", None, window(0.2), 30.0, log)  # a poll interval far past the window
    elapsed = time.monotonic() - begin
    assert verdict.outcome == "timeout"
    assert verdict.status is last
    assert verdict.message.startswith("timed out after ")
    assert "last seen: my-e5: 1/3 allocations started" in verdict.message
    assert 0.15 <= elapsed < 1.5  # slept to the window's end, not the poll interval
    assert hook.calls >= 2


def test_wait_in_worker_stops_at_once_on_a_failed_deployment() -> None:
    hook = FakeHook([status(started=0, state="failed"), status(started=3)])
    begin = time.monotonic()
    verdict = wait_in_worker(hook, "my-e5", None, window(), 5.0, log)
    assert verdict.outcome == "failed"
    assert hook.calls == 1
    assert time.monotonic() - begin < 1.0


def test_wait_in_worker_stops_at_once_when_the_deployment_disappears() -> None:
    hook = FakeHook([status(started=0), DeploymentNotFoundError("my-e5: gone")])
    verdict = wait_in_worker(hook, "my-e5", None, window(), 0.01, log)
    assert (verdict.outcome, verdict.message, hook.calls) == ("failed", "my-e5: gone", 2)


# -- make_trigger -------------------------------------------------------------------------------------


def test_make_trigger_carries_the_window() -> None:
    wait = WaitWindow(1_000.0, 1_600.0)
    trigger = make_trigger(
        deployment_id="my-e5", elasticsearch_conn_id="es_prod", min_allocations=2, window=wait, poll_interval=0.5
    )
    assert isinstance(trigger, AllocationsStartedTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_esml.triggers.deployment.AllocationsStartedTrigger"
    assert kwargs == {
        "deployment_id": "my-e5",
        "elasticsearch_conn_id": "es_prod",
        "min_allocations": 2,
        "started_at": 1_000.0,
        "end_time": 1_600.0,
        "poll_interval": 0.5,
    }


# -- AllocationsWaitMixin -----------------------------------------------------------------------------


class Task(AllocationsWaitMixin, BaseOperator):
    """The smallest operator that waits with the mixin."""

    def __init__(self, *, hook: FakeHook, deferrable: bool, poll_interval: float = 0.01, **kwargs: Any) -> None:
        super().__init__(task_id="wait", **kwargs)
        self.deployment_id = "my-e5"
        self.elasticsearch_conn_id = "es_test"
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.fake_hook = hook

    @property
    def hook(self) -> Any:  # type: ignore[override]
        return self.fake_hook


@pytest.mark.parametrize("deferrable", [True, False])
def test_wait_or_defer_returns_at_once_when_done_at_the_first_look(deferrable: bool) -> None:
    hook = FakeHook([status(started=3)])
    verdict = Task(hook=hook, deferrable=deferrable).wait_or_defer(None, window(), method_name="m", kwargs={})
    assert verdict.outcome == "success"
    assert hook.calls == 1


def test_wait_or_defer_returns_a_failure_at_once_instead_of_deferring() -> None:
    hook = FakeHook([status(started=0, state="failed")])
    verdict = Task(hook=hook, deferrable=True).wait_or_defer(None, window(), method_name="m", kwargs={})
    assert verdict.outcome == "failed"
    assert hook.calls == 1


def test_wait_or_defer_defers_to_the_trigger_when_deferrable() -> None:
    hook = FakeHook([status(started=1)])
    task = Task(hook=hook, deferrable=True, poll_interval=2.5)
    wait = window(600.0)
    with pytest.raises(TaskDeferred) as deferred:
        task.wait_or_defer(2, wait, method_name="resume_here", kwargs={"result": {"a": 1}})
    assert hook.calls == 1  # one look, then the triggerer polls
    trigger = deferred.value.trigger
    assert isinstance(trigger, AllocationsStartedTrigger)
    assert (trigger.deployment_id, trigger.elasticsearch_conn_id) == ("my-e5", "es_test")
    assert (trigger.min_allocations, trigger.poll_interval) == (2, 2.5)
    assert (trigger.started_at, trigger.end_time) == (wait.started_at, wait.end_time)
    assert deferred.value.method_name == "resume_here"
    assert deferred.value.kwargs == {"result": {"a": 1}}
    timeout = deferred.value.timeout
    assert isinstance(timeout, timedelta)
    assert timeout.total_seconds() == pytest.approx(600 + 60, abs=2)


def test_wait_or_defer_polls_in_the_worker_when_not_deferrable() -> None:
    hook = FakeHook([status(started=0), status(started=1), status(started=2)])
    task = Task(hook=hook, deferrable=False)
    verdict = task.wait_or_defer(2, window(), method_name="never", kwargs={})
    assert verdict.outcome == "success"
    assert hook.calls == 3


def test_wait_or_defer_in_the_worker_times_out() -> None:
    hook = FakeHook([status(started=0)])
    verdict = Task(hook=hook, deferrable=False).wait_or_defer(None, window(0.1), method_name="never", kwargs={})
    assert verdict.outcome == "timeout"


def test_wait_interval_is_the_poll_interval_as_a_float() -> None:
    task = Task(hook=FakeHook([status()]), deferrable=False, poll_interval=3)  # type: ignore[arg-type]
    assert task.wait_interval == 3.0 and isinstance(task.wait_interval, float)


def test_resume_verdict_reads_the_event() -> None:
    seen = status(started=3)
    event = Verdict("success", "my-e5: 3/3 allocations started", seen).to_event()
    verdict = Task(hook=FakeHook([seen]), deferrable=True).resume_verdict(event)
    assert verdict == Verdict("success", "my-e5: 3/3 allocations started", seen)


@pytest.mark.parametrize("event", [None, {}, {"status": "waiting", "message": "?"}])
def test_resume_verdict_of_a_malformed_event_is_a_failure(event: dict[str, Any] | None) -> None:
    verdict = Task(hook=FakeHook([status()]), deferrable=True).resume_verdict(event)
    assert verdict.outcome == "failed"
    assert "unexpected event" in verdict.message


def test_wait_for_allocations_returns_the_final_status_or_raises() -> None:
    task = Task(hook=FakeHook([status(started=0), status(started=3)]), deferrable=False)
    task.timeout = 5.0
    assert task.wait_for_allocations(None, kwargs={})["started_allocations"] == 3
    stuck = Task(hook=FakeHook([status(started=0)]), deferrable=False)
    stuck.timeout = 0.1
    with pytest.raises(AllocationsTimeoutError, match="timed out after"):
        stuck.wait_for_allocations(None, kwargs={})
    failed = Task(hook=FakeHook([status(started=0, state="failed")]), deferrable=False)
    failed.timeout = 5.0
    with pytest.raises(DeploymentFailedError, match="deployment is failed"):
        failed.wait_for_allocations(None, kwargs={})


def test_wait_for_allocations_defers_to_execute_complete_with_the_kwargs() -> None:
    task = Task(hook=FakeHook([status(started=1)]), deferrable=True)
    task.timeout = 60.0
    with pytest.raises(TaskDeferred) as deferred:
        task.wait_for_allocations(3, kwargs={"result": {"a": 1}})
    assert deferred.value.method_name == "execute_complete" and deferred.value.kwargs == {"result": {"a": 1}}


def test_resumed_status_raises_the_task_s_own_timeout_error() -> None:
    class SensorLike(Task):
        timeout_error = RuntimeError

    seen = status(started=3)
    task = SensorLike(hook=FakeHook([seen]), deferrable=True)
    assert task.resumed_status(Verdict("success", "ok", seen).to_event()) == seen.to_dict()
    with pytest.raises(RuntimeError, match="late"):
        task.resumed_status(Verdict("timeout", "late", seen).to_event())
    with pytest.raises(DeploymentFailedError, match="gone"):
        task.resumed_status(Verdict("failed", "gone").to_event())


def test_wait_in_worker_keeps_the_last_status_through_transient_errors() -> None:
    seen = status(started=1)
    hook = FakeHook([seen, TransientRequestError("stats of deployment 'my-e5': still failing after retries")])
    verdict = wait_in_worker(hook, "my-e5", None, window(0.2), 0.05, log)
    assert verdict.outcome == "timeout" and hook.calls >= 2
    assert verdict.status is seen  # the error's verdict carried the status seen before it


# -- one log line per change -------------------------------------------------------------------------


def info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The messages logged by this module's logger; none may be above INFO."""
    records = [r for r in caplog.records if r.name == log.name]
    assert [r for r in records if r.levelno > logging.INFO] == []
    return [r.getMessage() for r in records]


def test_observed_ignores_the_elapsed_time_only() -> None:
    seen = status(started=1)
    early, late = (assess(seen, progress=WaitWindow(0.0, 600.0).progress(now=t)) for t in (3.0, 41.0))
    short = assess(seen, progress=WaitWindow(0.0, 2.0).progress(now=0.4))  # tenths under ten seconds
    assert early.message != late.message
    assert observed(early) == observed(late) == observed(short) == ("waiting", early.message.split(", 3s")[0])
    assert observed(early) != observed(assess(status(started=2), progress="3s of 600s"))
    assert observed(early) != observed(Verdict("timeout", early.message, seen))


def test_wait_in_worker_logs_a_line_per_change_not_per_poll(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    looks = [status(started=0)] * 3 + [status(started=1)] * 3 + [status(started=3)]
    hook = FakeHook(looks)
    verdict = wait_in_worker(hook, "my-e5", None, window(), 0.01, log)
    assert verdict.outcome == "success" and hook.calls == 7
    lines = info_lines(caplog)
    assert [line.split(" (")[0] for line in lines] == [
        "my-e5: 0/3 allocations started",
        "my-e5: 1/3 allocations started",
        "my-e5: 3/3 allocations started",
    ], lines


def test_wait_in_worker_logs_a_node_change_and_an_error_that_comes_and_goes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    starting = DeploymentStatus(
        "my-e5", "my-e5", "started", 3, 1, "started",
        nodes=(NodeRoute("n0", "node-0", "started", allocations=1), NodeRoute("n1", "node-1", "starting")),
    )  # fmt: skip
    blip = TransientRequestError("stats of deployment 'my-e5': 503 after retries")
    hook = FakeHook([status(started=1), starting, starting, blip, blip, starting, status(started=3)])
    wait_in_worker(hook, "my-e5", None, window(), 0.01, log)
    lines = info_lines(caplog)
    assert len(lines) == 5, lines  # the same count, a new route, the error, the route again, the end
    assert "node-1 starting" in lines[1] and "503 after retries" in lines[2] and "node-1 starting" in lines[3]
    assert lines[4].startswith("my-e5: 3/3 allocations started")


def test_wait_in_worker_logs_its_timeout_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    hook = FakeHook([status(started=1)])
    wait_in_worker(hook, "my-e5", None, window(0.3), 0.02, log)
    lines = info_lines(caplog)
    assert hook.calls >= 5
    assert len(lines) == 2 and lines[1].startswith("timed out after "), lines


class LoggingTask(Task):
    """The wait's operator, logging to this module's logger."""

    @property
    def log(self) -> Any:  # type: ignore[override]
        return log


def test_wait_or_defer_in_the_worker_logs_each_change_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    hook = FakeHook([status(started=0), status(started=0), status(started=1), status(started=1), status(started=2)])
    verdict = LoggingTask(hook=hook, deferrable=False).wait_or_defer(2, window(), method_name="never", kwargs={})
    assert verdict.outcome == "success"
    lines = info_lines(caplog)
    assert [line.split(" (")[0] for line in lines] == [
        "my-e5: 0/2 allocations started",
        "my-e5: 1/2 allocations started",
        "my-e5: 2/2 allocations started",  # the end, logged once
    ], lines


def test_progress_log_logs_only_changes() -> None:
    messages: list[str] = []

    class Recorder:
        def info(self, fmt: str, *args: Any) -> None:
            messages.append(fmt % args)

    progress = ProgressLog(Recorder())
    first, again = Verdict("waiting", "my-e5: 0/2, 1s of 9.0s"), Verdict("waiting", "my-e5: 0/2, 2s of 9.0s")
    assert [progress(first), progress(again), progress(Verdict("success", "my-e5: 2/2"))] == [True, False, True]
    assert messages == ["my-e5: 0/2, 1s of 9.0s", "my-e5: 2/2"]
