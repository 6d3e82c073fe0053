"""UpdateDeploymentOperator on a deployment that runs hold leases on: it never cuts capacity under them."""

from __future__ import annotations

from airflow_esml.operators.deployment import UpdateDeploymentOperator
from tests.lease_helpers import lease_doc, make_store


def update(count: int, **kwargs) -> dict:
    operator = UpdateDeploymentOperator(task_id="scale", deployment_id="my-e5", number_of_allocations=count, **kwargs)
    return operator.execute({})


def test_an_off_hours_update_during_a_batch_waits_for_the_batch_to_end(sim):
    update(2)  # business hours, no lease: directly
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 4, ttl=60.0)
    result = update(1)  # off hours, while the batch holds 4
    assert result["leases"] == {
        "live": 1,
        "baseline": {"number_of_allocations": 1, "adaptive_allocations": None},
        "target": {"number_of_allocations": 4, "adaptive_allocations": None},
        "deferred_until_leases_end": True,
    }
    assert result["number_of_allocations"] == 4 and result["updated"] is False
    assert sim.cluster.target("my-e5") == 4  # the batch keeps its allocations
    store.release("my-e5", "batch/run/scaled")
    assert sim.cluster.target("my-e5") == 1  # the off-hours count, not the 2 recorded before the batch
    assert [v for _, v in sim.audit.target_history("my-e5")][-2:] == [4, 1]  # never below 4 before the release
    assert lease_doc(sim) is None


def test_a_scale_up_above_the_leases_applies_at_once_and_stays(sim):
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 3, ttl=60.0)
    result = update(6, capacity_policy="off")
    assert result["leases"]["deferred_until_leases_end"] is False
    assert sim.cluster.target("my-e5") == 6
    store.release("my-e5", "batch/run/scaled")
    assert sim.cluster.target("my-e5") == 6


def test_without_leases_or_when_told_the_update_is_direct(sim):
    assert "leases" not in update(2)
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 3, ttl=60.0)
    result = update(1, honour_leases=False)
    assert "leases" not in result and sim.cluster.target("my-e5") == 1
