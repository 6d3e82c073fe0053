from __future__ import annotations

import pytest

from airflow_esml.core.plan import plan_update
from airflow_esml.core.settings import Settings
from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus
from airflow_esml.exceptions import DeploymentStateError, InvalidParameterError


def current(target=1, state="started", priority="normal", adaptive=None) -> DeploymentStatus:
    return DeploymentStatus(
        "my-e5", "my-e5", state, target, target, "fully_allocated", priority=priority, adaptive_allocations=adaptive
    )


def test_same_count_is_a_no_op_and_a_new_count_is_a_body():
    assert not plan_update(current(3), Settings(3)).changes
    plan = plan_update(current(1), Settings(3))
    assert plan.body == {"number_of_allocations": 3} and plan.new_number_of_allocations == 3


def test_low_priority_is_limited_to_one_allocation():
    with pytest.raises(InvalidParameterError, match=r"priority 'low'.*1 allocation"):
        plan_update(current(1, priority="low"), Settings(2))
    with pytest.raises(InvalidParameterError, match="max_number_of_allocations'\\]=4"):
        plan_update(current(1, priority="low"), Settings(adaptive_allocations=AdaptiveAllocations(True, 1, 4)))


def test_adaptive_deployment_policy():
    adaptive = AdaptiveAllocations(True, 1, 4)
    with pytest.raises(InvalidParameterError, match="adaptive allocations enabled"):
        plan_update(current(2, adaptive=adaptive), Settings(6), adaptive_policy="fail")
    plan = plan_update(current(2, adaptive=adaptive), Settings(6), adaptive_policy="disable")
    # the same body as the lease model's (Settings.update_body): switched off, the bounds kept for later
    assert plan.body == {"number_of_allocations": 6, "adaptive_allocations": {"enabled": False}}
    with pytest.raises(InvalidParameterError, match="adaptive_policy must be one of"):
        plan_update(current(2), Settings(6), adaptive_policy="ignore")


def test_adaptive_settings_change_or_no_op():
    adaptive = AdaptiveAllocations(True, 1, 4)
    assert not plan_update(current(2, adaptive=adaptive), Settings(adaptive_allocations=adaptive)).changes
    plan = plan_update(current(2), Settings(adaptive_allocations=adaptive))
    assert plan.body == {"adaptive_allocations": adaptive.to_dict()}


def test_a_change_to_a_deployment_that_is_not_started_is_refused():
    with pytest.raises(DeploymentStateError, match="is starting"):
        plan_update(current(1, state="starting"), Settings(2))
    assert not plan_update(current(2, state="starting"), Settings(2)).changes


def test_raise_min_is_the_default_for_an_adaptive_deployment():
    plan = plan_update(current(2, adaptive=AdaptiveAllocations(True, 1, 4)), Settings(6))
    # the minimum goes to the count, the maximum (lower) with it; adaptive allocations stay on
    assert plan.raised and plan.body == {
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 6, "max_number_of_allocations": 6}
    }
    assert plan.new_settings.adaptive_enabled and plan.new_number_of_allocations is None


def test_raise_min_keeps_a_higher_maximum_and_never_lowers_the_minimum():
    plan = plan_update(current(1, adaptive=AdaptiveAllocations(True, 0, 32)), Settings(4))
    assert plan.body == {
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 4, "max_number_of_allocations": 32}
    }
    unbounded = plan_update(current(1, adaptive=AdaptiveAllocations(True, None, None)), Settings(3))
    assert unbounded.body == {
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 3, "max_number_of_allocations": None}
    }
    # a minimum already above the count: nothing to change
    assert not plan_update(current(5, adaptive=AdaptiveAllocations(True, 5, 8)), Settings(2)).changes


def test_raise_min_restored_with_the_previous_adaptive_settings():
    before = AdaptiveAllocations(True, 0, 2)
    up = plan_update(current(1, adaptive=before), Settings(4))
    raised = up.new_settings.adaptive_allocations
    assert raised == AdaptiveAllocations(True, 4, 4)
    down = plan_update(current(4, adaptive=raised), Settings(adaptive_allocations=before))
    assert down.body == {"adaptive_allocations": before.to_dict()} and not down.raised


def test_the_policy_does_not_matter_without_adaptive_allocations():
    for policy in ("raise_min", "fail", "disable"):
        plan = plan_update(current(2), Settings(6), adaptive_policy=policy)
        assert plan.body == {"number_of_allocations": 6} and not plan.raised


def test_serverless_sends_only_adaptive_settings():
    adaptive = AdaptiveAllocations(True, 0, 32)
    plan = plan_update(current(0, adaptive=adaptive), Settings(3), serverless=True)
    assert plan.raised and set(plan.body or {}) == {"adaptive_allocations"}
    assert plan.body["adaptive_allocations"]["min_number_of_allocations"] == 3
    # a deployment that reports no adaptive settings still gets adaptive ones there
    bare = plan_update(current(1), Settings(2), serverless=True)
    assert bare.body == {
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 2, "max_number_of_allocations": None}
    }


def test_serverless_refuses_switching_adaptive_allocations_off():
    adaptive = AdaptiveAllocations(True, 0, 32)
    with pytest.raises(InvalidParameterError, match=r"adaptive_policy='disable' cannot be applied on Elastic Cloud"):
        plan_update(current(1, adaptive=adaptive), Settings(3), adaptive_policy="disable", serverless=True)
    with pytest.raises(InvalidParameterError, match=r"cannot be set on Elastic Cloud Serverless"):
        plan_update(current(1, adaptive=adaptive), Settings(adaptive_allocations=AdaptiveAllocations(False)),
                    serverless=True)  # fmt: skip
    with pytest.raises(InvalidParameterError, match="adaptive_policy='raise_min'"):
        plan_update(current(1, adaptive=adaptive), Settings(3), adaptive_policy="fail", serverless=True)
