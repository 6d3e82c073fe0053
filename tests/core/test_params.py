"""Every parameter check: the parameter and the value in each refusal, rendered templates accepted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_esml.core.params import (
    check_adaptive_policy,
    check_drift_policy,
    check_return_results,
    is_unset,
    parse_adaptive,
    parse_bound,
    parse_capacity_policy,
    parse_list_text,
    parse_max_step,
    parse_settings,
    positive_int,
    seconds,
)
from airflow_esml.core.status import AdaptiveAllocations
from airflow_esml.exceptions import InvalidParameterError


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
        parse_settings(number, adaptive)
    assert fragment in str(excinfo.value)


def test_rendered_template_strings_are_accepted():
    assert parse_settings("4", None).number_of_allocations == 4
    assert parse_settings(None, "{'enabled': True, 'max_number_of_allocations': 3}").adaptive_allocations == (
        AdaptiveAllocations(True, None, 3)
    )
    assert parse_adaptive('{"enabled": false}') == AdaptiveAllocations(False)


@pytest.mark.parametrize(("value", "expected"), [(None, "off"), ("off", "off"), ("fail", "fail"), ("fit", "fit")])
def test_parse_capacity_policy(value, expected):
    assert parse_capacity_policy(value) == expected


def test_parse_policy_refuses_unknown():
    with pytest.raises(InvalidParameterError, match="capacity_policy must be one of"):
        parse_capacity_policy("squeeze")


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("None", None), (2, 2), ("3", 3)])
def test_parse_max_step(value, expected):
    assert parse_max_step(value) == expected


@pytest.mark.parametrize("value", [0, -1, "two", 1.5, True])
def test_parse_max_step_refuses_bad_values(value):
    with pytest.raises(InvalidParameterError, match="max_step must be a positive integer"):
        parse_max_step(value)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("2", 2.0), (0, 0.0), (0.5, 0.5)])
def test_parse_bound(value, expected):
    assert parse_bound("max_pending_per_allocation", value) == expected


@pytest.mark.parametrize("value", [-1, "lots", True, float("nan")])
def test_parse_bound_refuses(value):
    with pytest.raises(InvalidParameterError, match="max_pending_per_allocation must be a non-negative number"):
        parse_bound("max_pending_per_allocation", value)


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("", True), ("None", True), (" None ", True), (0, False),
                                                 ("0", False), ("none", False)])  # fmt: skip
def test_is_unset_knows_what_a_template_renders_from_none(value, expected):
    assert is_unset(value) is expected


def test_positive_int_names_the_minimum():
    assert positive_int("n", "+3") == 3 and positive_int("n", 0, minimum=0) == 0
    with pytest.raises(InvalidParameterError, match="n must be an integer of at least 2, got 1"):
        positive_int("n", 1, minimum=2)


def test_seconds_accepts_numbers_and_timedeltas_only():
    assert seconds("lease_ttl", timedelta(minutes=2)) == 120.0 and seconds("lease_ttl", 5) == 5.0
    for bad in (0, -1, True, "60", timedelta(0)):
        with pytest.raises(InvalidParameterError, match="lease_ttl must be a positive number of seconds"):
            seconds("lease_ttl", bad)


def test_policies_name_their_choices():
    assert check_adaptive_policy("disable") == "disable" and check_drift_policy("restore") == "restore"
    with pytest.raises(InvalidParameterError, match=r"adaptive_policy must be one of \('fail', 'disable'\), got 'x'"):
        check_adaptive_policy("x")
    with pytest.raises(InvalidParameterError, match="on_drift must be one of"):
        check_drift_policy(None)


def test_docs_text_and_return_results():
    assert parse_list_text('[{"text_field": "a"}]') == [{"text_field": "a"}]
    assert parse_list_text("[{'text_field': 'a'}]") == [{"text_field": "a"}]
    with pytest.raises(InvalidParameterError, match="docs is a string but not a JSON or Python list"):
        parse_list_text("{{ not rendered")
    assert check_return_results("auto") == "auto"
    with pytest.raises(InvalidParameterError, match="return_results must be True, False or 'auto', got 'yes'"):
        check_return_results("yes")
