"""Every parameter check: the parameter and the value in each refusal, rendered templates accepted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_esml.core.params import (
    check_adaptive_policy,
    check_drift_policy,
    check_id,
    check_return_results,
    cut,
    is_unset,
    non_negative_int,
    parse_adaptive,
    parse_bound,
    parse_capacity_policy,
    parse_list_text,
    parse_max_step,
    parse_settings,
    positive_int,
    positive_number,
    seconds,
    shown,
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
    assert positive_int("n", " 3 ") == 3 and positive_int("n", 0, minimum=0) == 0
    with pytest.raises(InvalidParameterError, match="n must be an integer of at least 2, got 1"):
        positive_int("n", 1, minimum=2)


def test_seconds_accepts_numbers_and_timedeltas_only():
    assert seconds("lease_ttl", timedelta(minutes=2)) == 120.0 and seconds("lease_ttl", 5) == 5.0
    for bad in (0, -1, True, "60", timedelta(0)):
        with pytest.raises(InvalidParameterError, match="lease_ttl must be a positive number of seconds"):
            seconds("lease_ttl", bad)


def test_policies_name_their_choices():
    assert check_adaptive_policy("disable") == "disable" and check_drift_policy("restore") == "restore"
    with pytest.raises(
        InvalidParameterError, match=r"adaptive_policy must be one of \('raise_min', 'fail', 'disable'\), got 'x'"
    ):
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


# -- input hygiene: counts, ids, lengths, non-templated numbers ----------------------------------------


@pytest.mark.parametrize("value", [4, "4", " 4 ", "04", "\t4\n"])
def test_a_count_is_an_int_or_ascii_digits_with_spaces_around(value):
    assert positive_int("number_of_allocations", value) == 4


@pytest.mark.parametrize(
    "value", ["²", "\u0664", "\uff14", "+4", "-4", "4.0", "1_000", "4 4", "", " ", "0x4", 4.0, True, None, [4]]
)
def test_anything_else_is_refused_naming_the_parameter_and_value(value):
    with pytest.raises(InvalidParameterError) as excinfo:
        positive_int("number_of_allocations", value)
    assert str(excinfo.value) == f"number_of_allocations must be a positive integer, got {value!r}"


def test_a_count_too_long_for_int_is_refused_with_a_short_message():
    with pytest.raises(InvalidParameterError) as excinfo:
        positive_int("max_step", "9" * 5000)
    message = str(excinfo.value)
    assert message.startswith("max_step must be a positive integer, got '999") and "(5000 characters)" in message
    assert len(message) < 200


@pytest.mark.parametrize("value", ["", "   ", None, 7, ["my-e5"]])
def test_an_empty_or_non_string_id_is_refused(value):
    with pytest.raises(InvalidParameterError) as excinfo:
        check_id("deployment_id", value)
    assert str(excinfo.value) == f"deployment_id must be a non-empty string, got {value!r}"


def test_an_id_is_returned_unchanged():
    assert check_id("deployment_id", "my-e5") == "my-e5"


@pytest.mark.parametrize("length", [5_000, 70_000])
def test_values_quoted_in_messages_are_cut(length):
    text = "x" * length
    assert shown(text) == f"{'x' * 100!r}... ({length} characters)"
    assert cut(text) == f"{'x' * 100}... ({length} characters)"
    assert shown("short") == "'short'" and cut("short") == "short"
    assert len(shown(["y" * length])) < 150
    with pytest.raises(InvalidParameterError) as excinfo:
        check_id("deployment_id", " " * length)
    assert len(str(excinfo.value)) < 200


@pytest.mark.parametrize("value", [0.5, 2, 1e6])
def test_positive_number(value):
    assert positive_number("poll_interval", value) == float(value)


@pytest.mark.parametrize("value", [0, -1, True, "5", None, float("nan"), float("inf"), timedelta(seconds=5)])
def test_positive_number_refuses(value):
    with pytest.raises(InvalidParameterError) as excinfo:
        positive_number("poll_interval", value)
    assert str(excinfo.value) == f"poll_interval must be a positive number, got {value!r}"


def test_zero_may_be_allowed():
    assert positive_number("max_queue_wait", 0, zero_ok=True) == 0.0 and seconds("w", 0, zero_ok=True) == 0.0
    with pytest.raises(InvalidParameterError, match="max_queue_wait must be a non-negative number, got -1"):
        positive_number("max_queue_wait", -1, zero_ok=True)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidParameterError, match="timeout must be a positive number of seconds"):
            seconds("timeout", bad)


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (3, True), (-1, False), (1.0, False), ("3", False), (True, False)]
)
def test_non_negative_int(value, ok):
    if ok:
        assert non_negative_int("release_retries", value) == value
    else:
        with pytest.raises(InvalidParameterError) as excinfo:
            non_negative_int("release_retries", value)
        assert str(excinfo.value) == f"release_retries must be a non-negative integer, got {value!r}"


def test_every_refusal_cuts_a_long_value():
    long = "z" * 10_000
    checks = [
        lambda: parse_settings(long, None),
        lambda: parse_adaptive(long),
        lambda: parse_adaptive({"enabled": long}),
        lambda: parse_bound("max_pending_per_allocation", long),
        lambda: parse_capacity_policy(long),
        lambda: check_drift_policy(long),
        lambda: check_return_results(long),
        lambda: parse_list_text(long),
        lambda: seconds("lease_ttl", long),
    ]
    for check in checks:
        with pytest.raises(InvalidParameterError) as excinfo:
            check()
        assert len(str(excinfo.value)) < 400, str(excinfo.value)[:200]


def test_installation_id_is_optional_and_safe_in_a_lease_id():
    from airflow_esml.core.params import parse_installation_id

    assert parse_installation_id(None) == "" and parse_installation_id("  ") == ""
    assert parse_installation_id(" team-a.prod_1 ") == "team-a.prod_1"
    for bad in ("a/b", "a:b", "x" * 65, 3):
        with pytest.raises(InvalidParameterError, match=r"^\[esml\] installation_id must be"):
            parse_installation_id(bad)
