"""IndexInferenceOperator with a fake tasks hook: sizing, waiting, failures, retries, cancellation."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_esml.exceptions import IndexTaskError, IndexTaskTimeoutError, InvalidParameterError
from airflow_esml.operators.index_inference import IndexInferenceOperator
from airflow_esml.triggers.task import IndexTaskTrigger
from tests.fake_tasks import FakeTasksHook, status


class TI(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(try_number: int = 1) -> dict:
    return {"run_id": "manual__1", "ti": TI(try_number=try_number, map_index=-1, pushed={})}


def op(hook: FakeTasksHook, **kwargs: Any) -> IndexInferenceOperator:
    kwargs.setdefault("source_index", "docs")
    kwargs.setdefault("deployment_id", "my-e5")
    task = IndexInferenceOperator(task_id="embed", poll_interval=0.01, progress_interval=0, **kwargs)
    task.__dict__["hook"] = hook
    return task


def test_reindex_through_a_pipeline_sized_from_the_deployment():
    hook = FakeTasksHook(status(allocations=4, threads=2, queue=1024), total=100, per_look=30)
    ctx = context()
    result = op(hook, dest_index="docs-embedded", pipeline="e5-embed").execute(ctx)
    kind, call = hook.calls[0]
    assert kind == "reindex"
    assert call["slices"] == 8 and call["source"] == {"index": "docs", "size": 128}
    assert call["dest"] == {"index": "docs-embedded", "pipeline": "e5-embed"}
    assert result["mode"] == "reindex" and result["batch_plan"]["slices"] == 8
    assert result["progress"]["created"] == 100 and result["progress"]["total"] == 100
    assert ctx["ti"].pushed["es_task_id"] == result["task_id"] == "node-1:1"


def test_update_by_query_in_place_into_semantic_text_with_overrides():
    hook = FakeTasksHook()
    result = op(hook, query={"term": {"lang": "en"}}, slices="2", batch_size="50", max_docs=80).execute(context())
    kind, call = hook.calls[0]
    assert kind == "update_by_query" and call["index"] == "docs" and call["pipeline"] is None
    assert call["slices"] == 2 and call["scroll_size"] == 50 and call["max_docs"] == 80
    assert call["query"] == {"term": {"lang": "en"}}
    assert result["mode"] == "update_by_query"


FAILURE = {"index": "docs-embedded", "id": "7", "status": 429,
           "cause": {"type": "status_exception", "reason": "inference process queue is full"}}  # fmt: skip


def test_document_failures_fail_the_task_with_elasticsearchs_reason():
    hook = FakeTasksHook(failures=[FAILURE])
    with pytest.raises(IndexTaskError, match=r"1 document failure.*docs-embedded/7: 429 .*queue is full"):
        op(hook, dest_index="docs-embedded").execute(context())


def test_document_failures_only_warn_when_asked():
    hook = FakeTasksHook(failures=[FAILURE])
    result = op(hook, dest_index="docs-embedded", on_document_failure="warn").execute(context())
    assert result["progress"]["failure_count"] == 1
    assert result["progress"]["failures"][0]["reason"].endswith("inference process queue is full")


def test_deferrable_defers_to_the_task_trigger_and_resumes():
    hook = FakeTasksHook(total=1000, per_look=10)
    task = op(hook, dest_index="out", deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, IndexTaskTrigger) and trigger.es_task_id == "node-1:1"
    result = deferred.value.kwargs["result"]
    progress = {"task_id": "node-1:1", "completed": True, "total": 1000, "created": 1000}
    done = task.execute_complete(context(), {"status": "success", "task_id": "node-1:1", "progress": progress}, result)
    assert done["progress"]["done"] == 1000 and done["task_id"] == "node-1:1"


def test_a_retry_resumes_on_the_same_elasticsearch_task():
    hook = FakeTasksHook(total=1000, per_look=10)
    with pytest.raises(TaskDeferred):
        op(hook, dest_index="out", deferrable=True).execute(context(try_number=1))
    with pytest.raises(TaskDeferred) as again:  # the worker died; the retry finds the task still running
        op(hook, dest_index="out", deferrable=True).execute(context(try_number=2))
    assert hook.starts() == 1
    assert again.value.trigger.es_task_id == "node-1:1"


def test_a_retry_after_a_failed_task_starts_a_new_one():
    hook = FakeTasksHook(failures=[FAILURE])
    with pytest.raises(IndexTaskError):
        op(hook, dest_index="out").execute(context(try_number=1))
    hook.failures = None
    result = op(hook, dest_index="out").execute(context(try_number=2))
    assert hook.starts() == 2 and result["task_id"] == "node-1:2"


def test_a_retry_after_success_does_not_run_the_batch_again():
    hook = FakeTasksHook()
    op(hook, dest_index="out").execute(context(try_number=1))
    result = op(hook, dest_index="out").execute(context(try_number=2))
    assert hook.starts() == 1 and result["progress"]["created"] == 100


def test_on_kill_cancels_the_elasticsearch_task():
    hook = FakeTasksHook(total=10**6, per_look=1)
    task = op(hook, dest_index="out", deferrable=True)
    with pytest.raises(TaskDeferred):
        task.execute(context())
    task.on_kill()
    assert ("cancel", {"task_id": "node-1:1"}) in hook.calls


def test_a_wait_past_the_timeout_cancels_and_fails():
    hook = FakeTasksHook(total=10**6, per_look=1)
    with pytest.raises(IndexTaskTimeoutError, match=r"node-1:1 did not end within 0s .*; cancelled it"):
        op(hook, dest_index="out", timeout=0.05).execute(context())
    assert ("cancel", {"task_id": "node-1:1"}) in hook.calls


def test_a_cancelled_task_fails():
    hook = FakeTasksHook()
    task = op(hook, dest_index="out")
    with pytest.raises(IndexTaskError, match="was cancelled"):
        task.execute_complete(context(), {"status": "success", "task_id": "n:1", "progress": {
            "task_id": "n:1", "completed": True, "cancelled": "by user request"}}, {})  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dest_index": "docs"}, "dest_index must differ from source_index"),
        ({"deployment_id": None, "slices": 2}, "deployment_id is needed"),
        ({"on_document_failure": "ignore"}, "on_document_failure must be one of"),
        ({"conflicts": "skip"}, "conflicts must be one of"),
        ({"slices": "0"}, "slices"),
        ({"query": "[1, 2]"}, "query must be"),
        ({"requests_per_second": "0"}, "requests_per_second"),
    ],
)
def test_bad_parameters_are_refused_before_anything_starts(kwargs, message):
    hook = FakeTasksHook()
    with pytest.raises(InvalidParameterError, match=message):
        op(hook, **kwargs).execute(context())
    assert hook.calls == []


def test_a_deployment_without_started_allocations_is_refused():
    hook = FakeTasksHook(status(allocations=0))
    with pytest.raises(IndexTaskError, match="no allocation is started"):
        op(hook, dest_index="out").execute(context())
    assert hook.starts() == 0


def test_resume_without_the_defer_kwargs_rebuilds_the_result():
    hook = FakeTasksHook(total=1000, per_look=10)
    task = op(hook, dest_index="out", deferrable=True)
    with pytest.raises(TaskDeferred):
        task.execute(context())
    progress = {"task_id": "node-1:1", "completed": True, "total": 1000, "created": 1000}
    done = task.execute_complete(context(), {"status": "success", "task_id": "node-1:1", "progress": progress})
    assert done["task_id"] == "node-1:1" and done["mode"] == "reindex" and done["batch_plan"]["slices"] == 4
