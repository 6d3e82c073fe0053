from __future__ import annotations

from typing import Any

import pytest

from airflow_esml.core.capacity import (
    UNCHECKABLE_STATUSES,
    CapacityUnchecked,
    InsufficientCapacityError,
    apply_capacity,
    build_report,
    check_adaptive_max,
    decide,
    needs_check,
    pooled_report,
)
from airflow_esml.core.ml_nodes import MlNode, parse_ml_nodes
from airflow_esml.core.params import parse_settings
from airflow_esml.core.plan import plan_update
from airflow_esml.core.settings import Settings
from airflow_esml.core.status import DeploymentStatus
from tests.core.test_ml_nodes import NODES


def test_report_and_decision_say_how_many_fit_and_why():
    report = build_report("me", 2, parse_ml_nodes(NODES), {"id-a": 1, "id-b": 1})
    assert [(n.name, n.free, n.fits) for n in report.nodes] == [("ml-a", 1, 0), ("ml-b", 3, 1)]
    assert report.max_allocations == 1
    with pytest.raises(InsufficientCapacityError) as excinfo:
        decide(report, 1, 3, "fail")
    message = str(excinfo.value)
    assert "me: 3 allocations do not fit: the ML nodes can hold 1 allocations" in message
    assert "ml-b: 4 allocated processors, 1 used by other deployments, 3 free -> 1" in message
    assert "each allocation needs 2 processor(s)" in message and "Nothing was changed" in message


@pytest.mark.parametrize(
    ("current", "requested", "policy", "allowed", "fragment"),
    [
        (1, 6, "fit", 4, "scaling to 4 instead"),
        (5, 6, "fit", 5, "staying at 5"),
        (1, 4, "fail", 4, "4 allocations fit"),
        (1, 9, "off", 9, "no capacity check"),
        (6, 2, "fail", 2, "no capacity check"),  # scale-down: never checked
    ],
)
def test_decide(current, requested, policy, allowed, fragment):
    report = build_report("me", 1, [MlNode("n1", "n1", 4)], {})
    decision = decide(report, current, requested, policy)
    assert decision.allowed == allowed and fragment in decision.message
    assert decision.capped == (allowed < requested)


def test_autoscaling_clusters_are_not_refused():
    report = build_report("me", 1, [MlNode("n1", "n1", 2)], {"n1": 2}, autoscaling=True)
    decision = decide(report, 1, 10, "fail")
    assert decision.allowed == 10 and "autoscales" in decision.message
    assert check_adaptive_max(report, 50, "fail") == 50


def test_pooled_report_from_ml_info():
    report = pooled_report("me", 2, 8, 3, autoscaling=False)
    assert report.max_allocations == 2 and report.nodes[0].name == "all ML nodes"


def status(target: int = 1, **extra: Any) -> DeploymentStatus:
    return DeploymentStatus("me", "m", "started", target, target, "fully_allocated", **extra)


def test_apply_capacity_to_a_count_under_fit():
    plan = plan_update(status(2), Settings(number_of_allocations=8))
    report = build_report("me", 1, [MlNode("n1", "n1", 4)], {})
    assert needs_check(plan, "fit") and not needs_check(plan, "off")
    new_plan, decision = apply_capacity(plan, report, "fit")
    assert new_plan.body == {"number_of_allocations": 4} and decision.capped
    full = build_report("me", 1, [MlNode("n1", "n1", 4)], {"n1": 2})
    unchanged, decision = apply_capacity(plan, full, "fit")
    assert unchanged.body is None and "staying at 2" in decision.message


def test_apply_capacity_to_adaptive_settings():
    desired = parse_settings(None, {"enabled": True, "min_number_of_allocations": 6,
                                           "max_number_of_allocations": 12})  # fmt: skip
    plan = plan_update(status(1), desired)
    report = build_report("me", 1, [MlNode("n1", "n1", 4)], {})
    assert needs_check(plan, "fail")
    with pytest.raises(InsufficientCapacityError, match="6 allocations do not fit"):
        apply_capacity(plan, report, "fail")
    new_plan, decision = apply_capacity(plan, report, "fit")
    assert new_plan.body == {"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 4,
                                                      "max_number_of_allocations": 4}}  # fmt: skip
    assert decision.capped and "lowered from 12 to 4" in decision.message


def test_adaptive_maximum_beyond_capacity_names_the_limit():
    report = build_report("me", 1, [MlNode("n1", "n1", 4)], {})
    with pytest.raises(InsufficientCapacityError, match=r"adaptive_allocations\['max_number_of_allocations'\]=9"):
        check_adaptive_max(report, 9, "fail")
    assert check_adaptive_max(report, 3, "fail") == 3 and check_adaptive_max(report, 9, "off") == 9


def test_an_unchecked_capacity_lets_the_plan_go_on_and_says_why():
    plan = plan_update(status(1), Settings(number_of_allocations=8))
    why = CapacityUnchecked("me", "nodes info (GET _nodes): 403 security_exception: no monitor")
    same, decision = apply_capacity(plan, why, "fail")  # "fail" cannot refuse what it could not check
    assert same is plan and same.body == {"number_of_allocations": 8}
    assert not decision.checked and not decision.capped and decision.noteworthy and decision.warn
    assert decision.requested == decision.allowed == 8
    assert decision.to_dict() == {"checked": False, "reason": why.reason}
    assert decision.message == (
        "me: could not check the ML nodes' capacity (nodes info (GET _nodes): 403 security_exception: no monitor); "
        "scaling as requested"
    )


def test_an_expected_unchecked_capacity_is_not_a_warning():
    desired = parse_settings(None, {"enabled": True, "min_number_of_allocations": 2, "max_number_of_allocations": 6})
    plan = plan_update(status(1), desired)
    _, decision = apply_capacity(plan, CapacityUnchecked("me", "Serverless project autoscales", warn=False), "fit")
    assert not decision.warn and not decision.checked and decision.requested == 6
    assert decision.to_dict() == {"checked": False, "reason": "Serverless project autoscales"}


def test_a_checked_decision_says_it_was_checked():
    plan = plan_update(status(2), Settings(number_of_allocations=8))
    _, decision = apply_capacity(plan, build_report("me", 1, [MlNode("n1", "n1", 4)], {}), "fit")
    assert decision.to_dict()["checked"] is True and decision.noteworthy
    _, fits = apply_capacity(plan, build_report("me", 1, [MlNode("n1", "n1", 16)], {}), "fit")
    assert fits.checked and not fits.noteworthy


@pytest.mark.parametrize(("status_code", "uncheckable"), [(403, True), (404, True), (410, True), (400, False),
                                                          (500, False)])  # fmt: skip
def test_which_answers_mean_the_capacity_cannot_be_checked(status_code, uncheckable):
    assert (status_code in UNCHECKABLE_STATUSES) is uncheckable


def test_the_ml_node_reads_keep_their_old_import_path() -> None:
    from airflow_esml.core import capacity, ml_nodes

    moved = ("MlNode", "parse_ml_nodes", "total_ml_processors", "scaling_possible", "processors_used")
    for name in (*moved, "_flatten", "_UNITS", "_bytes"):
        assert getattr(capacity, name) is getattr(ml_nodes, name), name
