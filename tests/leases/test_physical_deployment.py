"""Leases key on the physical deployment: an inference endpoint attached to a deployment and the deployment's own
id share one lease document, so one run's release never cuts capacity under another run's work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_esml.core.params import DEFAULT_LEASES_INDEX
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.leases.store import LeaseStore
from airflow_esml.testing import Simulator


def new_store() -> LeaseStore:
    """A store with its own hook, as each task of a separate DAG has."""
    return LeaseStore(ElasticsearchMLHook(), lock_ttl=10.0)


@pytest.fixture
def stores() -> Iterator[list[LeaseStore]]:
    made: list[LeaseStore] = []
    yield made
    for store in made:
        store.hook.close()


def attach(sim: Simulator, case: str) -> tuple[str, str]:
    """``(inference id, deployment id)`` of an endpoint attached to another deployment."""
    if case == "trained_model":  # attached to a deployment started through the trained models API
        sim.create_endpoint("e5-search", deployment_id="my-e5")
        return "e5-search", "my-e5"
    sim.create_endpoint("e5-ep", "my-e5", num_allocations=1)  # a deployment created by an endpoint
    sim.cluster.wait_for("e5-ep")
    sim.create_endpoint("e5-attached", deployment_id="e5-ep")
    return "e5-attached", "e5-ep"


@pytest.mark.parametrize("case", ["trained_model", "endpoint_created"])
def test_an_inference_id_and_its_deployment_id_share_one_lease_document(
    sim: Simulator, stores: list[LeaseStore], case: str
) -> None:
    inference_id, deployment_id = attach(sim, case)
    baseline = sim.cluster.target(deployment_id)
    by_endpoint, by_deployment = new_store(), new_store()
    stores.extend([by_endpoint, by_deployment])

    by_endpoint.acquire(inference_id, "dag_a/run/lease", 4, ttl=60.0)
    by_deployment.acquire(deployment_id, "dag_b/run/lease", 3, ttl=60.0)
    assert sim.cluster.target(deployment_id) == 4

    first = by_endpoint.release(inference_id, "dag_a/run/lease")
    assert first.restored is False
    assert [lease.lease_id for lease in first.leases] == ["dag_b/run/lease"]
    assert sim.cluster.target(deployment_id) == 3  # the other run's request still holds

    last = by_deployment.release(deployment_id, "dag_b/run/lease")
    assert last.restored is True
    assert sim.cluster.target(deployment_id) == baseline
    history = [target for _, target in sim.audit.target_history(deployment_id)]
    assert history[-1] == baseline and all(t >= 3 for t in history[history.index(4) : -1])  # none below 3 before
    assert sim.documents.get(DEFAULT_LEASES_INDEX, inference_id) is None
    assert sim.documents.get(DEFAULT_LEASES_INDEX, deployment_id) is None


def test_the_outcome_names_the_id_passed_and_the_deployment_leased(sim: Simulator, stores: list[LeaseStore]) -> None:
    inference_id, deployment_id = attach(sim, "trained_model")
    store = new_store()
    stores.append(store)
    outcome = store.acquire(inference_id, "dag/run/lease", 2, ttl=60.0)
    shown = outcome.to_dict()
    assert shown["deployment_id"] == inference_id
    assert shown["leased_deployment_id"] == deployment_id
    assert sim.documents.get(DEFAULT_LEASES_INDEX, deployment_id) is not None
    assert store.read(inference_id) == store.read(deployment_id)
    store.release(inference_id, "dag/run/lease")


def test_a_trained_model_deployment_keeps_its_lease_document_id(sim: Simulator, stores: list[LeaseStore]) -> None:
    store = new_store()
    stores.append(store)
    outcome = store.acquire("my-e5", "dag/run/lease", 2, ttl=60.0)
    assert outcome.to_dict()["leased_deployment_id"] == "my-e5"
    assert sim.documents.get(DEFAULT_LEASES_INDEX, "my-e5")["deployment_id"] == "my-e5"
    store.release("my-e5", "dag/run/lease")
