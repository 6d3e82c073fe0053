"""Ingest pipelines on the simulator: definitions, processors, failures, the inference processor."""

from __future__ import annotations

from collections.abc import Iterator

import elasticsearch
import pytest

from airflow_esml.testing import Simulator

FAILURE_HANDLER = [{"set": {"field": "ml.failure", "value": "{{ _ingest.on_failure_message }}"}}]


@pytest.fixture
def es(simulator: Simulator) -> Iterator[elasticsearch.Elasticsearch]:
    simulator.start_deployment("my-e5", number_of_allocations=1, wait=True)
    with simulator.client() as client:
        yield client


def test_put_get_delete(es: elasticsearch.Elasticsearch) -> None:
    processors = [{"set": {"field": "seen", "value": True}}]
    assert es.ingest.put_pipeline(id="p", processors=processors)["acknowledged"] is True
    assert es.ingest.get_pipeline(id="p")["p"]["processors"] == processors
    assert list(es.ingest.get_pipeline()) == ["p"]
    es.ingest.delete_pipeline(id="p")
    with pytest.raises(elasticsearch.NotFoundError):
        es.ingest.get_pipeline(id="p")
    with pytest.raises(elasticsearch.NotFoundError, match=r"pipeline \[p\] is missing"):
        es.ingest.delete_pipeline(id="p")


@pytest.mark.parametrize(
    ("processors", "message"),
    [
        ([{"nope": {}}], r"No processor type exists with name \[nope\]"),
        ([{"set": {"value": 1}}], r"\[field\] required property is missing"),
        ([{"inference": {"input_output": {"input_field": "a", "output_field": "b"}}}], r"\[model_id\] required"),
        (
            [{"inference": {"model_id": "m", "input_output": [{"input_field": "a"}], "target_field": "t"}}],
            r"\[target_field\] option is incompatible with \[input_output\]",
        ),
    ],
)
def test_bad_definitions_refused(es: elasticsearch.Elasticsearch, processors: list[dict], message: str) -> None:
    with pytest.raises(elasticsearch.BadRequestError, match=message):
        es.ingest.put_pipeline(id="bad", processors=processors)
    with pytest.raises(elasticsearch.NotFoundError):
        es.ingest.get_pipeline(id="bad")


def test_set_remove_and_default_pipeline(es: elasticsearch.Elasticsearch) -> None:
    es.ingest.put_pipeline(
        id="tidy",
        processors=[{"set": {"field": "copy", "value": "{{text}}!"}}, {"remove": {"field": "secret"}}],
    )
    es.indices.create(index="docs", settings={"index": {"default_pipeline": "tidy"}})
    es.index(index="docs", id="1", document={"text": "hi", "secret": "x"})
    assert es.get(index="docs", id="1")["_source"] == {"text": "hi", "copy": "hi!"}
    es.index(index="docs", id="2", document={"text": "raw", "secret": "x"}, pipeline="_none")
    assert es.get(index="docs", id="2")["_source"] == {"text": "raw", "secret": "x"}
    with pytest.raises(elasticsearch.BadRequestError, match=r"pipeline with id \[nope\] does not exist"):
        es.index(index="docs", id="3", document={"text": "x"}, pipeline="nope")


def test_inference_processor_forms(es: elasticsearch.Elasticsearch) -> None:
    es.ingest.put_pipeline(
        id="io",
        processors=[{"inference": {"model_id": "my-e5", "input_output": {"input_field": "t", "output_field": "v"}}}],
    )
    es.ingest.put_pipeline(
        id="legacy", processors=[{"inference": {"model_id": "my-e5", "field_map": {"t": "text_field"}, "tag": "emb"}}]
    )
    es.index(index="a", id="1", document={"t": "hello"}, pipeline="io")
    es.index(index="a", id="2", document={"t": "hello"}, pipeline="legacy")
    vector = es.get(index="a", id="1")["_source"]["v"]
    assert isinstance(vector, list) and len(vector) == 8
    legacy = es.get(index="a", id="2")["_source"]["ml"]["inference"]["emb"]
    assert legacy == {"predicted_value": vector, "model_id": "my-e5"}


def test_inference_failure_fails_the_item_or_is_recorded(es: elasticsearch.Elasticsearch) -> None:
    es.ingest.put_pipeline(id="strict", processors=[{"inference": {"model_id": "not-deployed"}}])
    es.ingest.put_pipeline(
        id="handled", processors=[{"inference": {"model_id": "not-deployed"}}], on_failure=FAILURE_HANDLER
    )
    es.ingest.put_pipeline(
        id="ignored", processors=[{"inference": {"model_id": "not-deployed", "ignore_failure": True}}]
    )
    answer = es.bulk(
        index="b",
        operations=[
            x
            for i, pipeline in enumerate(("strict", "handled", "ignored"), 1)
            for x in ({"index": {"_id": str(i), "pipeline": pipeline}}, {"text_field": "x"})
        ],
    )
    first = answer["items"][0]["index"]
    assert (first["status"], first["error"]["reason"]) == (404, "Could not find trained model [not-deployed]")
    assert es.get(index="b", id="2")["_source"]["ml"]["failure"] == "Could not find trained model [not-deployed]"
    assert es.get(index="b", id="3")["_source"] == {"text_field": "x"}


def test_missing_input_field(es: elasticsearch.Elasticsearch) -> None:
    es.ingest.put_pipeline(id="p", processors=[{"inference": {"model_id": "my-e5"}}], on_failure=FAILURE_HANDLER)
    es.index(index="c", id="1", document={"other": "x"}, pipeline="p")
    failure = es.get(index="c", id="1")["_source"]["ml"]["failure"]
    assert failure == "Input field [text_field] does not exist in the source document"
