from __future__ import annotations

import pytest

from airflow_esml.exceptions import DeploymentStateError, InvalidParameterError
from airflow_esml.plan import DesiredSettings, parse_adaptive, plan_update
from airflow_esml.status import AdaptiveAllocations, DeploymentStatus


def current(target=1, state="started", priority="normal", adaptive=None) -> DeploymentStatus:
    return DeploymentStatus(
        "my-e5", "my-e5", state, target, target, "fully_allocated", priority=priority, adaptive_allocations=adaptive
    )


@pytest.mark.parametrize(
    ("number", "adaptive", "fragment"),
    [
        (0, None, "number_of_allocations must be a positive integer, got 0"),
        (-2, None, "got -2"),
        (2.5, None, "got 2.5"),
        ("abc", None, "got 'abc'"),
        (True, None, "got True"),
        ("", None, "exactly one"),
        (None, None, "exactly one"),
        (2, {"enabled": True}, "exactly one"),
        (None, {"enabled": "yes"}, "adaptive_allocations['enabled'] must be true or false, got 'yes'"),
        (
            None,
            {"enabled": True, "min_number_of_allocations": 4, "max_number_of_allocations": 2},
            "(4) must not be larger",
        ),
        (None, {"enabled": True, "max_number_of_allocations": 0}, "max_number_of_allocations'] must be a positive"),
        (None, {"enabled": True, "maximum": 3}, "unknown key(s) ['maximum']"),
        (None, "not a dict", "must be a dict, got the string 'not a dict'"),
        (None, 7, "must be a dict"),
    ],
)
def test_bad_settings_are_refused_with_the_parameter_and_value(number, adaptive, fragment):
    with pytest.raises(InvalidParameterError) as excinfo:
        DesiredSettings.parse(number, adaptive)
    assert fragment in str(excinfo.value)


def test_rendered_template_strings_are_accepted():
    assert DesiredSettings.parse("4", None).number_of_allocations == 4
    assert DesiredSettings.parse(None, "{'enabled': True, 'max_number_of_allocations': 3}").adaptive_allocations == (
        AdaptiveAllocations(True, None, 3)
    )
    assert parse_adaptive('{"enabled": false}') == AdaptiveAllocations(False)


def test_same_count_is_a_no_op_and_a_new_count_is_a_body():
    assert not plan_update(current(3), DesiredSettings(3)).changes
    plan = plan_update(current(1), DesiredSettings(3))
    assert plan.body == {"number_of_allocations": 3} and plan.new_number_of_allocations == 3


def test_low_priority_is_limited_to_one_allocation():
    with pytest.raises(InvalidParameterError, match=r"priority 'low'.*1 allocation"):
        plan_update(current(1, priority="low"), DesiredSettings(2))
    with pytest.raises(InvalidParameterError, match="max_number_of_allocations'\\]=4"):
        plan_update(current(1, priority="low"), DesiredSettings(adaptive_allocations=AdaptiveAllocations(True, 1, 4)))


def test_adaptive_deployment_policy():
    adaptive = AdaptiveAllocations(True, 1, 4)
    with pytest.raises(InvalidParameterError, match="adaptive allocations enabled"):
        plan_update(current(2, adaptive=adaptive), DesiredSettings(6))
    plan = plan_update(current(2, adaptive=adaptive), DesiredSettings(6), adaptive_policy="disable")
    assert plan.body == {
        "number_of_allocations": 6,
        "adaptive_allocations": {
            "enabled": False,
            "min_number_of_allocations": None,
            "max_number_of_allocations": None,
        },
    }
    with pytest.raises(InvalidParameterError, match="adaptive_policy must be one of"):
        plan_update(current(2), DesiredSettings(6), adaptive_policy="ignore")


def test_adaptive_settings_change_or_no_op():
    adaptive = AdaptiveAllocations(True, 1, 4)
    assert not plan_update(current(2, adaptive=adaptive), DesiredSettings(adaptive_allocations=adaptive)).changes
    plan = plan_update(current(2), DesiredSettings(adaptive_allocations=adaptive))
    assert plan.body == {"adaptive_allocations": adaptive.to_dict()}


def test_a_change_to_a_deployment_that_is_not_started_is_refused():
    with pytest.raises(DeploymentStateError, match="is starting"):
        plan_update(current(1, state="starting"), DesiredSettings(2))
    assert not plan_update(current(2, state="starting"), DesiredSettings(2)).changes
