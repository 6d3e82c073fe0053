from __future__ import annotations

import json

import pytest

from airflow_esml.core.readiness import Verdict, WaitWindow, assess, verdict_from_event
from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus, NodeRoute, parse_deployment_status
from tests.core.test_status import entry


def status(started=2, target=3, state="started", nodes=(), **kw) -> DeploymentStatus:
    allocation_state = "starting" if started == 0 else ("fully_allocated" if started >= target else "started")
    return DeploymentStatus("my-e5", "my-e5", state, target, started, allocation_state, nodes=tuple(nodes), **kw)


def test_fact_sheet_example_is_still_waiting_for_the_whole_target():
    verdict = assess(parse_deployment_status(entry()), progress="41s of 600s")
    assert verdict.outcome == "waiting"
    assert verdict.message == (
        "my-e5-batch: 2/3 allocations started (instance-0000000007 started x2, instance-0000000008 starting), "
        "41s of 600s"
    )


def test_fact_sheet_example_is_enough_for_two():
    assert assess(parse_deployment_status(entry()), min_allocations=2).outcome == "success"


@pytest.mark.parametrize(
    ("started", "target", "minimum", "expected"),
    [
        (0, 1, None, "waiting"),
        (1, 1, None, "success"),
        (3, 1, None, "success"),  # scale-down in progress: over target is fully allocated
        (2, 4, 2, "success"),
        (1, 4, 2, "waiting"),
    ],
)
def test_started_against_needed(started, target, minimum, expected):
    assert assess(status(started, target), minimum).outcome == expected


def test_adaptive_deployment_scaled_to_zero_waits_for_one_allocation():
    scaled_to_zero = status(0, 0, adaptive_allocations=AdaptiveAllocations(True, 0, 4))
    assert assess(scaled_to_zero).outcome == "waiting"
    assert "0/1 allocations started" in assess(scaled_to_zero).message


def test_failed_deployment_names_each_failed_node():
    nodes = [
        NodeRoute("a", "node-a", "failed", "model load error"),
        NodeRoute("b", "node-b", "failed", None),
    ]
    verdict = assess(status(0, 2, state="failed", nodes=nodes, reason="All node routes are failed"))
    assert verdict.outcome == "failed"
    assert "node-a: model load error" in verdict.message and "node-b: no reason given" in verdict.message
    assert "All node routes are failed" in verdict.message


@pytest.mark.parametrize("state", ["stopping", None])
def test_stopping_or_undeployed_fails_at_once(state):
    assert assess(status(1, 2, state=state)).outcome == "failed"


def test_asking_for_more_than_the_target_fails_with_the_reason():
    verdict = assess(status(2, 2), min_allocations=5)
    assert verdict.outcome == "failed" and "target is only 2" in verdict.message


def test_event_round_trip_and_unexpected_events():
    verdict = assess(status(1, 2))
    event = json.loads(json.dumps(Verdict("timeout", "late", verdict.status).to_event()))
    back = verdict_from_event(event)
    assert (back.outcome, back.message, back.status) == ("timeout", "late", verdict.status)
    assert verdict_from_event(None).outcome == "failed"
    assert verdict_from_event({"status": "weird"}).outcome == "failed"


def test_wait_window_uses_absolute_wall_clock():
    window = WaitWindow.starting_now(600, now=1000.0)
    assert window.end_time == 1600.0
    assert window.progress(now=1041.0) == "41s of 600s"
    assert window.remaining(now=1599.0) == 1.0 and not window.expired(now=1599.0)
    assert window.expired(now=1600.0)


# -- scale to zero: 0 of 0 is "fully_allocated" (elastic/elasticsearch PR #114570), and never ready ---------------


def zero_entry(**adaptive):
    return entry(
        number_of_allocations=0,
        allocation_status={"allocation_count": 0, "target_allocation_count": 0, "state": "fully_allocated"},
        nodes=[],
        **({"adaptive_allocations": adaptive} if adaptive else {}),
    )


def test_a_deployment_scaled_to_zero_says_fully_allocated_and_is_not_ready():
    scaled = parse_deployment_status(zero_entry(enabled=True, min_number_of_allocations=0, max_number_of_allocations=8))
    assert scaled.allocation_state == "fully_allocated" and scaled.scaled_to_zero and not scaled.serving
    verdict = assess(scaled)
    assert verdict.outcome == "waiting"
    assert (
        verdict.message
        == "my-e5-batch: 0/1 allocations started (scaled to zero: an inference call or a scale-up starts one)"
    )


def test_it_is_ready_once_an_allocation_starts():
    first = entry(
        number_of_allocations=1,
        allocation_status={"allocation_count": 1, "target_allocation_count": 1, "state": "fully_allocated"},
        adaptive_allocations={"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 8},
    )
    verdict = assess(parse_deployment_status(first))
    assert verdict.outcome == "success" and verdict.status is not None and verdict.status.serving


def test_a_fixed_target_of_zero_is_not_waited_for_unless_asked_explicitly():
    fixed = parse_deployment_status(zero_entry())
    assert assess(fixed).outcome == "failed"  # waiting for 1 on a target of 0: scale it up first
    assert assess(fixed, min_allocations=0).outcome == "success"  # an explicit scale-down to 0 is done


@pytest.mark.parametrize("state", ["fully_allocated", "started", "starting"])
def test_zero_started_allocations_are_never_ready_whatever_the_state(state):
    zero = DeploymentStatus("d", "m", "started", 2, 0, state, adaptive_allocations=AdaptiveAllocations(True, 0, 4))
    assert assess(zero).outcome == "waiting"
    assert assess(zero, min_allocations=1).outcome == "waiting"
