"""``_reindex``, ``_update_by_query`` and ``_tasks`` on the simulator, through the real client."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import elasticsearch
import pytest

from airflow_esml.testing import Simulator


@pytest.fixture
def es(simulator: Simulator) -> Iterator[elasticsearch.Elasticsearch]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tasks API is "technical preview" in the client
        with simulator.client() as client:
            yield client


def fill(es: elasticsearch.Elasticsearch, index: str, count: int) -> None:
    es.indices.create(index=index)
    for i in range(count):
        es.index(index=index, id=str(i), document={"text": f"document {i}", "n": i})


def wait_done(es: elasticsearch.Elasticsearch, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = es.tasks.get(task_id=task_id).body
        if answer["completed"]:
            return answer
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not complete")


def test_reindex_synchronous_counts(es: elasticsearch.Elasticsearch) -> None:
    fill(es, "src", 25)
    answer = es.reindex(source={"index": "src", "size": 10}, dest={"index": "dst"})
    assert (answer["total"], answer["created"], answer["updated"], answer["batches"]) == (25, 25, 0, 3)
    assert answer["failures"] == [] and answer["requests_per_second"] == -1.0
    assert es.count(index="dst")["count"] == 25
    again = es.reindex(source={"index": "src"}, dest={"index": "dst"}, max_docs=5)
    assert (again["total"], again["created"], again["updated"]) == (5, 0, 5)


def test_reindex_task_with_slices_completes_and_is_kept(es: elasticsearch.Elasticsearch, simulator: Simulator) -> None:
    fill(es, "src", 40)
    task_id = es.reindex(
        source={"index": "src", "size": 5}, dest={"index": "dst"}, wait_for_completion=False, slices=4
    )["task"]
    assert task_id.startswith(simulator.cluster.data_node_id + ":")
    done = wait_done(es, task_id)
    status, response = done["task"]["status"], done["response"]
    assert done["task"]["action"] == "indices:data/write/reindex"
    assert done["task"]["description"] == "reindex from [src] to [dst]"
    assert (response["total"], response["created"], status["created"]) == (40, 40, 40)
    assert [s["slice_id"] for s in response["slices"]] == [0, 1, 2, 3]
    assert sum(s["total"] for s in response["slices"]) == 40
    assert es.get(index=".tasks", id=task_id)["_source"]["completed"] is True
    assert es.count(index="dst")["count"] == 40


def test_running_task_status_then_cancel(es: elasticsearch.Elasticsearch) -> None:
    fill(es, "src", 30)
    task_id = es.update_by_query(
        index="src", scroll_size=5, requests_per_second=5, wait_for_completion=False, conflicts="proceed"
    )["task"]
    running = es.tasks.get(task_id=task_id)
    assert running["completed"] is False
    status = running["task"]["status"]
    assert status["total"] == 30 and status["requests_per_second"] == 5.0
    assert set(status) >= {"updated", "created", "deleted", "batches", "version_conflicts", "noops"}
    listed = es.tasks.list(actions="*byquery", detailed=True)
    assert task_id in next(iter(listed["nodes"].values()))["tasks"]
    cancelled = es.tasks.cancel(task_id=task_id, wait_for_completion=True)
    assert next(iter(cancelled["nodes"].values()))["tasks"][task_id]["cancelled"] is True
    done = wait_done(es, task_id)
    assert done["response"]["canceled"] == "by user request"
    assert done["response"]["updated"] < 30


def test_sliced_leader_reports_finished_slices_only(es: elasticsearch.Elasticsearch) -> None:
    fill(es, "src", 20)
    task_id = es.update_by_query(
        index="src", scroll_size=1, slices=2, requests_per_second=2, wait_for_completion=False
    )["task"]
    running = es.tasks.get(task_id=task_id)["task"]["status"]
    assert running["slices"] == [None, None] and running["total"] == 0
    children = es.tasks.list(parent_task_id=task_id, group_by="none")["tasks"]
    assert len(children) == 2 and all(c["parent_task_id"] == task_id for c in children)
    es.tasks.cancel(task_id=task_id, wait_for_completion=True)
    assert wait_done(es, task_id)["response"]["canceled"] == "by user request"


def test_unknown_and_malformed_task_ids(es: elasticsearch.Elasticsearch) -> None:
    with pytest.raises(elasticsearch.NotFoundError) as missing:
        es.tasks.get(task_id="abc:1")
    assert missing.value.body["error"]["reason"] == "task [abc:1] isn't running and hasn't stored its results"
    with pytest.raises(elasticsearch.BadRequestError, match="malformed task id nope"):
        es.tasks.get(task_id="nope")
    failures = es.tasks.cancel(task_id="abc:1")["node_failures"]
    assert failures[0]["caused_by"]["reason"] == "task [abc:1] is not found"


def test_synchronous_task_not_kept(es: elasticsearch.Elasticsearch) -> None:
    fill(es, "src", 3)
    es.reindex(source={"index": "src"}, dest={"index": "dst"})
    assert not es.indices.exists(index=".tasks")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slices": 0}, r"\[slices\] must be at least 1, was \[0\]"),
        ({"requests_per_second": 0}, r"\[requests_per_second\] must be a float greater than 0"),
        ({"conflicts": "ignore"}, r'conflicts may only be "proceed" or "abort" but was \[ignore\]'),
    ],
)
def test_bad_parameters_refused_before_a_task(
    es: elasticsearch.Elasticsearch, kwargs: dict[str, Any], message: str
) -> None:
    fill(es, "src", 1)
    with pytest.raises(elasticsearch.BadRequestError, match=message):
        es.update_by_query(index="src", wait_for_completion=False, **kwargs)
    assert es.tasks.list()["nodes"] == {}


def test_reindex_validation(es: elasticsearch.Elasticsearch) -> None:
    fill(es, "src", 1)
    with pytest.raises(elasticsearch.BadRequestError, match="reindex cannot write into an index its reading from"):
        es.reindex(source={"index": "src"}, dest={"index": "src"})
    with pytest.raises(elasticsearch.BadRequestError, match="Batch size is too large"):
        es.reindex(source={"index": "src", "size": 20000}, dest={"index": "d"})
    with pytest.raises(elasticsearch.NotFoundError, match="no such index"):
        es.reindex(source={"index": "missing"}, dest={"index": "d"})
    task_id = es.reindex(source={"index": "missing"}, dest={"index": "d"}, wait_for_completion=False)["task"]
    assert wait_done(es, task_id)["error"]["type"] == "index_not_found_exception"


def test_version_conflicts_abort_or_proceed(es: elasticsearch.Elasticsearch) -> None:
    fill(es, "src", 4)
    es.reindex(source={"index": "src"}, dest={"index": "dst"}, max_docs=2)
    with pytest.raises(elasticsearch.ConflictError) as aborted:
        es.reindex(source={"index": "src", "size": 1}, dest={"index": "dst", "op_type": "create"})
    assert aborted.value.body["failures"][0]["cause"]["type"] == "version_conflict_engine_exception"
    assert aborted.value.body["version_conflicts"] == 1 and es.count(index="dst")["count"] == 2
    proceed = es.reindex(source={"index": "src"}, dest={"index": "dst", "op_type": "create"}, conflicts="proceed")
    assert (proceed["created"], proceed["version_conflicts"], proceed["failures"]) == (2, 2, [])


def test_stop_joins_running_tasks() -> None:
    sim = Simulator(load_seconds=0.05, seed=3).start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = sim.client()
        fill(es, "src", 10)
        es.update_by_query(index="src", scroll_size=1, requests_per_second=1, wait_for_completion=False)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2
    assert sim.tasks.running() == []
