"""Lease documents in the simulator: reads of missing documents and indices, conditional creates, replaces and
deletes (a 409 answers None or False, not an error), the listing of deployment ids, and the hook's retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_esml.core.settings import Settings
from airflow_esml.exceptions import ElasticsearchRequestError, TransientRequestError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.leases.document import Lease, LeaseDoc
from airflow_esml.leases.documents import LeaseDocuments, Stored, Version
from airflow_esml.testing import Simulator
from tests.helpers import requests_to

INDEX = "test-leases"


@pytest.fixture
def docs(sim: Simulator) -> Iterator[LeaseDocuments]:
    hook = ElasticsearchMLHook()
    yield LeaseDocuments(hook, INDEX)
    hook.close()


def new_doc(deployment_id: str = "my-e5", allocations: int = 1) -> LeaseDoc:
    return LeaseDoc.new(deployment_id, Settings(allocations))


def test_get_on_a_missing_index_is_none(docs: LeaseDocuments) -> None:
    assert docs.get("my-e5") is None


def test_get_of_a_missing_document_in_an_existing_index_is_none(docs: LeaseDocuments) -> None:
    assert docs.create(new_doc("other")) is not None
    assert docs.get("my-e5") is None


def test_create_then_get_gives_the_document_and_its_version(docs: LeaseDocuments, sim: Simulator) -> None:
    doc = new_doc().with_lease(Lease("dag/run/scaled", 3, 100.0, 200.0, {"dag_id": "dag"}))
    version = docs.create(doc)
    assert isinstance(version, Version)
    stored = docs.get("my-e5")
    assert stored == Stored(doc, version)
    assert sim.documents.get(INDEX, "my-e5") == doc.to_source()


def test_a_second_create_of_the_same_id_is_none_and_changes_nothing(docs: LeaseDocuments) -> None:
    first = docs.create(new_doc(allocations=1))
    assert first is not None
    assert docs.create(new_doc(allocations=5)) is None  # 409: already there, not an error
    stored = docs.get("my-e5")
    assert stored is not None
    assert stored.version == first
    assert stored.doc.baseline == Settings(1)


def test_replace_with_the_current_version_gives_a_new_version(docs: LeaseDocuments) -> None:
    first = docs.create(new_doc())
    assert first is not None
    changed = new_doc().with_lease(Lease("a", 2, 1.0, 2.0))
    second = docs.replace(changed, first)
    assert second is not None and second != first
    assert second.seq_no > first.seq_no
    assert docs.get("my-e5") == Stored(changed, second)


def test_replace_with_a_stale_version_is_none_and_keeps_the_newer_document(docs: LeaseDocuments) -> None:
    first = docs.create(new_doc())
    assert first is not None
    newer = new_doc().with_lease(Lease("a", 2, 1.0, 2.0))
    second = docs.replace(newer, first)
    assert second is not None
    assert docs.replace(new_doc().with_lease(Lease("b", 4, 1.0, 2.0)), first) is None
    assert docs.get("my-e5") == Stored(newer, second)


def test_replace_of_a_missing_document_is_none(docs: LeaseDocuments) -> None:
    assert docs.replace(new_doc(), Version(0, 1)) is None
    assert docs.get("my-e5") is None


def test_delete_needs_the_current_version(docs: LeaseDocuments) -> None:
    first = docs.create(new_doc())
    assert first is not None
    second = docs.replace(new_doc(allocations=2), first)
    assert second is not None
    assert docs.delete("my-e5", first) is False  # stale: a conflict
    assert docs.get("my-e5") is not None
    assert docs.delete("my-e5", second) is True
    assert docs.get("my-e5") is None
    assert docs.delete("my-e5", second) is False  # gone


def test_deployment_ids_on_a_missing_index_is_empty(docs: LeaseDocuments) -> None:
    assert docs.deployment_ids() == []


def test_deployment_ids_are_listed_sorted(docs: LeaseDocuments) -> None:
    for name in ("zeta", "alpha", "my-e5", "beta"):
        assert docs.create(new_doc(name)) is not None
    assert docs.deployment_ids() == ["alpha", "beta", "my-e5", "zeta"]
    stored = docs.get("beta")
    assert stored is not None and docs.delete("beta", stored.version)
    assert docs.deployment_ids() == ["alpha", "my-e5", "zeta"]


def test_a_transient_fault_on_a_read_is_retried(docs: LeaseDocuments, sim: Simulator) -> None:
    version = docs.create(new_doc())
    sim.inject_fault(endpoint="doc_get", status=503, times=2)
    stored = docs.get("my-e5")
    assert stored is not None and stored.version == version
    assert requests_to(sim, "doc_get") == 3
    assert len(sim.audit.events("fault_injected", endpoint="doc_get")) == 2


def test_a_connection_reset_on_the_listing_is_retried(docs: LeaseDocuments, sim: Simulator) -> None:
    docs.create(new_doc())
    sim.inject_fault(endpoint="search", reset=True, times=1)
    assert docs.deployment_ids() == ["my-e5"]
    assert requests_to(sim, "search") == 2


def test_a_read_that_keeps_failing_gives_up_naming_the_document(docs: LeaseDocuments, sim: Simulator) -> None:
    sim.inject_fault(endpoint="doc_get", status=429)
    with pytest.raises(TransientRequestError, match=r"read of the lease document 'my-e5' in index 'test-leases'"):
        docs.get("my-e5")
    assert requests_to(sim, "doc_get") == ElasticsearchMLHook.default_retry.attempts


def test_a_terminal_error_on_a_write_is_raised_at_once(docs: LeaseDocuments, sim: Simulator) -> None:
    sim.inject_fault(endpoint="doc_index", status=500)
    with pytest.raises(ElasticsearchRequestError, match=r"creation of the lease document 'my-e5'.*500") as raised:
        docs.create(new_doc())
    assert not isinstance(raised.value, TransientRequestError)
    assert requests_to(sim, "doc_index") == 1
