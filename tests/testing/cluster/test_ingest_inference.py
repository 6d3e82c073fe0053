"""Ingest inference on the cluster model: one request per document, the queue bound, shared counters."""

from __future__ import annotations

import random

import pytest

from airflow_esml.testing.cluster import Cluster
from airflow_esml.testing.cluster.ingest_inference import infer_each, input_field
from airflow_esml.testing.protocol import AuditLog, EsError, EsVersion


@pytest.fixture
def cluster() -> Cluster:
    model = Cluster(
        version=EsVersion(9, 1), audit=AuditLog(), load_seconds=0.0, infer_seconds_per_doc=0.001, rng=random.Random(1)
    )
    model.add_ml_node("ml-1", 4)
    model.add_model("my-e5")
    return model


def test_documents_beyond_the_queue_are_rejected_one_by_one(cluster: Cluster) -> None:
    cluster.start_deployment("my-e5", number_of_allocations=1, queue_capacity=3, wait=True)
    outcomes = infer_each(cluster, "my-e5", [f"t{i}" for i in range(10)])
    rejected = [o for o in outcomes if isinstance(o, EsError)]
    assert len(rejected) == 6 and {o.status for o in rejected} == {429}
    first = outcomes[0]
    assert not isinstance(first, EsError) and len(first["predicted_value"]) == 8
    stats = cluster.deployment_stats("my-e5")
    assert stats["nodes"][0]["inference_count"] == 4
    assert stats["nodes"][0]["rejected_execution_count"] == 6
    events = cluster.audit.events("inference", via="ingest")
    assert [(e.data["docs"], e.data["status"]) for e in events] == [(4, 200), (6, 429)]


def test_whole_batch_errors_raise(cluster: Cluster) -> None:
    with pytest.raises(EsError) as missing:
        infer_each(cluster, "nope", ["x"])
    assert missing.value.status == 404
    assert infer_each(cluster, "nope", []) == []


def test_input_field(cluster: Cluster) -> None:
    cluster.add_model("other", input_field="content")
    cluster.start_deployment("other", deployment_id="dep", wait=True)
    assert input_field(cluster, "dep") == "content"
    assert input_field(cluster, "other") == "content"
    assert input_field(cluster, "unknown") == "text_field"
