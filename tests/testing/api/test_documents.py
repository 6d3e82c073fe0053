"""The documents API's handlers: a missing index, the index lifecycle, index names, ``_search``.

Behavioural tests use ``es_target`` (and its ``es`` and ``index`` fixtures) so they can run against a real
cluster too.
"""

from __future__ import annotations

import elasticsearch
import pytest


def test_missing_index(es: elasticsearch.Elasticsearch, index: str) -> None:
    with pytest.raises(elasticsearch.NotFoundError) as info:
        es.get(index=index, id="1")
    assert info.value.message == "index_not_found_exception"
    assert info.value.body["error"]["reason"] == f"no such index [{index}]"
    assert es.indices.exists(index=index).body is False
    assert es.exists(index=index, id="1").body is False


def test_index_lifecycle(es: elasticsearch.Elasticsearch, index: str) -> None:
    assert es.indices.create(index=index)["acknowledged"] is True
    assert es.indices.exists(index=index).body is True
    with pytest.raises(elasticsearch.BadRequestError) as info:
        es.indices.create(index=index)
    assert info.value.message == "resource_already_exists_exception"
    assert es.indices.refresh(index=index)["_shards"]["failed"] == 0
    assert es.indices.delete(index=index)["acknowledged"] is True
    assert es.indices.exists(index=index).body is False


def test_invalid_index_name(es: elasticsearch.Elasticsearch) -> None:
    with pytest.raises(elasticsearch.BadRequestError) as info:
        es.index(index="Upper", id="1", document={})
    assert info.value.message == "invalid_index_name_exception"
    assert info.value.body["error"]["reason"] == "Invalid index name [Upper], must be lowercase"


def test_search_match_all_and_term(es: elasticsearch.Elasticsearch, index: str) -> None:
    es.index(index=index, id="1", document={"owner": "a", "kind": "lease"})
    es.index(index=index, id="2", document={"owner": "b", "kind": "lease"}, refresh=True)
    everything = es.search(index=index, query={"match_all": {}}, seq_no_primary_term=True)
    assert everything["hits"]["total"] == {"value": 2, "relation": "eq"}
    hits = {h["_id"]: h for h in everything["hits"]["hits"]}
    assert hits["2"]["_seq_no"] == 1 and hits["2"]["_primary_term"] == 1
    assert hits["1"]["_source"] == {"owner": "a", "kind": "lease"}
    term = es.search(index=index, query={"term": {"owner": "b"}})
    assert [h["_id"] for h in term["hits"]["hits"]] == ["2"]
    assert "_seq_no" not in term["hits"]["hits"][0]
