"""The document store's write path as leases use it: seq_no/primary_term, conditional writes, 409/404
envelopes, the audit of writes; and its Python API.

Behavioural tests use ``es_target`` (and its ``es`` and ``index`` fixtures) so they can run against a real
cluster too.
"""

from __future__ import annotations

import uuid

import elasticsearch
import pytest

from airflow_esml.testing.docs.model import WriteOp
from airflow_esml.testing.docs.store import IndexStore
from airflow_esml.testing.protocol import AuditLog
from tests.testing.conftest import EsTarget


def test_index_get_update_delete(es: elasticsearch.Elasticsearch, index: str) -> None:
    created = es.index(index=index, id="lease-1", document={"owner": "a"})
    assert created.meta.status == 201
    assert (created["result"], created["_version"], created["_seq_no"], created["_primary_term"]) == (
        "created",
        1,
        0,
        1,
    )
    assert created["_index"] == index and created["_id"] == "lease-1"
    assert created["_shards"]["failed"] == 0
    got = es.get(index=index, id="lease-1")
    assert got["found"] is True and got["_source"] == {"owner": "a"}
    assert (got["_seq_no"], got["_primary_term"], got["_version"]) == (0, 1, 1)
    updated = es.index(index=index, id="lease-1", document={"owner": "b"}, refresh=True)
    assert updated.meta.status == 200
    assert (updated["result"], updated["_version"], updated["_seq_no"]) == ("updated", 2, 1)
    deleted = es.delete(index=index, id="lease-1")
    assert (deleted["result"], deleted["_version"], deleted["_seq_no"]) == ("deleted", 3, 2)
    with pytest.raises(elasticsearch.NotFoundError) as info:
        es.get(index=index, id="lease-1")
    assert info.value.body == {"_index": index, "_id": "lease-1", "found": False}
    again = es.index(index=index, id="lease-1", document={"owner": "c"})
    assert (again["result"], again["_version"]) == ("created", 4)


def test_conditional_write_conflicts(es: elasticsearch.Elasticsearch, index: str) -> None:
    first = es.index(index=index, id="l", document={"owner": "a"})
    ok = es.index(
        index=index, id="l", document={"owner": "b"}, if_seq_no=first["_seq_no"], if_primary_term=first["_primary_term"]
    )
    assert ok["result"] == "updated"
    with pytest.raises(elasticsearch.ConflictError) as info:
        es.index(index=index, id="l", document={"owner": "c"}, if_seq_no=first["_seq_no"], if_primary_term=1)
    err = info.value
    assert err.status_code == 409 and err.message == "version_conflict_engine_exception"
    expected = (
        f"[l]: version conflict, required seqNo [{first['_seq_no']}], primary term [1]. "
        f"current document has seqNo [{ok['_seq_no']}] and primary term [1]"
    )
    assert err.body["error"]["reason"] == expected
    assert err.body["error"]["root_cause"][0]["index"] == index
    assert str(err) == f"ConflictError(409, 'version_conflict_engine_exception', '{expected}')"
    assert es.get(index=index, id="l")["_source"] == {"owner": "b"}


def test_conditional_write_on_missing_document(es: elasticsearch.Elasticsearch, index: str) -> None:
    es.indices.create(index=index)
    with pytest.raises(elasticsearch.ConflictError) as info:
        es.index(index=index, id="ghost", document={"x": 1}, if_seq_no=3, if_primary_term=1)
    assert info.value.body["error"]["reason"] == (
        "[ghost]: version conflict, required seqNo [3], primary term [1]. but no document was found"
    )


def test_create_refuses_existing_document(es: elasticsearch.Elasticsearch, index: str) -> None:
    assert es.create(index=index, id="c", document={"n": 1})["result"] == "created"
    for call in (
        lambda: es.create(index=index, id="c", document={"n": 2}),
        lambda: es.index(index=index, id="c", document={"n": 2}, op_type="create"),
    ):
        with pytest.raises(elasticsearch.ConflictError) as info:
            call()
        assert (
            info.value.body["error"]["reason"] == "[c]: version conflict, document already exists (current version [1])"
        )


def test_conditional_delete(es: elasticsearch.Elasticsearch, index: str) -> None:
    doc = es.index(index=index, id="d", document={"n": 1})
    with pytest.raises(elasticsearch.ConflictError):
        es.delete(index=index, id="d", if_seq_no=doc["_seq_no"] + 5, if_primary_term=1)
    assert es.delete(index=index, id="d", if_seq_no=doc["_seq_no"], if_primary_term=1)["result"] == "deleted"


def test_delete_missing_document_and_index(es: elasticsearch.Elasticsearch, index: str) -> None:
    es.indices.create(index=index)
    with pytest.raises(elasticsearch.NotFoundError) as info:
        es.delete(index=index, id="nope")
    assert info.value.body["result"] == "not_found"
    with pytest.raises(elasticsearch.NotFoundError) as missing:
        es.delete(index=f"{index}-missing", id="nope")
    assert missing.value.message == "index_not_found_exception"


async def test_async_documents(es_target: EsTarget) -> None:
    name = f"esml-test-{uuid.uuid4().hex[:8]}"
    async with es_target.async_client() as es:
        try:
            doc = await es.index(index=name, id="a", document={"n": 1})
            with pytest.raises(elasticsearch.ConflictError):
                await es.index(index=name, id="a", document={"n": 2}, if_seq_no=doc["_seq_no"] + 1, if_primary_term=1)
            assert (await es.get(index=name, id="a"))["_source"] == {"n": 1}
        finally:
            await es.options(ignore_status=404).indices.delete(index=name)


def test_writes_are_audited(es_target: EsTarget, index: str, es: elasticsearch.Elasticsearch) -> None:
    sim = es_target.require_simulator()
    es.index(index=index, id="w", document={"n": 1})
    events = sim.audit.events("document_written", index=index, id="w")
    assert [e.data["result"] for e in events] == ["created"]
    assert sim.documents.get(index, "w") == {"n": 1}


def test_updates_merge_into_a_copy_and_unchanged_ones_are_noops() -> None:
    store = IndexStore(audit=AuditLog())
    source = {"a": {"b": 1, "c": 2}}
    [created] = store.execute([WriteOp("index", "i", "1", source=source)])
    assert (created["status"], created["result"], created["_seq_no"]) == (201, "created", 0)
    patch = {"doc": {"a": {"c": 3}}}
    [updated] = store.execute([WriteOp("update", "i", "1", update=patch)])
    assert (updated["status"], updated["result"], updated["_version"]) == (200, "updated", 2)
    assert store.get("i", "1") == {"a": {"b": 1, "c": 3}}
    assert source == {"a": {"b": 1, "c": 2}}
    [noop] = store.execute([WriteOp("update", "i", "1", update=patch)])
    assert (noop["result"], noop["_version"], noop["_seq_no"]) == ("noop", 2, 1)
    [missing] = store.execute([WriteOp("update", "i", "2", update=patch)])
    assert (missing["status"], missing["error"]["type"]) == (404, "document_missing_exception")
    [upsert] = store.execute([WriteOp("update", "i", "2", update={**patch, "doc_as_upsert": True})])
    assert upsert["result"] == "created" and store.get("i", "2") == {"a": {"c": 3}}
