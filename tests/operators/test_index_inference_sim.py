"""IndexInferenceOperator against the simulator: a pipeline with an inference processor, semantic_text,
a retry that re-attaches to its Elasticsearch task, and on_kill."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_esml.exceptions import IndexTaskError
from airflow_esml.operators.index_inference import IndexInferenceOperator
from tests.helpers import requests_to

EMBED = {"model_id": "my-e5", "input_output": [{"input_field": "text", "output_field": "embedding"}]}
PIPELINE = {"processors": [{"inference": EMBED}]}


class TI(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def context(try_number: int = 1) -> dict:
    return {"run_id": "manual__1", "ti": TI(try_number=try_number, map_index=-1)}


@pytest.fixture
def es(sim):
    with sim.client() as client:
        client.ingest.put_pipeline(id="e5-embed", body=PIPELINE)
        client.indices.create(index="docs")
        client.bulk(operations=[x for i in range(60) for x in ({"index": {"_index": "docs", "_id": str(i)}},
                                                               {"text": f"document {i}"})], refresh=True)  # fmt: skip
        yield client


def op(**kwargs: Any) -> IndexInferenceOperator:
    kwargs.setdefault("deployment_id", "my-e5")
    return IndexInferenceOperator(task_id="embed", source_index="docs", poll_interval=0.05, **kwargs)


def test_reindex_through_the_pipeline_embeds_every_document(sim, es):
    sim.cluster.update_deployment("my-e5", number_of_allocations=2)
    sim.cluster.wait_for("my-e5")
    result = op(dest_index="docs-embedded", pipeline="e5-embed").execute(context())
    assert result["progress"]["total"] == 60 and result["progress"]["created"] == 60
    assert result["progress"]["failure_count"] == 0
    assert result["batch_plan"]["slices"] == 2
    es.indices.refresh(index="docs-embedded")
    assert es.count(index="docs-embedded")["count"] == 60
    assert "embedding" in es.get(index="docs-embedded", id="7")["_source"]
    assert requests_to(sim, "reindex") == 1


def test_update_by_query_in_place_through_the_pipeline(sim, es):
    result = op(pipeline="e5-embed", batch_size=10).execute(context())
    assert result["mode"] == "update_by_query" and result["progress"]["updated"] == 60
    assert "embedding" in es.get(index="docs", id="3")["_source"]


def test_a_retry_re_attaches_to_its_elasticsearch_task(sim, es):
    slow = {"dest_index": "docs-embedded", "pipeline": "e5-embed", "deferrable": True, "requests_per_second": 1,
            "batch_size": 5}  # fmt: skip
    with pytest.raises(TaskDeferred) as first:
        op(**slow).execute(context(try_number=1))
    retry = op(**slow)
    with pytest.raises(TaskDeferred) as second:  # the first try's worker died while deferred
        retry.execute(context(try_number=2))
    assert second.value.trigger.es_task_id == first.value.trigger.es_task_id
    assert requests_to(sim, "reindex") == 1  # one _reindex in the audit log
    retry.on_kill()


def test_on_kill_cancels_the_task_in_the_cluster(sim, es):
    task = op(dest_index="docs-embedded", pipeline="e5-embed", deferrable=True, requests_per_second=5,
              batch_size=5)  # fmt: skip
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    task.on_kill()
    task_id = deferred.value.trigger.es_task_id
    deadline = time.monotonic() + 10
    while not (answer := es.tasks.get(task_id=task_id).body)["completed"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer["completed"] is True
    assert answer["task"]["cancelled"] is True or answer["response"].get("canceled")


def test_into_semantic_text_without_a_pipeline(sim, es):
    # semantic_text names an inference endpoint, here one attached to the my-e5 deployment
    sim.create_endpoint("my-e5-endpoint", deployment_id="my-e5")
    semantic = {"type": "semantic_text", "inference_id": "my-e5-endpoint"}
    es.indices.create(index="docs-semantic", mappings={"properties": {"text": semantic}})
    result = op(dest_index="docs-semantic", deployment_id="my-e5-endpoint").execute(context())
    assert result["pipeline"] is None and result["progress"]["created"] == 60
    assert result["progress"]["failure_count"] == 0
    ingest = [e for e in sim.audit.events("inference") if e.data.get("via") == "ingest"]
    assert sum(e.data.get("docs", 0) for e in ingest) >= 60  # every document inferred inside the cluster


def test_a_refused_start_is_retried_and_starts_one_task(sim, es):
    sim.inject_fault(endpoint="reindex", status=429, times=1)
    result = op(dest_index="docs-embedded", pipeline="e5-embed").execute(context())
    assert result["progress"]["created"] == 60
    es.indices.refresh(index=".tasks")
    assert es.count(index=".tasks")["count"] == 1  # one task ran, though two start requests were sent


def test_per_document_failures_from_the_task_result(sim, es):
    es.index(index="docs", id="no-text", document={"title": "no text field"}, refresh=True)
    with pytest.raises(IndexTaskError, match=r"document failure.*no-text: 400 .*Input field \[text\] does not exist"):
        op(dest_index="docs-embedded", pipeline="e5-embed").execute(context())
    result = op(dest_index="docs-embedded-2", pipeline="e5-embed", on_document_failure="warn").execute(context(2))
    assert result["progress"]["failure_count"] >= 1
    assert result["progress"]["failures"][0]["id"] == "no-text"
