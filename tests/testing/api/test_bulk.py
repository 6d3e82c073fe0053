"""``_bulk``, ``_count`` and mappings on the simulator, through the real client."""

from __future__ import annotations

from collections.abc import Iterator

import elasticsearch
import pytest

from airflow_esml.testing import Simulator


@pytest.fixture
def es(simulator: Simulator) -> Iterator[elasticsearch.Elasticsearch]:
    with simulator.client() as client:
        yield client


def test_bulk_actions_and_per_item_results(es: elasticsearch.Elasticsearch) -> None:
    answer = es.bulk(
        operations=[
            {"index": {"_index": "docs", "_id": "1"}},
            {"text": "one"},
            {"create": {"_index": "docs", "_id": "2"}},
            {"text": "two"},
            {"create": {"_index": "docs", "_id": "1"}},
            {"text": "again"},
            {"update": {"_index": "docs", "_id": "2"}},
            {"doc": {"extra": True}},
            {"update": {"_index": "docs", "_id": "9"}},
            {"doc": {"x": 1}},
            {"delete": {"_index": "docs", "_id": "1"}},
        ]
    )
    assert answer["errors"] is True
    items = answer["items"]
    assert [next(iter(i)) for i in items] == ["index", "create", "create", "update", "update", "delete"]
    assert [next(iter(i.values()))["status"] for i in items] == [201, 201, 409, 200, 404, 200]
    assert items[2]["create"]["error"]["type"] == "version_conflict_engine_exception"
    assert items[4]["update"]["error"]["type"] == "document_missing_exception"
    assert es.get(index="docs", id="2")["_source"] == {"text": "two", "extra": True}
    assert es.count(index="docs")["count"] == 1


def test_bulk_default_index_and_refresh(es: elasticsearch.Elasticsearch) -> None:
    answer = es.bulk(index="logs", operations=[{"index": {}}, {"n": 1}, {"index": {}}, {"n": 2}], refresh=True)
    assert answer["errors"] is False
    assert all(i["index"]["forced_refresh"] for i in answer["items"])
    assert es.count(index="logs", query={"term": {"n": 2}})["count"] == 1


def test_bulk_malformed_action_refused(es: elasticsearch.Elasticsearch) -> None:
    with pytest.raises(elasticsearch.BadRequestError, match="expected one of \\[create, delete, index, update\\]"):
        es.bulk(operations=[{"upsert": {"_index": "x"}}, {"a": 1}])
    with pytest.raises(elasticsearch.BadRequestError, match="index is missing"):
        es.bulk(operations=[{"index": {}}, {"a": 1}])


def test_mappings_and_settings_kept(es: elasticsearch.Elasticsearch) -> None:
    mappings = {"properties": {"body": {"type": "semantic_text", "inference_id": "my-e5"}}}
    es.indices.create(index="sem", mappings=mappings, settings={"number_of_shards": 3, "default_pipeline": "p"})
    assert es.indices.get_mapping(index="sem")["sem"]["mappings"] == mappings
    settings = es.indices.get(index="sem")["sem"]["settings"]["index"]
    assert (settings["number_of_shards"], settings["default_pipeline"]) == ("3", "p")


def test_count_with_query(es: elasticsearch.Elasticsearch) -> None:
    es.bulk(
        index="c", operations=[x for i in range(5) for x in ({"index": {"_id": str(i)}}, {"n": i, "even": i % 2 == 0})]
    )
    assert es.count(index="c")["count"] == 5
    assert (
        es.count(index="c", query={"bool": {"filter": [{"term": {"even": True}}], "must_not": [{"term": {"n": 0}}]}})[
            "count"
        ]
        == 2
    )
    with pytest.raises(elasticsearch.NotFoundError):
        es.count(index="missing")
