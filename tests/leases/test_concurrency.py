"""Overlapping runs sharing one deployment through leases, checked against the simulator's audit log."""

from __future__ import annotations

import logging
import random
import threading
import time

import pytest

from airflow_esml.exceptions import TransientRequestError
from tests.lease_helpers import PATIENT, Held, invariant_violations, lease_doc, make_store

BASELINE = 1


def run_overlapping(sim, *, runs: int, seed: int, retry=None) -> tuple[list[Held], list[BaseException]]:
    """``runs`` threads, each: wait a random time, acquire, hold for a random time, release."""
    rng = random.Random(seed)
    plans = [(rng.uniform(0, 0.8), rng.uniform(0.1, 0.8), rng.randint(1, 6)) for _ in range(runs)]
    held: list[Held] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    begin = time.time()

    def one(index: int, delay: float, duration: float, allocations: int) -> None:
        store = make_store(retry=retry)
        name = f"dag_{index % 3}/run_{index}/scaled"
        try:
            time.sleep(max(0.0, begin + delay - time.time()))
            store.acquire("my-e5", name, allocations, ttl=60.0, owner={"run": index})
            start = time.time()
            time.sleep(duration)
            end = time.time()
            store.release("my-e5", name)
            with lock:
                held.append(Held(name, allocations, start, end))
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            store.hook.close()

    threads = [threading.Thread(target=one, args=(i, *plan), name=f"run-{i}") for i, plan in enumerate(plans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a run never ended"
    return held, errors


def assert_settled(sim, held: list[Held]) -> None:
    history = sim.audit.target_history("my-e5")
    assert invariant_violations(history, held) == []
    assert sim.cluster.target("my-e5") == BASELINE
    assert history[-1][1] == BASELINE
    assert lease_doc(sim) is None  # no lease left behind
    # the runs did overlap: at some instant several leases were held at once
    assert max(sum(h.start <= x.start <= h.end for h in held) for x in held) >= 2


def test_overlapping_runs_never_drop_below_a_live_lease_and_end_at_the_baseline(sim):
    held, errors = run_overlapping(sim, runs=10, seed=7)
    assert errors == []
    assert len(held) == 10
    assert_settled(sim, held)
    assert max(v for _, v in sim.audit.target_history("my-e5")) == max(h.allocations for h in held)


def test_overlapping_runs_survive_transient_faults_on_a_fifth_of_the_calls(sim):
    sim.inject_fault(status=429, probability=0.07)
    sim.inject_fault(status=503, probability=0.07)
    sim.inject_fault(reset=True, probability=0.07)
    held, errors = run_overlapping(sim, runs=8, seed=11, retry=PATIENT)
    sim.clear_faults()
    assert errors == []
    assert len(held) == 8
    assert_settled(sim, held)
    faults = sim.audit.events("fault_injected")
    requests = sim.audit.events("request")
    assert len(faults) >= 10
    assert 0.1 <= len(faults) / len(requests) <= 0.3


def test_a_run_killed_after_scaling_up_expires_and_the_next_lease_operation_restores(sim, caplog):
    store = make_store()
    store.acquire("my-e5", "dead/run/scaled", 4, ttl=0.5, owner={"dag_id": "dead"})  # never released
    assert sim.cluster.target("my-e5") == 4
    time.sleep(0.6)
    with caplog.at_level(logging.WARNING, logger="airflow_esml.leases.store"):
        store.acquire("my-e5", "alive/run/scaled", 2, ttl=60.0)
    assert "reaping lease dead/run/scaled" in caplog.text
    assert sim.cluster.target("my-e5") == 2  # the dead run's 4 are gone, the live lease keeps its 2
    store.release("my-e5", "alive/run/scaled")
    assert sim.cluster.target("my-e5") == BASELINE
    assert lease_doc(sim) is None


def test_a_killed_runs_lease_is_reaped_by_the_maintenance_call(sim):
    store = make_store()
    store.acquire("my-e5", "dead/run/scaled", 3, ttl=0.3)
    time.sleep(0.4)
    outcome = store.reconcile("my-e5")
    assert [x.lease_id for x in outcome.reaped] == ["dead/run/scaled"]
    assert outcome.restored
    assert sim.cluster.target("my-e5") == BASELINE
    assert lease_doc(sim) is None


def test_a_retried_scale_up_restores_the_original_baseline(sim):
    store = make_store()
    first = store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0)
    # the first try scaled up, then died (say, in its wait); the retry runs acquire again
    retry = store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0)
    assert first.original_baseline == retry.original_baseline
    assert retry.original_baseline.number_of_allocations == BASELINE
    assert len(retry.leases) == 1
    store.release("my-e5", "dag/run/scaled")
    assert sim.cluster.target("my-e5") == BASELINE
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [4, BASELINE]


def test_a_lease_that_cannot_be_served_is_released_again(sim):
    store = make_store()
    with pytest.raises(TransientRequestError, match="not enough resources"):
        store.acquire("my-e5", "greedy/run/scaled", 40, ttl=60.0)
    assert lease_doc(sim) is None
    assert sim.cluster.target("my-e5") == BASELINE


@pytest.mark.parametrize(
    ("policy", "final", "message"),
    [
        ("respect", 6, "leaving the hand-made setting in place"),
        ("restore", BASELINE, "overwriting it with 1 allocations"),
    ],
)
def test_a_hand_made_change_during_a_run_follows_the_drift_policy(sim, caplog, policy, final, message):
    store = make_store()
    store.acquire("my-e5", "dag/run/scaled", 4, ttl=60.0)
    sim.cluster.update_deployment("my-e5", number_of_allocations=6)  # someone scales it by hand
    with caplog.at_level(logging.WARNING, logger="airflow_esml.leases.store"):
        outcome = store.release("my-e5", "dag/run/scaled", on_drift=policy)
    assert sim.cluster.target("my-e5") == final
    assert "changed outside the leases (expected 4 allocations, found 6 allocations)" in caplog.text
    assert message in caplog.text
    assert outcome.drift is not None and outcome.drift["policy"] == policy
    assert lease_doc(sim) is None


def test_a_hand_made_decrease_is_undone_for_live_leases_and_kept_as_the_baseline(sim, caplog):
    store = make_store()
    store.acquire("my-e5", "a/run/scaled", 4, ttl=60.0)
    store.acquire("my-e5", "b/run/scaled", 3, ttl=60.0)
    sim.cluster.update_deployment("my-e5", number_of_allocations=2)
    with caplog.at_level(logging.WARNING, logger="airflow_esml.leases.store"):
        store.release("my-e5", "a/run/scaled")
    assert sim.cluster.target("my-e5") == 3  # b still gets its 3
    assert "keeping the hand-made setting as the new baseline" in caplog.text
    store.release("my-e5", "b/run/scaled")
    assert sim.cluster.target("my-e5") == 2  # the hand-made setting, not the original 1
    assert "not 1 allocations recorded before the first lease" in caplog.text


def test_a_change_waits_until_a_starting_deployment_is_started(sim):
    sim.add_model("other")
    sim.start_deployment("other", number_of_allocations=1, wait=False)
    assert sim.cluster.deployment_stats("other")["state"] == "starting"
    store = make_store()
    store.acquire("other", "dag/run/scaled", 2, ttl=60.0)  # Elasticsearch would answer 409 while starting
    assert sim.cluster.target("other") == 2
    store.release("other", "dag/run/scaled")
    assert sim.cluster.target("other") == 1
