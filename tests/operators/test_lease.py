"""The lease operators against the simulator: acquire, release, wait and roll back, reap."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_esml.exceptions import (
    AllocationsTimeoutError,
    DeploymentFailedError,
    InsufficientCapacityError,
    InvalidParameterError,
)
from airflow_esml.operators.lease import (
    AcquireDeploymentLeaseOperator,
    ReapDeploymentLeasesOperator,
    ReleaseDeploymentLeaseOperator,
)
from tests.helpers import requests_to
from tests.lease_helpers import lease_doc, make_store

ADAPTIVE = {"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4}


def context(run_id: str = "manual__1", try_number: int = 1) -> dict:
    return {"run_id": run_id, "ti": SimpleNamespace(try_number=try_number)}


def acquire(**kwargs) -> AcquireDeploymentLeaseOperator:
    kwargs.setdefault("number_of_allocations", 3)
    kwargs.setdefault("deployment_id", "my-e5")
    return AcquireDeploymentLeaseOperator(task_id="acquire", **kwargs)


def release(**kwargs) -> ReleaseDeploymentLeaseOperator:
    return ReleaseDeploymentLeaseOperator(task_id="release", deployment_id="my-e5", **kwargs)


def test_acquire_then_release_restores_the_baseline(sim):
    result = acquire().execute(context())
    assert json.loads(json.dumps(result)) == result
    assert result["lease_id"].endswith("/manual__1/my-e5")
    assert result["number_of_allocations"] == 3
    assert result["original_baseline"] == {"number_of_allocations": 1, "adaptive_allocations": None}
    assert result["leases"][0]["owner"]["try_number"] == 1
    assert sim.cluster.target("my-e5") == 3
    released = release().execute(context())
    assert released["restored"] is True
    assert released["target"] == {"number_of_allocations": 1, "adaptive_allocations": None}
    assert sim.cluster.target("my-e5") == 1
    assert lease_doc(sim) is None


def test_two_runs_share_the_deployment(sim):
    acquire(number_of_allocations=4).execute(context("run_a"))
    acquire(number_of_allocations=2).execute(context("run_b"))
    left = release().execute(context("run_a"))
    assert left["restored"] is False
    assert [x["allocations"] for x in left["leases"]] == [2]
    assert sim.cluster.target("my-e5") == 2
    release().execute(context("run_b"))
    assert sim.cluster.target("my-e5") == 1


def test_two_installations_running_the_same_dag_and_run_hold_two_leases(sim, monkeypatch):
    # the same DAG scheduled in two Airflow installations: same dag_id, same run_id, one shared cluster
    monkeypatch.setenv("AIRFLOW__ESML__INSTALLATION_ID", "team-a")
    first = acquire(number_of_allocations=4).execute(context("scheduled__2026-11-29"))
    monkeypatch.setenv("AIRFLOW__ESML__INSTALLATION_ID", "team-b")
    second = acquire(number_of_allocations=2).execute(context("scheduled__2026-11-29"))
    assert first["lease_id"].startswith("team-a:") and second["lease_id"].startswith("team-b:")
    assert len(second["leases"]) == 2
    monkeypatch.setenv("AIRFLOW__ESML__INSTALLATION_ID", "team-a")
    left = release().execute(context("scheduled__2026-11-29"))
    assert [lease["lease_id"] for lease in left["leases"]] == [second["lease_id"]]  # team-b's lease is kept
    assert sim.cluster.target("my-e5") == 2


def test_a_bad_installation_id_fails_before_anything_changes(sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ESML__INSTALLATION_ID", "team a/b")
    with pytest.raises(InvalidParameterError, match=r"\[esml\] installation_id must be .*got 'team a/b'"):
        acquire().execute(context())
    assert sim.cluster.target("my-e5") == 1 and lease_doc(sim) is None


def test_a_retried_acquire_keeps_the_first_baseline(sim):
    acquire(number_of_allocations=4).execute(context(try_number=1))
    second = acquire(number_of_allocations=4).execute(context(try_number=2))
    assert second["original_baseline"]["number_of_allocations"] == 1
    assert second["leases"][0]["owner"]["try_number"] == 2
    release().execute(context())
    assert sim.cluster.target("my-e5") == 1


def test_adaptive_baseline_keeps_adaptive_on_with_its_minimum_raised_and_restored_exactly(sim):
    sim.cluster.update_deployment("my-e5", adaptive_allocations=ADAPTIVE)
    result = acquire(number_of_allocations=3).execute(context())
    assert result["original_baseline"]["adaptive_allocations"] == ADAPTIVE
    stats = sim.cluster.deployment_stats("my-e5")
    assert stats["adaptive_allocations"] == {**ADAPTIVE, "enabled": True, "min_number_of_allocations": 3}
    assert sim.cluster.target("my-e5") >= 3 and result["number_of_allocations"] == 3
    release().execute(context())
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"] == ADAPTIVE


def test_adaptive_policy_fail_refuses_the_lease_before_anything_changes(sim):
    sim.cluster.update_deployment("my-e5", adaptive_allocations=ADAPTIVE)
    updates = requests_to(sim, "update")
    with pytest.raises(InvalidParameterError, match="adaptive_policy='fail': nothing was changed"):
        acquire(number_of_allocations=3, adaptive_policy="fail").execute(context())
    assert lease_doc(sim) is None and requests_to(sim, "update") == updates


def test_adaptive_baseline_is_switched_off_for_the_lease_and_back_on_after(sim):
    sim.cluster.update_deployment("my-e5", adaptive_allocations=ADAPTIVE)
    result = acquire(number_of_allocations=3, adaptive_policy="disable").execute(context())
    assert result["original_baseline"]["adaptive_allocations"] == ADAPTIVE
    stats = sim.cluster.deployment_stats("my-e5")
    assert sim.cluster.target("my-e5") == 3
    assert stats["adaptive_allocations"]["enabled"] is False
    release().execute(context())
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"] == ADAPTIVE


def test_wait_for_completion_in_the_worker(sim):
    result = acquire(number_of_allocations=3, wait_for_completion=True, poll_interval=0.1, timeout=30).execute(
        context()
    )
    assert result["deployment"]["started_allocations"] >= 3


def test_a_failed_wait_releases_the_lease_before_failing(sim):
    sim.set_load_seconds(30)
    operator = acquire(number_of_allocations=4, wait_for_completion=True, poll_interval=0.1, timeout=0.5)
    with pytest.raises(AllocationsTimeoutError):
        operator.execute(context())
    assert lease_doc(sim) is None
    assert sim.cluster.target("my-e5") == 1


def test_deferrable_wait_defers_then_a_failed_event_releases_the_lease(sim):
    sim.set_load_seconds(30)
    operator = acquire(number_of_allocations=3, wait_for_completion=True, deferrable=True, poll_interval=0.1)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context())
    result = deferred.value.kwargs["result"]
    assert result["number_of_allocations"] == 3
    assert lease_doc(sim) is not None
    with pytest.raises(DeploymentFailedError, match="node gone"):
        operator.execute_complete(context(), {"status": "failed", "message": "node gone"}, result)
    assert lease_doc(sim) is None
    assert sim.cluster.target("my-e5") == 1


def test_deferrable_success_event_returns_the_result(sim):
    operator = acquire(number_of_allocations=2, wait_for_completion=True, deferrable=True)
    result = operator.execute_complete(context(), {"status": "success", "message": "ok"}, {"lease_id": "x"})
    assert result == {"lease_id": "x", "deployment": None}


def test_releasing_a_lease_that_is_gone_is_not_an_error(sim):
    result = release().execute(context())
    assert result["target"] is None and result["restored"] is False
    assert requests_to(sim, "update") == 0


def test_the_reaper_restores_deployments_whose_runs_died(sim):
    acquire(number_of_allocations=4, lease_ttl=0.3).execute(context("dead_run"))
    assert sim.cluster.target("my-e5") == 4
    time.sleep(0.4)
    result = ReapDeploymentLeasesOperator(task_id="reap").execute(context())
    assert list(result) == ["my-e5"]
    assert [x["lease_id"].split("/")[1] for x in result["my-e5"]["reaped"]] == ["dead_run"]
    assert result["my-e5"]["restored"] is True
    assert sim.cluster.target("my-e5") == 1
    assert ReapDeploymentLeasesOperator(task_id="reap").execute(context()) == {}


def test_the_reaper_keeps_live_leases(sim):
    acquire(number_of_allocations=2).execute(context("alive"))
    result = ReapDeploymentLeasesOperator(task_id="reap", deployment_ids=["my-e5"]).execute(context())
    assert result["my-e5"]["reaped"] == [] and len(result["my-e5"]["leases"]) == 1
    assert sim.cluster.target("my-e5") == 2
    assert make_store().read("my-e5") is not None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"on_drift": "ignore"}, "on_drift must be one of"),
        ({"lease_ttl": 0}, "lease_ttl must be a positive number"),
        ({"lock_ttl": -1}, "lock_ttl must be a positive number"),
    ],
)
def test_bad_settings_fail_when_the_dag_is_parsed(kwargs, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        acquire(**kwargs)


def test_a_bad_count_fails_before_any_lease_is_taken(sim):
    with pytest.raises(InvalidParameterError, match="number_of_allocations must be a positive integer"):
        acquire(number_of_allocations="many").execute(context())
    assert lease_doc(sim) is None


def test_template_fields():
    assert set(AcquireDeploymentLeaseOperator.template_fields) >= {"deployment_id", "number_of_allocations"}
    assert "lease_name" in ReleaseDeploymentLeaseOperator.template_fields
    assert "deployment_ids" in ReapDeploymentLeasesOperator.template_fields


def keeper(**kwargs):
    from airflow_esml.operators.lease import KeepDeploymentLeaseOperator

    return KeepDeploymentLeaseOperator(task_id="keep_lease", deployment_id="my-e5", **kwargs)


def test_the_keeper_renews_until_the_release_and_fails_on_a_lost_lease(sim):
    from airflow_esml.exceptions import LeaseLostError

    acquire(number_of_allocations=3, lease_ttl=2).execute(context())
    keep = keeper(lease_ttl=2, renew_interval=0.3)
    assert keep.poke_interval == 0.3 and keep.mode == "reschedule"
    before = lease_doc(sim)["leases"][0]["expires_at"]
    assert keep.poke(context()) is False
    assert lease_doc(sim)["leases"][0]["expires_at"] > before
    release().execute(context())
    assert keep.poke(context()) is True
    keep.execute_complete(context(), {"status": "success", "state": "released", "message": "released"})
    acquire(number_of_allocations=3, lease_ttl=0.3).execute(context("dead"))
    time.sleep(0.4)
    make_store().reconcile("my-e5")
    with pytest.raises(LeaseLostError, match="was reaped at"):
        keeper(lease_ttl=0.3).poke(context("dead"))
    with pytest.raises(LeaseLostError, match="reaped at"):
        release().execute(context("dead"))
    with pytest.raises(LeaseLostError, match="gone"):
        keep.execute_complete(context(), {"status": "failed", "state": "lost", "message": "gone"})


def test_the_keeper_defers_to_the_lease_trigger(sim):
    acquire(number_of_allocations=2).execute(context())
    with pytest.raises(TaskDeferred) as deferred:
        keeper(deferrable=True, lease_ttl=30).execute(context())
    trigger = deferred.value.trigger
    assert type(trigger).__name__ == "LeaseKeeperTrigger"
    assert trigger.lease_id.endswith("/manual__1/my-e5") and trigger.renew_interval == 10.0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"lease_ttl": 2, "renew_interval": 1.5}, "renew_interval must be at most half of lease_ttl")],
)
def test_bad_keeper_settings_fail_when_the_dag_is_parsed(kwargs, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        keeper(**kwargs)


# -- the capacity check of the lease path (capacity_policy) --------------------------------------------------


def test_capacity_fail_fails_fast_when_the_request_can_never_fit(sim):
    sim.cluster.start_deployment("my-e5", deployment_id="my-e5-b", number_of_allocations=6, wait=True)
    start = time.monotonic()
    with pytest.raises(InsufficientCapacityError, match="my-e5: 5 allocations do not fit: the ML nodes can hold 2"):
        acquire(number_of_allocations=5).execute(context())  # capacity_policy="fail" is the default
    assert time.monotonic() - start < 10  # no retries of a 429 until they run out
    assert requests_to(sim, "update") == 0 and sim.cluster.target("my-e5") == 1 and requests_to(sim, "nodes") > 0
    assert lease_doc(sim) is None  # the lease was released again


def test_capacity_fit_gives_the_lease_what_fits(sim):
    sim.cluster.start_deployment("my-e5", deployment_id="my-e5-b", number_of_allocations=6, wait=True)
    result = acquire(number_of_allocations=5, capacity_policy="fit").execute(context())
    assert result["granted_allocations"] == 2 and result["requested_allocations"] == 5
    assert result["capacity"]["capped"] and result["capacity"]["allowed"] == 2
    assert sim.cluster.target("my-e5") == 2 and result["leases"][0]["allocations"] == 2
    release().execute(context())
    assert sim.cluster.target("my-e5") == 1 and lease_doc(sim) is None


def test_capacity_fail_checks_a_raised_adaptive_minimum_but_not_the_kept_maximum(sim):
    sim.cluster.update_deployment(
        "my-e5", adaptive_allocations={"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 32}
    )
    result = acquire(number_of_allocations=4).execute(context())  # max 32 > 8 processors is the deployment's own
    assert result["capacity"]["capped"] is False
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"]["min_number_of_allocations"] == 4
    release().execute(context())
    with pytest.raises(InsufficientCapacityError, match="9 allocations do not fit"):
        acquire(number_of_allocations=9).execute(context())
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"]["min_number_of_allocations"] == 0


def test_capacity_off_sends_the_request_unchecked(sim):
    result = acquire(number_of_allocations=3, capacity_policy=None).execute(context())
    assert result["capacity"] is None and requests_to(sim, "nodes") == 0


# -- Serverless ------------------------------------------------------------------------------------------------


@pytest.fixture
def serverless(monkeypatch):
    """A simulated Serverless project with ``my-e5`` deployed with adaptive allocations (min 0, max 4)."""
    from airflow_esml.testing import Simulator
    from tests.conftest import CONN_ENV

    with Simulator(ml_nodes={"ml-node-1": 4}, load_seconds=0.2, seed=5, serverless=True) as sim:
        sim.cluster.start_deployment("my-e5", adaptive_allocations={**ADAPTIVE, "min_number_of_allocations": 0},
                                     wait=True)  # fmt: skip
        monkeypatch.setenv(CONN_ENV, sim.connection_uri())
        yield sim


def test_on_serverless_the_lease_raises_the_minimum_without_a_capacity_check(serverless):
    before = serverless.cluster.deployment_stats("my-e5")["adaptive_allocations"]
    result = acquire(number_of_allocations=3).execute(context())
    assert result["capacity"] == {"checked": False, "reason": "Serverless project autoscales"}
    assert serverless.cluster.deployment_stats("my-e5")["adaptive_allocations"]["min_number_of_allocations"] == 3
    release().execute(context())
    assert serverless.cluster.deployment_stats("my-e5")["adaptive_allocations"] == before
    assert not [e for e in serverless.audit.events("request") if e.data.get("status") == 410]
    assert requests_to(serverless, "nodes") == requests_to(serverless, "ml_info") == 0


def test_on_serverless_adaptive_policy_disable_is_refused_before_anything_changes(serverless):
    with pytest.raises(InvalidParameterError, match="adaptive_policy='disable' cannot be applied on Elastic Cloud"):
        acquire(number_of_allocations=2, adaptive_policy="disable").execute(context())
    assert lease_doc(serverless) is None and requests_to(serverless, "update") == 0


def test_runs_by_inference_id_and_by_deployment_id_share_the_deployments_lease(sim):
    sim.create_endpoint("e5-search", deployment_id="my-e5")  # attached to my-e5
    by_endpoint = acquire(number_of_allocations=4, deployment_id="e5-search").execute(context("run_a"))
    assert by_endpoint["deployment_id"] == "e5-search" and by_endpoint["leased_deployment_id"] == "my-e5"
    acquire(number_of_allocations=2).execute(context("run_b"))
    left = ReleaseDeploymentLeaseOperator(task_id="release", deployment_id="e5-search").execute(context("run_a"))
    assert left["restored"] is False and left["deployment_id"] == "e5-search"
    assert sim.cluster.target("my-e5") == 2
    assert release().execute(context("run_b"))["restored"] is True
    assert sim.cluster.target("my-e5") == 1
