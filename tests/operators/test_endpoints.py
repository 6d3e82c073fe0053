"""Inference endpoints wherever a deployment id is accepted, against the simulator's ``_inference`` APIs.

An endpoint-created deployment is scaled up and down through the API that owns it (the audit log says which); a
default endpoint that was never used is deployed, then scaled; a deployment scaled to zero is not ready until an
allocation starts; the ownership 409 becomes a clear error; BatchInferenceOperator infers through an endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_esml.exceptions import DeploymentOwnershipError
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.operators.inference import BatchInferenceOperator
from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator
from airflow_esml.sensors.deployment import AllocationsStartedSensor
from airflow_esml.testing import Simulator
from tests.conftest import CONN_ENV
from tests.helpers import requests_to

VERSIONS = ["8.13.4", "8.19.3", "9.1.5", "9.5.1"]
ELSER = ".elser-2-elasticsearch"
ADAPTIVE_FROM_ZERO = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 4}


@contextmanager
def cluster(monkeypatch: pytest.MonkeyPatch, version: str = "9.5.1", **kwargs: Any) -> Iterator[Simulator]:
    """A simulator of ``version`` with the model my-e5 (two 4-processor ML nodes), as elasticsearch_default."""
    kwargs.setdefault("load_seconds", 0.05)
    with Simulator(
        es_version=version, ml_nodes={"ml-node-1": 4, "ml-node-2": 4}, models=["my-e5"], seed=7, **kwargs
    ) as simulator:
        monkeypatch.setenv(CONN_ENV, simulator.connection_uri())
        if version.startswith("8."):  # the 9.x client talks to an 8.x server with its compatibility headers
            monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH", "8")
        yield simulator


def scale(deployment_id: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("wait_for_completion", True)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("poll_interval", 0.05)
    return UpdateDeploymentOperator(task_id="scale", deployment_id=deployment_id, **kwargs).execute({})  # type: ignore[arg-type]


def answered(simulator: Simulator, status: int) -> list[Any]:
    return [e for e in simulator.audit.events("request") if e.data.get("status") == status]


@pytest.mark.parametrize("version", VERSIONS)
def test_an_endpoint_created_deployment_is_scaled_up_and_down_through_the_api_that_owns_it(monkeypatch, version):
    with cluster(monkeypatch, version) as sim:
        sim.create_endpoint("my-ep", "my-e5", task_type="text_embedding", num_allocations=1)
        up = scale("my-ep", number_of_allocations=3)
        assert sim.cluster.target("my-ep") == 3 and up["deployment"]["started_allocations"] == 3
        down = scale("my-ep", number_of_allocations=1)
        assert sim.cluster.target("my-ep") == 1
        inference_api = version != "8.13.4"  # PUT _inference/.../_update from 8.17
        expected = {
            "managed_by": "inference" if inference_api else "trained_models",
            "inference_id": "my-ep",
            "task_type": "text_embedding",
        }
        for result in up, down:
            assert {k: result[k] for k in expected} == expected
            assert result["deployment_id"] == "my-ep" and result["model_id"] == "my-e5"
        assert requests_to(sim, "inference_update") == (2 if inference_api else 0)
        assert requests_to(sim, "update") == (0 if inference_api else 2)  # no ML update call where it is refused
        assert not answered(sim, 409)


@pytest.mark.parametrize("version", ["8.19.3", "9.5.1"])
def test_a_never_used_default_endpoint_is_deployed_then_scaled(monkeypatch, capsys, version):
    with cluster(monkeypatch, version) as sim:
        result = scale(ELSER, number_of_allocations=2, adaptive_policy="disable")
        assert sim.cluster.target(ELSER) == 2
        assert result["deployment"]["started_allocations"] == 2
        assert result["previous_adaptive_allocations"]["min_number_of_allocations"] == 0
        assert (result["managed_by"], result["inference_id"], result["task_type"]) == (
            "inference",
            ELSER,
            "sparse_embedding",
        )
        requests = [e.data.get("endpoint") for e in sim.audit.events("request")]
        assert requests.index("inference") < requests.index("inference_update")  # deployed first, then scaled
        assert requests.count("inference") == 1 and "update" not in requests
        assert "deploying it with one inference call" in capsys.readouterr().out


def test_a_default_endpoint_is_deployed_by_the_lease_acquire_and_restored_on_release(monkeypatch):
    context = {"run_id": "manual__1", "ti": SimpleNamespace(try_number=1)}
    common: dict[str, Any] = {"deployment_id": ELSER}
    with cluster(monkeypatch) as sim:
        acquired = AcquireDeploymentLeaseOperator(task_id="acquire", number_of_allocations=3, **common).execute(
            context  # type: ignore[arg-type]
        )
        assert acquired["managed_by"] == "inference" and acquired["inference_id"] == ELSER
        assert sim.cluster.target(ELSER) == 3
        released = ReleaseDeploymentLeaseOperator(task_id="release", **common).execute(context)  # type: ignore[arg-type]
        assert released["restored"] is True and released["managed_by"] == "inference"
        assert released["target"]["adaptive_allocations"]["min_number_of_allocations"] == 0  # its adaptive baseline
        assert requests_to(sim, "update") == 0


def test_a_zero_allocation_deployment_is_not_ready_until_an_allocation_starts(monkeypatch):
    with cluster(monkeypatch, scale_to_zero_seconds=0.3) as sim:
        sim.create_endpoint("ep", "my-e5", num_allocations=None, adaptive_allocations=ADAPTIVE_FROM_ZERO)
        deadline = time.monotonic() + 10
        while sim.cluster.target("ep") != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sensor = AllocationsStartedSensor(task_id="wait", deployment_id="ep", poke_interval=0.05, timeout=20)
        sensor._window = None
        first = sensor.poke({})  # type: ignore[arg-type]
        assert not first.is_done  # 0 of 0 is "fully_allocated", and still not ready
        woken = threading.Thread(target=lambda: sim.client(max_retries=0).inference.inference(
            inference_id="ep", input="wake up"))  # fmt: skip
        woken.start()
        try:
            status = sensor.execute({})  # type: ignore[arg-type]
        finally:
            woken.join(timeout=20)
        assert status["started_allocations"] >= 1


def test_the_ml_apis_ownership_409_is_a_clear_error_and_nothing_changes(monkeypatch):
    with cluster(monkeypatch) as sim:
        sim.create_endpoint("my-ep", "my-e5", num_allocations=1)
        sim.inject_fault(endpoint="inference_get", status=403)  # a key that may not read endpoints
        with pytest.raises(DeploymentOwnershipError, match=r"created by inference endpoint my-ep.*inference API"):
            scale("my-ep", number_of_allocations=3, wait_for_completion=False)
        assert sim.cluster.target("my-ep") == 1
        assert len(answered(sim, 409)) == 1


@pytest.mark.parametrize("task_type", ["text_embedding", "sparse_embedding"])
def test_batch_inference_through_an_endpoint(monkeypatch, task_type):
    with cluster(monkeypatch) as sim:
        sim.create_endpoint("my-ep", "my-e5", task_type=task_type, num_allocations=2)
        docs = [f"document number {i}" for i in range(40)]
        summary = BatchInferenceOperator(task_id="infer", deployment_id="my-ep", docs=docs).execute({})  # type: ignore[arg-type]
        assert summary["docs"] == 40 and summary["allocations"] == 2
        assert (summary["managed_by"], summary["inference_id"], summary["task_type"]) == (
            "inference",
            "my-ep",
            task_type,
        )
        assert len(summary["results"]) == 40 and all(r["embedding"] for r in summary["results"])
        if task_type == "sparse_embedding":  # the distinct words of each document, in document order
            assert [set(r["embedding"]) for r in summary["results"][:2]] == [
                {"document", "number", "0"},
                {"document", "number", "1"},
            ]
        assert requests_to(sim, "inference") == summary["requests"] and requests_to(sim, "infer") == 0


def test_batch_rerank_through_the_default_endpoint(monkeypatch):
    with cluster(monkeypatch) as sim:
        docs = ["short", "a much longer document", "medium text"]
        summary = BatchInferenceOperator(
            task_id="rerank", deployment_id=".rerank-v1-elasticsearch", docs=docs, query="longer document"
        ).execute({})  # type: ignore[arg-type]
        assert summary["task_type"] == "rerank" and len(summary["results"]) == 3
        assert all(isinstance(r["relevance_score"], float) for r in summary["results"])
        assert requests_to(sim, "inference") == 1 + summary["requests"]  # one to deploy it, then the batch


def attach(sim: Simulator, inference_id: str, deployment_id: str) -> None:
    body = {"service": "elasticsearch", "service_settings": {"deployment_id": deployment_id}}
    sim.client(max_retries=0).perform_request(
        "PUT", f"/_inference/text_embedding/{inference_id}", headers={"content-type": "application/json"}, body=body
    )


def test_an_attached_endpoint_scales_the_trained_model_deployment_it_uses(monkeypatch):
    with cluster(monkeypatch) as sim:
        sim.cluster.start_deployment("my-e5", deployment_id="dep", number_of_allocations=1, wait=True)
        attach(sim, "att", "dep")
        result = scale("att", number_of_allocations=2)
        assert sim.cluster.target("dep") == 2 and result["deployment_id"] == "dep"
        assert (result["managed_by"], result["inference_id"]) == ("trained_models", "att")
        assert requests_to(sim, "update") == 1 and requests_to(sim, "inference_update") == 0


def test_an_endpoint_on_another_endpoints_deployment_scales_it_through_that_endpoint(monkeypatch):
    with cluster(monkeypatch) as sim:
        sim.create_endpoint("e1", "my-e5", num_allocations=1)
        attach(sim, "e2", "e1")
        result = scale("e2", number_of_allocations=2)
        assert sim.cluster.target("e1") == 2
        assert (result["managed_by"], result["inference_id"], result["deployment_id"]) == ("inference", "e1", "e1")
        assert not answered(sim, 409)


def test_a_deferred_wait_on_an_attached_endpoint_watches_its_deployment(monkeypatch):
    from airflow.providers.common.compat.sdk import TaskDeferred

    with cluster(monkeypatch, load_seconds=5) as sim:
        sim.cluster.start_deployment("my-e5", deployment_id="dep", number_of_allocations=1, wait=True)
        attach(sim, "att", "dep")
        with pytest.raises(TaskDeferred) as deferred:
            scale("att", number_of_allocations=3, deferrable=True)
        assert deferred.value.trigger.deployment_id == "dep"  # type: ignore[attr-defined]
