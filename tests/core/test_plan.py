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
        plan_update(current(2, adaptive=adaptive), Settings(6))
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
