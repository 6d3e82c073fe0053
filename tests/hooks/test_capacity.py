"""ElasticsearchMLHook.get_capacity when a monitoring API is refused: it classifies the answer (403, 404, 410)
into an unchecked capacity with the API, the status and Elasticsearch's reason, and raises anything else."""

from __future__ import annotations

import pytest

from airflow_esml.core.capacity import CapacityReport, CapacityUnchecked
from airflow_esml.exceptions import ElasticsearchRequestError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.testing import Simulator
from tests.conftest import CONN_ENV


def test_a_readable_cluster_gives_a_report(sim: Simulator) -> None:
    hook = ElasticsearchMLHook()
    assert isinstance(hook.get_capacity(hook.get_deployment("my-e5")), CapacityReport)


def test_a_key_without_monitor_gives_an_unchecked_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(api_keys={"k:s": ["monitor_ml"]}, seed=7) as sim:
        sim.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, sim.connection_uri())
        hook = ElasticsearchMLHook()
        found = hook.get_capacity(hook.get_deployment("my-e5"), autoscaling=False)
    assert isinstance(found, CapacityUnchecked) and found.warn and found.deployment_id == "my-e5"
    assert found.reason.startswith("nodes info (GET _nodes): permission denied: action [cluster:monitor/nodes/info]")
    assert "k:s" not in found.reason


def test_serverless_answers_give_an_unchecked_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(serverless=True, seed=8) as sim:
        sim.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, sim.connection_uri())
        hook = ElasticsearchMLHook()
        found = hook.get_capacity(hook.get_deployment("my-e5"))
    assert isinstance(found, CapacityUnchecked)
    assert found.reason == (
        "nodes info (GET _nodes): this API is not available on this cluster (410 api_not_available_exception: "
        "Request for uri [/_nodes] with method [GET] exists but is not available when running in serverless mode)"
    )


def test_other_errors_are_raised(sim: Simulator) -> None:
    hook = ElasticsearchMLHook()
    deployment = hook.get_deployment("my-e5")
    sim.inject_fault(endpoint="stats", status=400)
    with pytest.raises(ElasticsearchRequestError) as raised:
        hook.get_capacity(deployment)
    assert raised.value.status == 400
