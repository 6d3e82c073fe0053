"""Ingest pipelines without HTTP: processor order, failure handling, batched inference."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_esml.testing.docs.pipelines import PipelineStore
from airflow_esml.testing.docs.processors import IngestDoc, render
from airflow_esml.testing.protocol import EsError


class FakeInfer:
    """Records each inference call; inputs in ``fail`` get a 429."""

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[Any]] = []
        self.fail = fail

    def __call__(self, ident: str, texts: list[Any]) -> list[dict[str, Any] | EsError]:
        self.calls.append(list(texts))
        return [
            EsError(429, "status_exception", "queue full") if t in self.fail else {"predicted_value": [0.5]}
            for t in texts
        ]


def store(infer: FakeInfer) -> PipelineStore:
    return PipelineStore(infer=infer, input_field=lambda model_id: "text_field")


INFER = {"inference": {"model_id": "m", "input_output": {"input_field": "t", "output_field": "v"}}}


def test_one_inference_call_per_batch() -> None:
    infer = FakeInfer()
    pipelines = store(infer)
    pipelines.put("p", {"processors": [{"set": {"field": "seen", "value": "{{t}}"}}, INFER]})
    docs = [IngestDoc({"t": f"d{i}"}) for i in range(5)]
    pipelines.run("p", docs)
    assert infer.calls == [[f"d{i}" for i in range(5)]]
    assert all(d.error is None and d.source["v"] == [0.5] and d.source["seen"] == d.source["t"] for d in docs)


def test_failure_handling_order() -> None:
    infer = FakeInfer(frozenset({"bad"}))
    pipelines = store(infer)
    after = {"set": {"field": "after", "value": True}}
    record = {
        "set": {"field": "why", "value": "{{_ingest.on_failure_message}} in {{_ingest.on_failure_processor_type}}"}
    }
    pipelines.put("plain", {"processors": [INFER, after]})
    pipelines.put(
        "own", {"processors": [{**INFER, "inference": {**INFER["inference"], "on_failure": [record]}}, after]}
    )
    pipelines.put("pipeline_level", {"processors": [INFER, after], "on_failure": [record]})
    pipelines.put("ignored", {"processors": [{"inference": {**INFER["inference"], "ignore_failure": True}}, after]})
    outcomes = {}
    for pipeline_id in ("plain", "own", "pipeline_level", "ignored"):
        doc = IngestDoc({"t": "bad"})
        pipelines.run(pipeline_id, [doc])
        outcomes[pipeline_id] = doc
    assert outcomes["plain"].error is not None and outcomes["plain"].error.status == 429
    assert outcomes["own"].source == {"t": "bad", "why": "queue full in inference", "after": True}
    assert outcomes["pipeline_level"].source == {"t": "bad", "why": "queue full in inference"}
    assert outcomes["ignored"].source == {"t": "bad", "after": True}


def test_missing_pipeline_and_reference_counts() -> None:
    pipelines = store(FakeInfer())
    doc = IngestDoc({})
    pipelines.run("nope", [doc])
    assert doc.error is not None and doc.error.reason == "pipeline with id [nope] does not exist"
    pipelines.put("a", {"processors": [INFER], "on_failure": [{"inference": {"model_id": "other"}}]})
    pipelines.put("b", {"processors": [INFER]})
    assert pipelines.referenced_models() == {"m": 2, "other": 1}


def test_render_templates() -> None:
    doc = IngestDoc({"a": {"b": 1}}, meta={"on_failure_message": "boom"})
    assert render(["{{a.b}}-{{{_ingest.on_failure_message}}}", {"k": "{{missing}}"}], doc) == ["1-boom", {"k": ""}]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"processors": {}},
        {"processors": [{"a": {}, "b": {}}]},
        {"processors": [{"set": {"field": "a", "value": 1, "if": "ctx.b == 1"}}]},
    ],
)
def test_bad_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(EsError) as err:
        store(FakeInfer()).put("x", body)
    assert err.value.status == 400
