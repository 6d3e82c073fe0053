"""Batch inference inside the simulated cluster: ``_reindex``/``_update_by_query`` through an inference pipeline
and into ``semantic_text``, sharing the deployment's allocations x threads x queue with ``_infer``."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from tests.testing.ml_helpers import raw

PIPELINE = [{"inference": {"model_id": "my-e5", "input_output": [{"input_field": "text", "output_field": "vec"}]}}]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(load_seconds=0.05, seed=11, infer_seconds_per_doc=0.01) as simulator:
        yield simulator


@pytest.fixture
def es(sim: Simulator) -> Iterator[elasticsearch.Elasticsearch]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tasks API is "technical preview" in the client
        with sim.client() as client:
            yield client


def fill(es: elasticsearch.Elasticsearch, index: str, count: int, **mappings: Any) -> None:
    es.indices.create(index=index, mappings=mappings or None)
    operations = [x for i in range(count) for x in ({"index": {"_id": str(i)}}, {"text": f"document number {i}"})]
    es.bulk(index=index, operations=operations)


def node_stats(es: elasticsearch.Elasticsearch, deployment_id: str = "my-e5") -> list[dict[str, Any]]:
    entry = es.ml.get_trained_models_stats(model_id=deployment_id)["trained_model_stats"][0]
    return list(entry["deployment_stats"]["nodes"])


def test_sliced_reindex_through_inference_pipeline(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    sim.start_deployment("my-e5", number_of_allocations=1, wait=True)
    sim.cluster.set_infer_seconds_per_doc(0.05)  # 3 s of work: long enough to watch it progress
    fill(es, "src", 60)
    es.ingest.put_pipeline(id="embed", processors=PIPELINE)
    task_id = es.reindex(
        source={"index": "src", "size": 5},
        dest={"index": "dst", "pipeline": "embed"},
        slices=2,
        wait_for_completion=False,
    )["task"]
    created_seen, pending_seen = set(), 0
    deadline = time.monotonic() + 15
    while not (answer := es.tasks.get(task_id=task_id).body)["completed"]:
        assert time.monotonic() < deadline, "the reindex did not finish"
        children = es.tasks.list(parent_task_id=task_id, group_by="none", detailed=True)["tasks"]
        created_seen.add(sum(child["status"]["created"] for child in children))
        pending_seen = max(pending_seen, sum(n["number_of_pending_requests"] for n in node_stats(es)))
        time.sleep(0.02)
    response = answer["response"]
    assert (response["total"], response["created"], response["failures"]) == (60, 60, [])
    assert [s["slice_id"] for s in response["slices"]] == [0, 1]
    assert response["batches"] == sum(s["batches"] for s in response["slices"]) >= 12
    assert len(created_seen - {0, 60}) >= 1, f"no progress seen between 0 and 60: {created_seen}"
    assert pending_seen > 0
    assert es.count(index="dst", query={"exists": {"field": "vec"}})["count"] == 60
    nodes = node_stats(es)
    assert sum(n["inference_count"] for n in nodes) == 60
    assert all(n["average_inference_time_ms"] == pytest.approx(50.0) for n in nodes if n["inference_count"])
    assert sum(e.data["docs"] for e in sim.audit.events("inference", via="ingest", status=200)) == 60


def test_update_by_query_in_place(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    sim.start_deployment("my-e5", number_of_allocations=2, wait=True)
    fill(es, "docs", 20)
    es.ingest.put_pipeline(id="embed", processors=PIPELINE)
    answer = es.update_by_query(index="docs", pipeline="embed", scroll_size=7, refresh=True)
    assert (answer["total"], answer["updated"], answer["batches"], answer["failures"]) == (20, 20, 3, [])
    assert "created" not in answer
    assert es.count(index="docs", query={"exists": {"field": "vec"}})["count"] == 20
    assert sum(n["inference_count"] for n in node_stats(es)) == 20


def test_full_queue_fails_documents_and_stops_the_reindex(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    sim.start_deployment("my-e5", number_of_allocations=1, queue_capacity=5, wait=True)
    fill(es, "src", 40)
    es.ingest.put_pipeline(id="embed", processors=PIPELINE)
    task_id = es.reindex(
        source={"index": "src", "size": 20}, dest={"index": "dst", "pipeline": "embed"}, wait_for_completion=False
    )["task"]
    response = es.tasks.get(task_id=task_id, wait_for_completion=True, timeout="10s")["response"]
    # one worker takes a document, five wait: the other 14 of the first batch are rejected, and the reindex stops
    assert (response["batches"], response["created"]) == (1, 6)
    assert len(response["failures"]) == 14
    failure = response["failures"][0]
    assert failure["status"] == 429 and failure["index"] == "dst"
    assert failure["cause"]["reason"] == "inference process queue is full. Unable to execute command"
    stats = es.ml.get_trained_models_stats(model_id="my-e5")["trained_model_stats"][0]
    assert stats["inference_stats"]["failure_count"] == 14
    assert sum(n["rejected_execution_count"] for n in stats["deployment_stats"]["nodes"]) == 14


def test_full_queue_with_on_failure_indexes_every_document(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    sim.start_deployment("my-e5", number_of_allocations=1, queue_capacity=5, wait=True)
    fill(es, "src", 20)
    handler = [{"set": {"field": "failure", "value": "{{ _ingest.on_failure_message }}"}}]
    es.ingest.put_pipeline(id="embed", processors=PIPELINE, on_failure=handler)
    answer = es.reindex(source={"index": "src", "size": 20}, dest={"index": "dst", "pipeline": "embed"}, refresh=True)
    assert (answer["created"], answer["failures"]) == (20, [])
    assert es.count(index="dst", query={"exists": {"field": "failure"}})["count"] == 14


def test_cancel_stops_between_batches(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    sim.start_deployment("my-e5", number_of_allocations=1, wait=True)
    fill(es, "src", 200)
    es.ingest.put_pipeline(id="embed", processors=PIPELINE)
    task_id = es.reindex(
        source={"index": "src", "size": 10}, dest={"index": "dst", "pipeline": "embed"}, wait_for_completion=False
    )["task"]
    time.sleep(0.15)
    es.tasks.cancel(task_id=task_id)
    response = es.tasks.get(task_id=task_id, wait_for_completion=True, timeout="10s")["response"]
    assert response["canceled"] == "by user request"
    assert 0 < response["created"] < 200 and response["created"] % 10 == 0
    assert sum(n["inference_count"] for n in node_stats(es)) == response["created"]


@pytest.mark.parametrize(("version", "legacy"), [("9.5.1", False), ("8.17.0", True)])
def test_semantic_text_infers_through_the_endpoint(version: str, legacy: bool) -> None:
    compat = int(version[0])
    with Simulator(load_seconds=0.05, seed=5, infer_seconds_per_doc=0.001, es_version=version) as sim:
        sim.create_endpoint("my-endpoint", "my-e5")
        es = sim.client()
        mappings = {"properties": {"body": {"type": "semantic_text", "inference_id": "my-endpoint"}}}
        raw(es, "PUT", "/sem", body={"mappings": mappings}, compat=compat)
        text = " ".join(f"w{i}" for i in range(300))
        raw(es, "PUT", "/sem/_doc/1", body={"body": text}, compat=compat)
        source = raw(es, "GET", "/sem/_doc/1", compat=compat)["_source"]
        if legacy:
            inference = source["body"]["inference"]
            assert source["body"]["text"] == text
            chunks = inference["chunks"]
            assert chunks[0]["text"].startswith("w0 ") and len(chunks) == 2
        else:
            assert source == {"body": text}
            hits = raw(es, "POST", "/sem/_search", body={"fields": ["_inference_fields"]}, compat=compat)["hits"]
            inference = hits["hits"][0]["fields"]["_inference_fields"][0]["body"]["inference"]
            chunks = inference["chunks"]["body"]
            assert (chunks[0]["start_offset"], chunks[1]["end_offset"]) == (0, len(text))
        assert inference["inference_id"] == "my-endpoint"
        assert inference["model_settings"]["task_type"] == "text_embedding"
        assert len(chunks[0]["embeddings"]) == inference["model_settings"]["dimensions"]
        stats = raw(es, "GET", "/_ml/trained_models/my-endpoint/_stats", compat=compat)["trained_model_stats"][0]
        assert sum(n["inference_count"] for n in stats["deployment_stats"]["nodes"]) == 2


def test_semantic_text_unknown_endpoint_fails_the_item(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    sim.start_deployment("my-e5", deployment_id="not-an-endpoint", wait=True)
    for inference_id in ("nope", "not-an-endpoint"):
        mappings = {"properties": {"body": {"type": "semantic_text", "inference_id": inference_id}}}
        es.indices.create(index=f"sem-{inference_id}", mappings=mappings)
        answer = es.bulk(index=f"sem-{inference_id}", operations=[{"index": {"_id": "1"}}, {"body": "x"}])
        item = answer["items"][0]["index"]
        assert (item["status"], item["error"]["type"]) == (404, "resource_not_found_exception")
        assert item["error"]["reason"] == f"Inference id [{inference_id}] not found for field [body]"


def test_semantic_text_default_endpoint_deploys_lazily(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    es.indices.create(index="sem", mappings={"properties": {"body": {"type": "semantic_text"}}})
    es.index(index="sem", id="1", document={"body": "hello"})
    hit = es.search(index="sem", fields=["_inference_fields"])["hits"]["hits"][0]
    inference = hit["fields"]["_inference_fields"][0]["body"]["inference"]
    assert inference["inference_id"] == ".elser-2-elasticsearch"
    assert inference["model_settings"] == {"task_type": "sparse_embedding"}
    assert ".elser-2-elasticsearch" in sim.cluster.deployments


def test_inference_processor_through_an_attached_endpoint(sim: Simulator, es: elasticsearch.Elasticsearch) -> None:
    sim.start_deployment("my-e5", deployment_id="shared", wait=True)
    es.inference.put(
        task_type="text_embedding",
        inference_id="attached",
        inference_config={"service": "elasticsearch", "service_settings": {"deployment_id": "shared"}},
    )
    es.ingest.put_pipeline(
        id="p",
        processors=[{"inference": {"model_id": "attached", "input_output": {"input_field": "t", "output_field": "v"}}}],
    )
    es.index(index="x", id="1", document={"t": "hi"}, pipeline="p")
    assert len(es.get(index="x", id="1")["_source"]["v"]) == 8
    assert sum(n["inference_count"] for n in node_stats(es, "shared")) == 1
