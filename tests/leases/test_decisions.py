"""The decisions over leases: the target, drift under each policy, adaptive baselines, Serverless."""

from __future__ import annotations

import pytest

from airflow_esml.core.settings import Settings
from airflow_esml.core.status import AdaptiveAllocations
from airflow_esml.leases.decisions import adaptive_refusal, decide, goal_settings
from airflow_esml.leases.document import LeaseDoc
from tests.lease_helpers import ADAPTIVE, doc, lease, status


@pytest.mark.parametrize(
    ("baseline", "requests", "expected"),
    [(1, [], 1), (1, [4], 4), (2, [1, 1], 2), (1, [3, 6, 2], 6), (8, [3], 8)],
)
def test_goal_is_the_larger_of_baseline_and_every_lease(baseline, requests, expected):
    leases = [lease(f"l{i}", n) for i, n in enumerate(requests)]
    assert goal_settings(Settings(baseline), leases) == Settings(expected)


def test_goal_without_leases_is_the_baseline_with_its_adaptive_settings():
    baseline = Settings(3, ADAPTIVE)
    assert goal_settings(baseline, []) is baseline
    assert goal_settings(baseline, [lease("a", 5, adaptive_policy="disable")]) == Settings(5)


def test_decide_without_drift_scales_to_the_leases():
    decision = decide(doc(Settings(1), lease("a", 4)), status(1), "respect", now=1.0)
    assert decision.goal == Settings(4)
    assert decision.body == {"number_of_allocations": 4}
    assert decision.drift is None
    assert decision.doc.applied == Settings(4)


def test_decide_recognises_a_pending_change_as_its_own():
    pending = doc(Settings(1), lease("a", 4), applied=Settings(1))
    pending = LeaseDoc.from_source({**pending.to_source(), "pending": Settings(4).to_dict()})
    decision = decide(pending, status(4), "respect", now=1.0)
    assert decision.drift is None
    assert decision.body is None


def test_decide_respects_a_hand_made_change_as_the_new_baseline():
    held = doc(Settings(1), lease("a", 4), applied=Settings(4))
    during = decide(held, status(6), "respect", now=1.0)
    assert during.drift is not None and during.drift.found == Settings(6)
    assert during.body is None  # 6 is above every lease: nothing to change
    assert during.doc.baseline == Settings(6)
    assert during.doc.original_baseline == Settings(1)
    last = decide(during.doc.without_lease("a"), status(6), "respect", now=2.0)
    assert last.drift is None and last.body is None and last.goal == Settings(6)


def test_decide_keeps_live_leases_served_after_a_hand_made_decrease():
    decision = decide(doc(Settings(1), lease("a", 4), applied=Settings(4)), status(2), "respect", now=1.0)
    assert decision.body == {"number_of_allocations": 4}
    assert decision.doc.baseline == Settings(2)
    assert "still get 4 allocations" in decision.drift.message(decision.goal, 1)


def test_decide_restore_policy_overwrites_the_hand_made_change():
    decision = decide(doc(Settings(1), applied=Settings(4)), status(6), "restore", now=1.0)
    assert decision.body == {"number_of_allocations": 1}
    assert decision.doc.baseline == Settings(1)
    assert "overwriting it with 1 allocations" in decision.drift.message(decision.goal, 0)
    assert decision.doc.drift[-1]["found"] == Settings(6).to_dict()


def test_restoring_an_adaptive_baseline_switches_adaptive_allocations_back_on():
    baseline = Settings(2, ADAPTIVE)
    decision = decide(doc(baseline, applied=Settings(5)), status(5), "respect", now=1.0)
    assert decision.drift is None
    assert decision.body == {"adaptive_allocations": ADAPTIVE.to_dict()}


# -- adaptive baselines (adaptive_policy) -------------------------------------------------------------------


def test_an_adaptive_baseline_keeps_adaptive_on_with_its_minimum_raised():
    baseline = Settings(1, AdaptiveAllocations(True, 0, 2))
    goal = goal_settings(baseline, [lease("a", 4), lease("b", 3)])
    assert goal == Settings(4, AdaptiveAllocations(True, 4, 4))
    assert goal.update_body(status(1, AdaptiveAllocations(True, 0, 2))) == {
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 4, "max_number_of_allocations": 4}
    }
    # a higher maximum is kept; a lease with "disable" makes the target a fixed count
    assert goal_settings(Settings(1, AdaptiveAllocations(True, 1, 32)), [lease("a", 4)]).adaptive_allocations == (
        AdaptiveAllocations(True, 4, 32)
    )
    assert goal_settings(baseline, [lease("a", 4), lease("b", 2, adaptive_policy="disable")]) == Settings(4)


def test_on_serverless_the_target_is_always_adaptive():
    goal = goal_settings(Settings(1), [lease("a", 3, adaptive_policy="disable")], serverless=True)
    assert goal.adaptive_enabled and goal.adaptive_allocations == AdaptiveAllocations(True, 3, None)


def test_an_adaptive_baseline_is_restored_as_adaptive_exactly():
    before = AdaptiveAllocations(True, 1, 4)
    raised = AdaptiveAllocations(True, 6, 6)
    held = doc(Settings(1, before), lease("a", 6), applied=Settings(6, raised))
    assert decide(held, status(6, raised), "respect", now=1.0).body is None  # the scaler's count is no drift
    released = decide(held.without_lease("a"), status(6, raised), "respect", now=1.0)
    assert released.drift is None and released.goal == Settings(1, before)
    assert released.body == {"adaptive_allocations": before.to_dict()}


def test_a_baseline_scaled_to_zero_is_restorable():
    zero = AdaptiveAllocations(True, 0, 32)
    baseline = Settings.of(status(0, zero))  # a default endpoint that scaled to zero: target 0
    assert baseline == Settings(0, zero) and baseline.describe() == "adaptive allocations (min 0, max 32)"
    held = doc(baseline, lease("a", 2), applied=Settings(2, AdaptiveAllocations(True, 2, 32)))
    released = decide(held.without_lease("a"), status(2, AdaptiveAllocations(True, 2, 32)), "respect", now=1.0)
    assert released.drift is None and released.goal == baseline
    assert released.body == {"adaptive_allocations": zero.to_dict()}


def test_the_fail_policy_refuses_an_adaptive_baseline_only():
    assert adaptive_refusal("my-e5", Settings(1), "fail") is None
    assert adaptive_refusal("my-e5", Settings(1, ADAPTIVE), "raise_min") is None
    message = adaptive_refusal("my-e5", Settings(1, ADAPTIVE), "fail")
    assert message is not None and "adaptive_policy='fail': nothing was changed" in message


def test_on_serverless_the_restore_of_a_fixed_baseline_is_adaptive():
    goal = goal_settings(Settings(2), [], serverless=True)
    assert goal.adaptive_enabled and goal.adaptive_allocations == AdaptiveAllocations(True, 2, 2)
    assert goal_settings(Settings(2), []) == Settings(2)  # elsewhere the count is restored as it was
