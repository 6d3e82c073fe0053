"""LeaseStore on the simulator, one run at a time: the baseline, acquire and its retry, release and restore,
two leases, reaping with a moved clock, a lock held by someone else, drift, and the outcome's XCom form.

Overlapping runs are covered by ``tests/leases/test_concurrency.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from airflow_esml.core.settings import Settings
from airflow_esml.exceptions import InvalidParameterError, LeaseLockTimeoutError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.leases.document import LeaseDoc, Lock
from airflow_esml.leases.documents import LeaseDocuments
from airflow_esml.leases.store import LeaseStore
from airflow_esml.testing import Simulator
from tests.helpers import requests_to

INDEX = "test-leases"
BASELINE = 1


class Clock:
    """The wall clock moved by ``offset`` seconds: tests jump forward without sleeping, and time still passes."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(sim: Simulator, clock: Clock) -> Iterator[LeaseStore]:
    hook = ElasticsearchMLHook()
    yield LeaseStore(hook, index=INDEX, lock_ttl=10.0, clock=clock)
    hook.close()


def target(sim: Simulator) -> int:
    return sim.cluster.target("my-e5")


def test_acquire_records_the_baseline_and_scales_to_the_lease(store: LeaseStore, sim: Simulator) -> None:
    outcome = store.acquire("my-e5", "dag/run/scaled", 3, ttl=60.0, owner={"dag_id": "dag"})
    assert outcome.baseline == outcome.original_baseline == Settings(BASELINE)
    assert outcome.goal == Settings(3)
    assert outcome.changed and not outcome.restored
    assert outcome.lease_id == "dag/run/scaled"
    assert outcome.lease is not None and outcome.lease.allocations == 3
    assert dict(outcome.lease.owner) == {"dag_id": "dag"}
    assert target(sim) == 3
    doc = store.read("my-e5")
    assert doc is not None
    assert [x.lease_id for x in doc.leases] == ["dag/run/scaled"]
    assert doc.original_baseline == Settings(BASELINE)
    assert doc.applied == Settings(3)
    assert doc.lock is None and doc.pending is None  # unlocked once done


def test_a_lease_below_the_baseline_keeps_the_baseline(store: LeaseStore, sim: Simulator) -> None:
    sim.cluster.update_deployment("my-e5", number_of_allocations=4)
    updates = requests_to(sim, "update")
    outcome = store.acquire("my-e5", "dag/run/small", 2, ttl=60.0)
    assert outcome.baseline == Settings(4)
    assert outcome.goal == Settings(4)  # max(baseline, lease)
    assert not outcome.changed
    assert requests_to(sim, "update") == updates
    assert target(sim) == 4


def test_a_retried_acquire_keeps_the_baseline_and_renews_the_lease(
    store: LeaseStore, sim: Simulator, clock: Clock
) -> None:
    first = store.acquire("my-e5", "dag/run/scaled", 3, ttl=60.0)
    clock.advance(30)
    retry = store.acquire("my-e5", "dag/run/scaled", 3, ttl=60.0)
    assert retry.baseline == retry.original_baseline == Settings(BASELINE)  # not the 3 it set itself
    assert not retry.changed
    assert [x.lease_id for x in retry.leases] == ["dag/run/scaled"]
    assert first.lease is not None and retry.lease is not None
    assert retry.lease.acquired_at == first.lease.acquired_at
    assert retry.lease.expires_at == pytest.approx(first.lease.expires_at + 30, abs=1)
    store.release("my-e5", "dag/run/scaled")
    assert target(sim) == BASELINE


def test_releasing_the_last_lease_restores_the_baseline_and_deletes_the_document(
    store: LeaseStore, sim: Simulator
) -> None:
    store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0)
    assert target(sim) == 4
    outcome = store.release("my-e5", "dag/run/scaled")
    assert outcome.restored and outcome.changed
    assert outcome.goal == Settings(BASELINE)
    assert outcome.leases == ()
    assert outcome.lease_id == "dag/run/scaled"
    assert target(sim) == BASELINE
    assert store.read("my-e5") is None
    assert sim.documents.get(INDEX, "my-e5") is None


def test_releasing_without_a_document_is_not_an_error(store: LeaseStore, sim: Simulator) -> None:
    outcome = store.release("my-e5", "never/acquired/lease")
    assert outcome.goal is None and outcome.baseline is None
    assert not outcome.changed and not outcome.restored
    assert outcome.lease_id == "never/acquired/lease"
    assert store.read("my-e5") is None
    assert requests_to(sim, "update") == 0


def test_releasing_an_unknown_lease_leaves_the_others(store: LeaseStore, sim: Simulator) -> None:
    store.acquire("my-e5", "a/run/scaled", 3, ttl=60.0)
    outcome = store.release("my-e5", "not/a/lease")
    assert outcome.goal == Settings(3)
    assert not outcome.changed and not outcome.restored
    assert [x.lease_id for x in outcome.leases] == ["a/run/scaled"]
    assert target(sim) == 3


def test_releasing_the_smaller_of_two_leases_keeps_the_larger_target(store: LeaseStore, sim: Simulator) -> None:
    store.acquire("my-e5", "small/run/scaled", 2, ttl=60.0)
    store.acquire("my-e5", "large/run/scaled", 4, ttl=60.0)
    assert target(sim) == 4
    outcome = store.release("my-e5", "small/run/scaled")
    assert outcome.goal == Settings(4) and not outcome.changed and not outcome.restored
    assert [x.lease_id for x in outcome.leases] == ["large/run/scaled"]
    assert target(sim) == 4
    assert outcome.original_baseline == Settings(BASELINE)


def test_releasing_the_larger_of_two_leases_lowers_to_the_other(store: LeaseStore, sim: Simulator) -> None:
    store.acquire("my-e5", "small/run/scaled", 2, ttl=60.0)
    store.acquire("my-e5", "large/run/scaled", 4, ttl=60.0)
    outcome = store.release("my-e5", "large/run/scaled")
    assert outcome.goal == Settings(2) and outcome.changed
    assert target(sim) == 2
    store.release("my-e5", "small/run/scaled")
    assert target(sim) == BASELINE


def test_an_expired_lease_is_reaped_by_the_next_operation(store: LeaseStore, sim: Simulator, clock: Clock) -> None:
    store.acquire("my-e5", "dead/run/scaled", 4, ttl=60.0, owner={"dag_id": "dead"})
    clock.advance(61)  # the dead run's lease has expired
    outcome = store.acquire("my-e5", "alive/run/scaled", 2, ttl=60.0)
    assert [x.lease_id for x in outcome.reaped] == ["dead/run/scaled"]
    assert dict(outcome.reaped[0].owner) == {"dag_id": "dead"}
    assert [x.lease_id for x in outcome.leases] == ["alive/run/scaled"]
    assert outcome.goal == Settings(2)
    assert target(sim) == 2
    doc = store.read("my-e5")
    assert doc is not None and [x.lease_id for x in doc.leases] == ["alive/run/scaled"]


def test_a_live_lease_is_not_reaped(store: LeaseStore, clock: Clock) -> None:
    store.acquire("my-e5", "a/run/scaled", 4, ttl=60.0)
    clock.advance(59)
    outcome = store.reconcile("my-e5")
    assert outcome.reaped == ()
    assert [x.lease_id for x in outcome.leases] == ["a/run/scaled"]


def test_reconcile_of_only_expired_leases_restores(store: LeaseStore, sim: Simulator, clock: Clock) -> None:
    store.acquire("my-e5", "dead/run/scaled", 3, ttl=10.0)
    clock.advance(11)
    outcome = store.reconcile("my-e5")
    assert [x.lease_id for x in outcome.reaped] == ["dead/run/scaled"]
    assert outcome.restored and outcome.goal == Settings(BASELINE)
    assert target(sim) == BASELINE
    assert store.read("my-e5") is None


def locked_doc(deployment_id: str, expires_at: float) -> LeaseDoc:
    """A lease document without leases whose lock another operation holds until ``expires_at``."""
    return replace(LeaseDoc.new(deployment_id, Settings(BASELINE)), lock=Lock("their-token", "other/run", expires_at))


def test_a_lock_held_by_someone_else_times_out_after_lock_wait(sim: Simulator) -> None:
    hook = ElasticsearchMLHook()
    try:
        store = LeaseStore(hook, index=INDEX, lock_ttl=10.0, lock_wait=0.3)
        assert LeaseDocuments(hook, INDEX).create(locked_doc("my-e5", time.time() + 3600)) is not None
        begin = time.monotonic()
        with pytest.raises(LeaseLockTimeoutError, match=r"my-e5: the lease document stayed locked by other/run"):
            store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0)
        elapsed = time.monotonic() - begin
        assert 0.3 <= elapsed < 2.0
        doc = store.read("my-e5")
        assert doc is not None and doc.lock is not None and doc.lock.token == "their-token"
        assert doc.leases == ()  # the acquire changed nothing, and released nothing either
        assert target(sim) == BASELINE
        assert requests_to(sim, "update") == 0
    finally:
        hook.close()


def test_an_expired_lock_is_taken_over(store: LeaseStore, sim: Simulator, clock: Clock) -> None:
    assert store.docs.create(locked_doc("my-e5", clock() + 5)) is not None
    clock.advance(6)  # its holder died
    outcome = store.acquire("my-e5", "dag/run/scaled", 3, ttl=60.0)
    assert outcome.goal == Settings(3)
    assert target(sim) == 3
    doc = store.read("my-e5")
    assert doc is not None and doc.lock is None


@pytest.mark.parametrize(("policy", "final"), [("respect", 6), ("restore", BASELINE)])
def test_a_hand_made_change_follows_the_drift_policy_on_release(
    store: LeaseStore, sim: Simulator, policy: str, final: int
) -> None:
    store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0)
    sim.cluster.update_deployment("my-e5", number_of_allocations=6)  # by hand, while the lease is held
    outcome = store.release("my-e5", "dag/run/scaled", on_drift=policy)
    assert outcome.drift is not None
    assert outcome.drift["policy"] == policy
    assert outcome.drift["expected"] == Settings(4).to_dict()
    assert outcome.drift["found"] == Settings(6).to_dict()
    assert outcome.goal == Settings(final)
    assert outcome.changed is (policy == "restore")
    assert outcome.restored
    assert target(sim) == final
    assert store.read("my-e5") is None


def test_no_drift_without_a_hand_made_change(store: LeaseStore) -> None:
    store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0)
    assert store.release("my-e5", "dag/run/scaled", on_drift="restore").drift is None


def test_an_unknown_drift_policy_is_refused_before_anything_changes(store: LeaseStore, sim: Simulator) -> None:
    with pytest.raises(InvalidParameterError, match="on_drift"):
        store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0, on_drift="ignore")
    assert store.read("my-e5") is None
    assert target(sim) == BASELINE


def test_the_outcome_is_json_for_xcom(store: LeaseStore, clock: Clock) -> None:
    store.acquire("my-e5", "dead/run/scaled", 2, ttl=5.0)
    clock.advance(6)
    outcome = store.acquire("my-e5", "dag/run/scaled", 3, ttl=60.0, owner={"dag_id": "dag", "try_number": 1})
    data = outcome.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["lease_id"] == "dag/run/scaled"
    assert data["number_of_allocations"] == 3
    assert data["target"] == {"number_of_allocations": 3, "adaptive_allocations": None}
    assert data["baseline"] == data["original_baseline"] == {"number_of_allocations": 1, "adaptive_allocations": None}
    assert [x["lease_id"] for x in data["leases"]] == ["dag/run/scaled"]
    assert data["leases"][0]["owner"] == {"dag_id": "dag", "try_number": 1}
    assert [x["lease_id"] for x in data["reaped"]] == ["dead/run/scaled"]
    assert outcome.lease is not None and data["expires_at"] == outcome.lease.expires_at
    assert data["changed"] is True and data["restored"] is False and data["drift"] is None
