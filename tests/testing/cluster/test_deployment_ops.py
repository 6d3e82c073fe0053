"""Start, update and stop of deployments (``cluster/deployment_ops.py``), driven with a manual clock."""

from __future__ import annotations

import pytest

from airflow_esml.testing.cluster.placement import reduce_targets
from airflow_esml.testing.protocol import EsError
from tests.testing.cluster.conftest import ManualClock, make


def test_new_route_starts_after_load_time(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4)
    assignment = cluster.start_deployment("my-e5")
    [route] = assignment["routing_table"].values()
    assert route == {"current_allocations": 1, "target_allocations": 1, "routing_state": "starting", "reason": ""}
    assert assignment["assignment_state"] == "starting"
    assert cluster.deployment_stats("my-e5")["allocation_status"]["state"] == "starting"
    clock.tick(0.99)
    assert cluster.deployment_stats("my-e5")["state"] == "starting"
    clock.tick(0.02)
    stats = cluster.deployment_stats("my-e5")
    assert stats["state"] == "started"
    assert stats["allocation_status"] == {
        "allocation_count": 1,
        "target_allocation_count": 1,
        "state": "fully_allocated",
    }
    events = cluster.audit.events("route_state", deployment_id="my-e5", state="started")
    assert len(events) == 1
    assert events[0].at == pytest.approx(cluster.wall(1001.0))


def test_section_2_1_scale_from_1_to_3_on_two_nodes(clock: ManualClock) -> None:
    cluster = make(clock, ml_a=2, ml_b=2)
    cluster.start_deployment("my-e5", deployment_id="my-e5-batch")
    clock.tick(1.5)
    first_node = next(iter(cluster.deployments["my-e5-batch"].routes))
    assignment = cluster.update_deployment("my-e5-batch", number_of_allocations=3)
    assert assignment["task_parameters"]["number_of_allocations"] == 3
    table = assignment["routing_table"]
    assert table[first_node] == {
        "current_allocations": 1,
        "target_allocations": 2,
        "routing_state": "started",
        "reason": "",
    }
    [other] = [n for n in table if n != first_node]
    assert table[other] == {
        "current_allocations": 1,
        "target_allocations": 1,
        "routing_state": "starting",
        "reason": "",
    }
    assert cluster.deployment_stats("my-e5-batch")["allocation_status"]["allocation_count"] == 1
    clock.tick(0.2)  # node A applied 2 allocations, B still loading
    stats = cluster.deployment_stats("my-e5-batch")
    assert stats["number_of_allocations"] == 3
    assert stats["allocation_status"] == {"allocation_count": 2, "target_allocation_count": 3, "state": "started"}
    by_node = {next(iter(n["node"])): n for n in stats["nodes"]}
    assert by_node[first_node]["number_of_allocations"] == 2
    assert by_node[other]["routing_state"] == {"routing_state": "starting", "reason": ""}
    assert set(by_node[other]) == {"node", "routing_state", "peak_throughput_per_minute", "throughput_last_minute"}
    clock.tick(1.0)
    assert cluster.deployment_stats("my-e5-batch")["allocation_status"]["state"] == "fully_allocated"


def test_capacity_rule_never_oversubscribes(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4, ml_2=2)
    cluster.start_deployment("my-e5", number_of_allocations=2, threads_per_allocation=2)
    clock.tick(2)
    with pytest.raises(EsError) as err:
        cluster.update_deployment("my-e5", number_of_allocations=4)
    assert err.value.status == 429
    assert cluster.target("my-e5") == 2
    cluster.update_deployment("my-e5", number_of_allocations=3)
    for node in cluster.nodes.values():
        used = sum(
            d.routes[node.node_id].target * d.threads for d in cluster.deployments.values() if node.node_id in d.routes
        )
        assert used <= node.processors


def test_start_beyond_capacity_is_429_and_creates_nothing(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=2)
    with pytest.raises(EsError) as err:
        cluster.start_deployment("my-e5", number_of_allocations=3)
    assert (err.value.status, err.value.reason) == (
        429,
        "Could not start deployment because there are not enough resources to provide all requested allocations",
    )
    with pytest.raises(EsError) as err:
        cluster.start_deployment("my-e5", threads_per_allocation=4)
    assert err.value.reason == "Could not start deployment because no ML nodes with sufficient capacity were found"
    assert err.value.caused_by is not None and "insufficient allocated processors" in err.value.caused_by["reason"]
    assert cluster.deployments == {}
    assert cluster.audit.events("deployment_started") == []


def test_low_priority_does_not_use_processors(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=1)
    cluster.start_deployment("my-e5", number_of_allocations=1)
    cluster.start_deployment("my-e5", deployment_id="low", priority="low")
    assert cluster.deployments["low"].placed() == 1


def test_scale_down_trims_whole_nodes_and_drops_target_at_once(clock: ManualClock) -> None:
    assert reduce_targets({"a": 3, "b": 1}, 3) == {"a": 3}
    assert reduce_targets({"a": 2, "b": 2}, 3) == {"a": 1, "b": 2}
    assert reduce_targets({"a": 2, "b": 2}, 2) == {"b": 2}
    cluster = make(clock, ml_1=2, ml_2=2)
    cluster.start_deployment("my-e5", number_of_allocations=4)
    clock.tick(2)
    assignment = cluster.update_deployment("my-e5", number_of_allocations=2)
    assert len(assignment["routing_table"]) == 1
    [route] = assignment["routing_table"].values()
    assert route["target_allocations"] == 2
    stats = cluster.deployment_stats("my-e5")
    assert stats["allocation_status"]["target_allocation_count"] == 2
    assert stats["allocation_status"]["state"] == "fully_allocated"
    history = cluster.audit.target_history("my-e5")
    assert [new for _, new in history] == [4, 2]


def test_over_target_during_scale_down_is_fully_allocated(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4)
    cluster.start_deployment("my-e5", number_of_allocations=3)
    clock.tick(2)
    cluster.update_deployment("my-e5", number_of_allocations=1)
    status = cluster.deployment_stats("my-e5")["allocation_status"]
    assert status == {"allocation_count": 3, "target_allocation_count": 1, "state": "fully_allocated"}
    clock.tick(0.5)
    assert cluster.deployment_stats("my-e5")["allocation_status"]["allocation_count"] == 1


def test_update_while_starting_is_409_unless_unchanged(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4)
    cluster.start_deployment("my-e5")
    assert cluster.update_deployment("my-e5", number_of_allocations=1)["assignment_state"] == "starting"
    with pytest.raises(EsError) as err:
        cluster.update_deployment("my-e5", number_of_allocations=2)
    assert (err.value.status, err.value.reason) == (409, "cannot update deployment that is not in [started] state")


def test_autoscale_keeps_target_and_adds_a_node(clock: ManualClock) -> None:
    cluster = make(clock, autoscale=True, ml_1=2)
    cluster.start_deployment("my-e5", number_of_allocations=2)
    clock.tick(2)
    assignment = cluster.update_deployment("my-e5", number_of_allocations=5)
    assert assignment["task_parameters"]["number_of_allocations"] == 5
    assert "insufficient allocated processors" in assignment["reason"]
    clock.tick(4.9)
    assert len(cluster.nodes) == 1
    assert cluster.deployment_stats("my-e5")["allocation_status"]["state"] == "started"
    clock.tick(0.2)
    cluster.target("my-e5")  # every call first materialises due transitions
    assert len(cluster.nodes) == 2
    [added] = cluster.audit.events("node_added", processors=4)
    assert added.at == pytest.approx(cluster.wall(1007.0))
    clock.tick(1.0)
    stats = cluster.deployment_stats("my-e5")
    assert stats["allocation_status"] == {
        "allocation_count": 5,
        "target_allocation_count": 5,
        "state": "fully_allocated",
    }
    assert "reason" not in stats


def test_autoscale_start_without_ml_nodes(clock: ManualClock) -> None:
    cluster = make(clock, autoscale=True)
    assignment = cluster.start_deployment("my-e5", wait=True, timeout=1)
    assert assignment["routing_table"] == {}
    assert assignment["assignment_state"] == "starting"
    assert assignment["reason"] == "No ML nodes exist in the cluster"
    clock.tick(6.1)
    assert cluster.deployment_stats("my-e5")["allocation_status"]["state"] == "fully_allocated"


def test_stop_removes_deployment_and_audits(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4)
    cluster.start_deployment("my-e5", number_of_allocations=2)
    cluster.stop_deployment("my-e5")
    assert cluster.deployments == {}
    assert cluster.audit.target_history("my-e5")[-1][1] == 0
    assert cluster.audit.events("deployment_stopped", deployment_id="my-e5")
    cluster.stop_deployment("my-e5")  # allow_no_match
    with pytest.raises(EsError) as err:
        cluster.stop("my-e5", force=False, allow_no_match=False)
    assert (err.value.status, err.value.reason) == (404, "No known model deployment with id [my-e5]")


def test_start_validation_and_lookup_errors(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4)
    with pytest.raises(EsError) as err:
        cluster.start_deployment("nope")
    assert (err.value.status, err.value.reason) == (404, "No known trained model with model_id [nope]")
    with pytest.raises(EsError) as err:
        cluster.start_deployment("my-e5", number_of_allocations=0, threads_per_allocation=3)
    assert err.value.type == "action_request_validation_exception"
    assert err.value.reason == (
        "Validation Failed: 1: [number_of_allocations] must be a positive integer;"
        "2: [threads_per_allocation] must be a power of 2 less than or equal to 32;"
    )
    with pytest.raises(EsError) as err:
        cluster.start_deployment("lang_ident_model_1")
    assert "of type [lang_ident] cannot be deployed" in err.value.reason
    cluster.start_deployment("my-e5")
    with pytest.raises(EsError) as err:
        cluster.start_deployment("my-e5")
    assert err.value.reason.endswith("an existing deployment with the same id [my-e5] exist")
    cluster.add_model("other")
    with pytest.raises(EsError) as err:
        cluster.start_deployment("my-e5", deployment_id="other")
    assert err.value.reason.startswith("Deployment id [other] is the same as an another model")


def test_max_assigned_allocations_and_assignment_shape(clock: ManualClock) -> None:
    cluster = make(clock, version="8.14.3", ml_1=4)
    assignment = cluster.start_deployment("my-e5", number_of_allocations=3)
    assert assignment["max_assigned_allocations"] == 3
    assert "adaptive_allocations" not in assignment
    assert assignment["start_time"].endswith("Z") and "T" in assignment["start_time"]
    assert assignment["task_parameters"]["cache_size"] == f"{100 * 2**20}b"
    assert cluster.deployment_stats("my-e5")["cache_size"] == "100mb"
