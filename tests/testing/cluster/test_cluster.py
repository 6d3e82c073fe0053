"""The cluster's setup: ML nodes and their failure (``cluster/cluster.py``), driven with a manual clock."""

from __future__ import annotations

from tests.testing.cluster.conftest import ManualClock, make


def test_failed_node_fails_routes_and_deployment(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=2, ml_2=2)
    cluster.start_deployment("my-e5", number_of_allocations=2)
    clock.tick(2)
    stats = cluster.deployment_stats("my-e5")
    assert len(stats["nodes"]) == 2
    cluster.fail_node("ml-1", "out of memory")
    stats = cluster.deployment_stats("my-e5")
    assert stats["state"] == "started"
    assert stats["allocation_status"]["allocation_count"] == 1
    failed = [n for n in stats["nodes"] if n["routing_state"]["routing_state"] == "failed"]
    assert failed[0]["routing_state"]["reason"] == "out of memory"
    cluster.fail_node("ml-2")
    stats = cluster.deployment_stats("my-e5")
    assert stats["state"] == "failed"
    assert stats["reason"] == "All node routes are failed; see node route reason for details"
    assert "allocation_status" in stats
    assert [e.data["node"] for e in cluster.audit.events("node_failed")] == ["ml-1", "ml-2"]
