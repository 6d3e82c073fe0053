"""On Serverless adaptive allocations are always on: restoring a baseline recorded as a fixed count sends an
adaptive form (min = max = the count), never ``number_of_allocations``, which Serverless refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.leases.store import LeaseStore
from airflow_esml.testing import Simulator
from tests.conftest import CONN_ENV, update_requests


@pytest.fixture
def fixed_on_serverless(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A Serverless project whose ``my-e5`` was started with a fixed count of 2 (the simulator does not check
    starts, as a deployment made before the project's rules would keep its settings)."""
    with Simulator(ml_nodes={"ml-node-1": 8}, load_seconds=0.1, seed=3, serverless=True) as sim:
        sim.cluster.start_deployment("my-e5", number_of_allocations=2, wait=True)
        monkeypatch.setenv(CONN_ENV, sim.connection_uri())
        yield sim


def test_restoring_a_fixed_baseline_on_serverless_sends_adaptive_settings(fixed_on_serverless: Simulator) -> None:
    sim = fixed_on_serverless
    hook = ElasticsearchMLHook()
    store = LeaseStore(hook, lock_ttl=10.0)
    try:
        acquired = store.acquire("my-e5", "dag/run/lease", 5, ttl=60.0)
        assert acquired.original_baseline is not None and not acquired.original_baseline.adaptive_enabled
        released = store.release("my-e5", "dag/run/lease")
    finally:
        hook.close()
    assert released.restored is True
    updates = update_requests(sim)
    assert len(updates) == 2 and all(e.data.get("status") == 200 for e in updates)  # a count would answer 400
    adaptive = sim.cluster.deployment_stats("my-e5")["adaptive_allocations"]
    assert adaptive["enabled"] is True
    assert adaptive["min_number_of_allocations"] == adaptive["max_number_of_allocations"] == 2
