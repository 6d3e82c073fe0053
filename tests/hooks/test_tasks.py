"""ElasticsearchTasksHook against the simulator: starts, task reads, cancel, and the record of a task."""

from __future__ import annotations

import pytest

from airflow_esml.exceptions import ElasticsearchRequestError, IndexTaskNotFoundError
from airflow_esml.hooks.tasks import ElasticsearchTasksHook, record_id
from tests.helpers import requests_to


@pytest.fixture
def hook(sim):
    with sim.client() as client:
        client.indices.create(index="src")
        operations = [x for i in range(20) for x in ({"index": {"_id": str(i)}}, {"text": f"t{i}"})]
        client.bulk(index="src", refresh=True, operations=operations)
    return ElasticsearchTasksHook()


def test_start_reindex_returns_a_task_that_completes(sim, hook):
    task_id = hook.start_reindex(source={"index": "src", "size": 5}, dest={"index": "dst"}, slices=2)
    for _ in range(200):
        body = hook.get_task(task_id)
        if body["completed"]:
            break
    assert body["completed"] and body["response"]["created"] == 20


def test_a_start_without_an_answer_is_not_retried(sim, hook):
    sim.inject_fault(endpoint="reindex", reset=True, times=1)
    with pytest.raises(ElasticsearchRequestError, match="it may have started a task"):
        hook.start_reindex(source={"index": "src"}, dest={"index": "dst"}, slices=1)
    assert requests_to(sim, "reindex") <= 1


def test_unknown_task(sim, hook):
    with pytest.raises(IndexTaskNotFoundError):
        hook.get_task(f"{sim.cluster.data_node_id}:999999")


def test_the_record_of_a_task_survives_and_long_keys_are_hashed(sim, hook):
    assert hook.recall_task("esml-tasks", "dag/run/task/-1") is None
    hook.remember_task("esml-tasks", "dag/run/task/-1", {"task_id": "n:1"})
    assert hook.recall_task("esml-tasks", "dag/run/task/-1") == {"task_id": "n:1", "key": "dag/run/task/-1"}
    long_key = "d/" + "r" * 600
    assert len(record_id(long_key)) == 64
    hook.remember_task("esml-tasks", long_key, {"task_id": "n:2"})
    assert hook.recall_task("esml-tasks", long_key)["task_id"] == "n:2"
