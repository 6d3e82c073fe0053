"""Renewal, lost leases and their traces, and lost answers, against the simulator."""

from __future__ import annotations

import logging
import time

import pytest

from airflow_esml.exceptions import LeaseLostError, TransientRequestError
from airflow_esml.leases.documents import LeaseDocuments
from tests.lease_helpers import lease_doc, make_store


def test_renewal_extends_the_lease_without_touching_the_deployment(sim):
    store = make_store()
    first = store.acquire("my-e5", "dag/run/scaled", 3, ttl=1.0)
    updates = len(sim.audit.target_history("my-e5"))
    renewal = store.renew("my-e5", "dag/run/scaled", 5.0)
    assert renewal.state == "renewed"
    assert renewal.expires_at is not None and renewal.expires_at > first.lease.expires_at + 3
    assert lease_doc(sim)["leases"][0]["expires_at"] == renewal.expires_at
    assert len(sim.audit.target_history("my-e5")) == updates
    store.release("my-e5", "dag/run/scaled")
    assert store.renew("my-e5", "dag/run/scaled", 5.0).state == "released"


def test_a_reaped_lease_is_lost_for_its_keeper_and_its_release(sim, caplog):
    store = make_store()
    store.acquire("my-e5", "slow/run/scaled", 4, ttl=0.3, owner={"dag_id": "slow"})
    time.sleep(0.4)
    with caplog.at_level(logging.WARNING, logger="airflow_esml.leases.store"):
        store.acquire("my-e5", "other/run/scaled", 2, ttl=60.0)
    assert "reaping lease slow/run/scaled (4 allocations): it expired at " in caplog.text
    assert "without renewal" in caplog.text and "{'dag_id': 'slow'}" in caplog.text
    assert "ended without releasing" not in caplog.text
    renewal = store.renew("my-e5", "slow/run/scaled", 60.0)
    assert renewal.state == "lost"
    assert "lease slow/run/scaled was reaped at " in renewal.message
    assert "by other/run/scaled" in renewal.message and "target was then 2 allocations" in renewal.message
    with pytest.raises(LeaseLostError, match=r"was reaped at .* by other/run/scaled.*target was then 2 alloc"):
        store.release("my-e5", "slow/run/scaled")
    assert sim.cluster.target("my-e5") == 2  # the release still left the live lease its allocations


def test_the_trace_of_a_reaped_lease_outlives_the_lease_document(sim):
    store = make_store()
    store.acquire("my-e5", "dead/run/scaled", 3, ttl=0.3)
    time.sleep(0.4)
    assert store.reconcile("my-e5").restored
    assert lease_doc(sim) is None
    assert store.deployment_ids() == []  # the tombstone document is not a deployment
    with pytest.raises(LeaseLostError, match=r"reaped at .* by reaper.*target was then 1 allocations"):
        store.release("my-e5", "dead/run/scaled")
    # a lease that left no trace: a retried release after a success, or another run's name
    assert store.release("my-e5", "never/run/scaled").goal is None
    # the same lease taken again (a retried acquire) is not lost any more
    store.acquire("my-e5", "dead/run/scaled", 3, ttl=60.0)
    store.release("my-e5", "dead/run/scaled")
    assert sim.cluster.target("my-e5") == 1


def test_a_retried_release_after_a_lost_answer_succeeds(sim):
    store = make_store()
    store.acquire("my-e5", "dag/run/scaled", 3, ttl=60.0)
    store.release("my-e5", "dag/run/scaled")  # its answer lost: the task runs again
    again = store.release("my-e5", "dag/run/scaled")
    assert again.goal is None and sim.cluster.target("my-e5") == 1


def test_a_lost_answer_to_our_own_write_is_not_reported_as_a_lost_lock(sim, caplog, monkeypatch):
    """The pending write lands, but its answer is lost (the retries run out): the unlock must know it is ours."""
    real = LeaseDocuments.replace
    calls = {"n": 0}

    def replace(self, doc, version):
        calls["n"] += 1
        landed = real(self, doc, version)
        if calls["n"] == 2:  # the lock write, then the pending write
            raise TransientRequestError("connection reset after the write landed")
        return landed

    store = make_store()
    store.acquire("my-e5", "first/run/scaled", 2, ttl=60.0)
    monkeypatch.setattr(LeaseDocuments, "replace", replace)
    with caplog.at_level(logging.INFO, logger="airflow_esml.leases.store"), pytest.raises(TransientRequestError):
        store.acquire("my-e5", "second/run/scaled", 4, ttl=60.0)
    assert "lock expired and another operation took it" not in caplog.text
    assert "could not free the lease lock" not in caplog.text
    assert "the answer to a write was lost" in caplog.text
    doc = lease_doc(sim)
    assert doc["lock"] is None and [x["lease_id"] for x in doc["leases"]] == ["first/run/scaled"]
