"""IndexTaskTrigger with a fake tasks hook: one event per outcome, a serialize round trip, on_kill."""

from __future__ import annotations

import asyncio
import time
from unittest import mock

import pytest

from airflow_esml.exceptions import TransientRequestError
from airflow_esml.triggers.task import IndexTaskTrigger
from tests.fake_tasks import FakeTasksHook
from tests.helpers import run_trigger


def trigger(**kwargs) -> IndexTaskTrigger:
    values = {"task_id": "node-1:1", "elasticsearch_conn_id": "elasticsearch_default",
              "end_time": time.time() + 30, "poll_interval": 0.01, "progress_interval": 0}  # fmt: skip
    return IndexTaskTrigger(**{**values, **kwargs})


@pytest.fixture
def hook():
    fake = FakeTasksHook(total=100, per_look=25)
    fake._new("reindex", {})
    with mock.patch.object(IndexTaskTrigger, "_hook", return_value=fake):
        yield fake


def test_serialize_round_trip():
    classpath, kwargs = trigger(end_time=123.0).serialize()
    assert classpath == "airflow_esml.triggers.task.IndexTaskTrigger"
    assert IndexTaskTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_success_event_carries_the_final_counts(hook):
    event = run_trigger(trigger())
    assert event["status"] == "success" and event["task_id"] == "node-1:1"
    assert event["progress"]["created"] == 100 and event["progress"]["completed"] is True
    assert hook.tasks["node-1:1"].looks == 4


def test_timeout_event_at_the_absolute_end_time(hook):
    hook.tasks["node-1:1"].per_look = 0
    event = run_trigger(trigger(end_time=time.time() + 0.1))
    assert event["status"] == "timeout" and event["progress"]["completed"] is False


def test_unknown_task_is_an_error_event(hook):
    event = run_trigger(trigger(task_id="node-9:9"))
    assert event["status"] == "error" and "node-9:9" in event["message"]


def test_transient_errors_are_polled_through(hook):
    real = hook.aget_task
    failures = iter([TransientRequestError("503"), TransientRequestError("503")])

    async def flaky(task_id, **kwargs):
        error = next(failures, None)
        if error is not None:
            raise error
        return await real(task_id, **kwargs)

    hook.aget_task = flaky
    assert run_trigger(trigger())["status"] == "success"


def test_on_kill_cancels_the_elasticsearch_task(hook):
    asyncio.run(trigger().on_kill())
    assert ("cancel", {"task_id": "node-1:1"}) in hook.calls
