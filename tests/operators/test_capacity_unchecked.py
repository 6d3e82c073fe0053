"""UpdateDeploymentOperator when the monitoring APIs of the capacity check are refused (403, 404, 410): it says it
could not check and why, scales as requested, and records ``{"checked": False, "reason": ...}`` in XCom."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_esml.exceptions import ElasticsearchRequestError, PrivilegeError
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.testing import Simulator
from tests.conftest import CONN_ENV
from tests.helpers import cluster_changes, requests_to


def op(**kwargs) -> UpdateDeploymentOperator:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return UpdateDeploymentOperator(task_id="scale", deployment_id="my-e5", **kwargs)


@pytest.mark.parametrize(
    ("endpoint", "status", "api"),
    [
        ("nodes", 410, "nodes info (GET _nodes)"),
        ("nodes", 404, "nodes info (GET _nodes)"),
        ("settings", 403, "cluster settings (GET _cluster/settings)"),
        ("settings", 410, "cluster settings (GET _cluster/settings)"),
    ],
)
def test_a_refused_monitoring_api_never_blocks_the_scale_up(
    sim: Simulator, capsys: pytest.CaptureFixture[str], endpoint: str, status: int, api: str
) -> None:
    sim.inject_fault(endpoint=endpoint, status=status)
    result = op(number_of_allocations=3, wait_for_completion=True).execute({})  # capacity_policy="fail"
    assert sim.cluster.target("my-e5") == 3 and result["updated"] is True
    assert result["capacity"]["checked"] is False and set(result["capacity"]) == {"checked", "reason"}
    assert result["capacity"]["reason"].startswith(f"{api}: ") and str(status) in result["capacity"]["reason"]
    lines = [line for line in capsys.readouterr().out.splitlines() if "could not check" in line]
    assert len(lines) == 1 and "warning" in lines[0].lower() and api in lines[0] and "scaling as requested" in lines[0]


def test_ml_info_not_found_behind_a_proxy_is_not_a_missing_deployment(sim: Simulator) -> None:
    """``_nodes`` fails otherwise (500), the fallback ``_ml/info`` answers 404: not "deployment not found"."""
    sim.inject_fault(endpoint="nodes", status=500)
    sim.inject_fault(endpoint="ml_info", status=404)
    result = op(number_of_allocations=2).execute({})
    assert sim.cluster.target("my-e5") == 2
    assert result["capacity"]["checked"] is False
    assert result["capacity"]["reason"].startswith("ML info (GET _ml/info): 404 ")


def test_a_given_autoscaling_answer_needs_no_cluster_settings(sim: Simulator) -> None:
    sim.inject_fault(endpoint="settings", status=403)
    result = op(number_of_allocations=3, autoscaling=False).execute({})
    assert "capacity" not in result and requests_to(sim, "settings") == 0 and sim.cluster.target("my-e5") == 3


def test_other_errors_of_the_check_still_fail_before_any_change(sim: Simulator) -> None:
    sim.inject_fault(endpoint="nodes", status=500)
    sim.inject_fault(endpoint="ml_info", status=400)
    with pytest.raises(ElasticsearchRequestError, match=r"^ML info \(GET _ml/info\): 400 "):
        op(number_of_allocations=3).execute({})
    assert requests_to(sim, "update") == 0 and sim.cluster.target("my-e5") == 1


def test_capacity_policy_off_reads_no_monitoring_api(sim: Simulator) -> None:
    sim.inject_fault(endpoint="nodes", status=403)
    result = op(number_of_allocations=3, capacity_policy="off").execute({})
    assert "capacity" not in result and requests_to(sim, "nodes") == 0


# -- API keys with limited privileges (the simulator enforces them per transport action) --------------------

NO_MONITOR = "no-monitor:secret-1"
READ_ONLY = "read-only:secret-2"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    leases = [{"names": ["esml-leases"], "privileges": ["read"]}]  # honour_leases reads the lease document
    keys = {
        NO_MONITOR: {"cluster": ["monitor_ml", "manage_ml"], "indices": leases},
        READ_ONLY: {"cluster": ["monitor_ml", "monitor"], "indices": leases},
    }
    with Simulator(api_key="admin:secret-0", api_keys=keys, load_seconds=0.2, seed=5) as simulator:
        simulator.cluster.start_deployment("my-e5", number_of_allocations=1, wait=True)
        monkeypatch.setenv(CONN_ENV, simulator.connection_uri(api_key=NO_MONITOR))
        yield simulator


def test_a_key_without_monitor_scales_up_without_the_capacity_check(
    keyed: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    result = op(number_of_allocations=3, wait_for_completion=True).execute({})
    assert keyed.cluster.target("my-e5") == 3 and result["deployment"]["started_allocations"] == 3
    assert result["capacity"]["checked"] is False
    assert result["capacity"]["reason"].startswith(
        "nodes info (GET _nodes): permission denied: action [cluster:monitor/nodes/info] needs the cluster "
        "privilege [monitor] (or one of [manage, all])"
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "could not check" in line]
    assert len(lines) == 1 and "[monitor]" in lines[0] and NO_MONITOR.split(":")[1] not in lines[0]
    assert keyed.audit.events("request", endpoint="nodes", status=403)


def test_a_key_without_manage_ml_is_told_the_privilege_and_nothing_changes(
    keyed: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN_ENV, keyed.connection_uri(api_key=READ_ONLY))
    before = len(cluster_changes(keyed))
    with pytest.raises(PrivilegeError) as raised:
        op(number_of_allocations=3).execute({})
    message = str(raised.value)
    assert raised.value.privileges == ("manage_ml", "manage", "all")
    assert message.startswith(
        "update of deployment 'my-e5': permission denied: action "
        "[cluster:admin/xpack/ml/trained_models/deployment/update] needs the cluster privilege [manage_ml]"
    )
    assert READ_ONLY.split(":")[1] not in message
    assert keyed.cluster.target("my-e5") == 1 and len(cluster_changes(keyed)) == before
    updates = keyed.audit.events("request", endpoint="update")
    assert [e.data["status"] for e in updates] == [403]  # refused once, never retried, nothing applied


def test_a_key_without_read_on_the_leases_index_is_told_so(monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(api_keys={"k:s": ["manage_ml", "monitor"]}, load_seconds=0.2, seed=6) as bare:
        bare.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, bare.connection_uri())
        with pytest.raises(PrivilegeError, match=r"action \[indices:data/read/get\] on indices \[esml-leases\] needs "
                           r"the index privilege \[read\]"):  # fmt: skip
            op(number_of_allocations=2).execute({})
        assert op(number_of_allocations=2, honour_leases=False).execute({})["updated"] is True


def test_on_serverless_adaptive_settings_scale_up_without_a_410_blocking_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Simulator(serverless=True, load_seconds=0.2, seed=9) as project:
        project.cluster.start_deployment("my-e5", wait=True)
        monkeypatch.setenv(CONN_ENV, project.connection_uri())
        adaptive = {"enabled": True, "min_number_of_allocations": 2, "max_number_of_allocations": 4}
        result = op(adaptive_allocations=adaptive).execute({})
        assert result["updated"] is True and result["capacity"]["checked"] is False
        assert "410 api_not_available_exception" in result["capacity"]["reason"]
        assert project.audit.events("request", endpoint="update", status=200)
