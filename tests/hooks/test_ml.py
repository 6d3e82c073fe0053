from __future__ import annotations

import json
import logging

import elasticsearch
import pytest

from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus
from airflow_esml.exceptions import DeploymentNotFoundError, ElasticsearchRequestError, TransientRequestError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.testing import Simulator
from tests.conftest import CONN_ENV


def stats_requests(sim: Simulator) -> int:
    return len([e for e in sim.audit.events("request") if e.data.get("endpoint") == "stats"])


def test_get_deployment_returns_a_typed_status(sim):
    status = ElasticsearchMLHook().get_deployment("my-e5")
    assert (status.deployment_id, status.target_allocations, status.started_allocations) == ("my-e5", 1, 1)
    assert status.state == "started" and status.allocation_state == "fully_allocated"
    assert status.priority == "normal" and status.adaptive_allocations is None
    assert [n.routing_state for n in status.nodes] == ["started"]


def test_update_then_status_shows_the_new_target(sim):
    hook = ElasticsearchMLHook()
    hook.update_deployment("my-e5", number_of_allocations=3)
    status = hook.get_deployment("my-e5")
    assert status.target_allocations == 3
    assert sim.audit.target_history("my-e5")[-1][1] == 3


def test_deployment_with_its_own_id(sim):
    sim.cluster.start_deployment("my-e5", deployment_id="my-e5-batch", number_of_allocations=2, wait=True)
    status = ElasticsearchMLHook().get_deployment("my-e5-batch")
    assert (status.deployment_id, status.model_id, status.target_allocations) == ("my-e5-batch", "my-e5", 2)


def test_missing_and_undeployed_models_are_not_found(sim):
    sim.cluster.add_model("idle-model")
    hook = ElasticsearchMLHook()
    with pytest.raises(DeploymentNotFoundError, match="no-such-model"):
        hook.get_deployment("no-such-model")
    with pytest.raises(DeploymentNotFoundError, match="idle-model: the model exists but has no deployment"):
        hook.get_deployment("idle-model")


def test_transient_errors_are_retried_with_backoff(sim, caplog):
    sim.inject_fault(endpoint="stats", status=503, times=2)
    with caplog.at_level(logging.WARNING):
        status = ElasticsearchMLHook().get_deployment("my-e5")
    assert status.target_allocations == 1
    assert stats_requests(sim) == 3
    assert "transient error (503" in caplog.text


def test_connection_resets_are_retried(sim):
    sim.inject_fault(endpoint="stats", reset=True, times=1)
    assert ElasticsearchMLHook().get_deployment("my-e5").target_allocations == 1


def test_retries_give_up_with_a_transient_error(sim):
    sim.inject_fault(endpoint="stats", status=429, times=10)
    with pytest.raises(TransientRequestError, match="still failing after retries \\(429"):
        ElasticsearchMLHook().get_deployment("my-e5")
    assert stats_requests(sim) == ElasticsearchMLHook.default_retry.attempts


def test_terminal_errors_fail_at_once(sim):
    with pytest.raises(ElasticsearchRequestError, match="400"):
        ElasticsearchMLHook().update_deployment("my-e5", number_of_allocations=0)
    assert len([e for e in sim.audit.events("request") if e.data.get("endpoint") == "update"]) == 1


async def test_async_status_and_batch_status(sim):
    sim.cluster.start_deployment("my-e5", deployment_id="second", number_of_allocations=1, wait=True)
    hook = ElasticsearchMLHook()
    try:
        status = await hook.aget_deployment("my-e5")
        both = await hook.aget_deployments(["my-e5", "second", "missing"])
    finally:
        await hook.aclose()
    assert status.target_allocations == 1
    assert both["second"].deployment_id == "second"  # type: ignore[union-attr]
    assert isinstance(both["missing"], DeploymentNotFoundError)


def test_adaptive_settings_round_trip(sim):
    hook = ElasticsearchMLHook()
    hook.update_deployment("my-e5", adaptive_allocations=AdaptiveAllocations(True, 1, 4))
    assert hook.get_deployment("my-e5").adaptive_allocations == AdaptiveAllocations(True, 1, 4)


def test_infer_returns_one_result_per_doc(sim):
    results = ElasticsearchMLHook().infer("my-e5", [{"text_field": "a"}, {"text_field": "b"}])
    assert len(results) == 2


def test_test_connection(sim, monkeypatch):
    ok, message = ElasticsearchMLHook().test_connection()
    assert ok and message.startswith("Connected to Elasticsearch 9.")
    monkeypatch.setenv(CONN_ENV, "elasticsearch://127.0.0.1:1/http")
    ok, message = ElasticsearchMLHook().test_connection()
    assert not ok and "cannot reach Elasticsearch" in message


def test_api_key_and_tls_through_the_connection(tmp_path, monkeypatch):
    with Simulator(ml_nodes={"n": 2}, api_key="s3cr3t-key", tls_dir=tmp_path, load_seconds=0.1) as secure:
        secure.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, secure.connection_uri())
        assert ElasticsearchMLHook().get_deployment("my-e5").target_allocations == 1
        wrong = json.dumps(
            {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": int(secure.url.rsplit(":", 1)[1]),
             "schema": "https", "extra": {"api_key": "wrong-key", "ca_certs": secure.ca_certs}}
        )  # fmt: skip
        monkeypatch.setenv(CONN_ENV, wrong)
        with pytest.raises(ElasticsearchRequestError, match="authentication failed") as excinfo:
            ElasticsearchMLHook().get_deployment("my-e5")
        assert "wrong-key" not in str(excinfo.value)
        port = int(secure.url.rsplit(":", 1)[1])
        no_ca = json.dumps({"conn_type": "elasticsearch", "host": "127.0.0.1", "port": port,
                            "schema": "https", "extra": {"api_key": "s3cr3t-key"}})  # fmt: skip
        monkeypatch.setenv(CONN_ENV, no_ca)
        with pytest.raises(ElasticsearchRequestError, match="TLS verification failed"):
            ElasticsearchMLHook().get_deployment("my-e5")


CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])


@pytest.mark.skipif(CLIENT_MAJOR < 9, reason="an 8.x client speaks to an 8.x server without the setting")
def test_es8_server_needs_the_compat_setting(monkeypatch):
    with Simulator(ml_nodes={"n": 2}, es_version="8.19.3", load_seconds=0.1) as old:
        old.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, old.connection_uri())
        with pytest.raises(ElasticsearchRequestError, match="es_compat_with"):
            ElasticsearchMLHook().get_deployment("my-e5")
        monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH", "8")
        assert ElasticsearchMLHook().get_deployment("my-e5").target_allocations == 1


@pytest.mark.skipif(CLIENT_MAJOR >= 9, reason="a 9.x client needs [elasticsearch] es_compat_with for an 8.x server")
def test_es8_client_and_server_need_no_setting(monkeypatch):
    with Simulator(ml_nodes={"n": 2}, es_version="8.19.3", load_seconds=0.1) as old:
        old.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, old.connection_uri())
        assert ElasticsearchMLHook().get_deployment("my-e5").target_allocations == 1


async def test_a_thousand_distinct_deployments_are_read_in_one_request_that_fits_a_request_line(monkeypatch):
    # 1,000 ids of 23 characters are about 24 KB joined, beyond Elasticsearch's 4 KB request line; a cluster
    # holds at most 100 deployments here, so most of the awaited ids do not exist (yet)
    ids = [f"scoring-model-nightly-{i:03d}" for i in range(1000)]
    nodes = {f"ml-{n}": 4 for n in range(8)}
    with Simulator(ml_nodes=nodes, models=["e5"], load_seconds=0, seed=1) as sim:
        for deployment_id in ids[:20]:
            sim.cluster.start_deployment("e5", deployment_id=deployment_id)
        monkeypatch.setenv(CONN_ENV, sim.connection_uri())
        hook = ElasticsearchMLHook()
        try:
            found = await hook.aget_deployments(ids)
        finally:
            await hook.aclose()
        requests = [e.data for e in sim.audit.events("request") if e.data.get("endpoint") == "stats"]
    assert sorted(d.deployment_id for d in found.values() if isinstance(d, DeploymentStatus)) == ids[:20]
    assert all(isinstance(found[i], DeploymentNotFoundError) for i in ids[20:])
    assert [(r["status"], r["path"]) for r in requests] == [(200, "/_ml/trained_models/_all/_stats")]
