"""The pure lease model: target computation, update bodies, the document's round trip, drift decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from airflow_esml.core.params import check_drift_policy
from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus
from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.leases import (
    Lease,
    LeaseDoc,
    Lock,
    Settings,
    decide,
    goal_settings,
    lease_id_for,
)
from airflow_esml.leases.model import adaptive_refusal, capacity_shares, held_floor

ADAPTIVE = AdaptiveAllocations(True, 1, 4)


def status(target: int, adaptive: AdaptiveAllocations | None = None) -> DeploymentStatus:
    return DeploymentStatus(
        "my-e5", "my-e5", "started", target, target, "fully_allocated", adaptive_allocations=adaptive
    )


def lease(lease_id: str, allocations: int, expires_at: float = 100.0, adaptive_policy: str = "raise_min") -> Lease:
    return Lease(lease_id, allocations, 0.0, expires_at, {"dag_id": "d"}, adaptive_policy)  # type: ignore[arg-type]


def doc(baseline: Settings, *leases: Lease, applied: Settings | None = None) -> LeaseDoc:
    return LeaseDoc("my-e5", baseline, baseline, tuple(leases), applied=applied)


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


def test_settings_match_ignores_the_count_under_adaptive_allocations():
    assert Settings(1, ADAPTIVE).matches(status(3, ADAPTIVE))
    assert not Settings(3).matches(status(3, ADAPTIVE))
    assert Settings(3, AdaptiveAllocations(False)).matches(status(3, AdaptiveAllocations(False)))


def test_document_round_trip():
    original = LeaseDoc(
        "my-e5",
        Settings(2, ADAPTIVE),
        Settings(1),
        (lease("a", 4), lease("b", 2, 50.0)),
        applied=Settings(4),
        pending=Settings(5),
        lock=Lock("t", "a", 9.0),
        drift=({"at": 1.0, "policy": "respect"},),
        write_id="w",
    )
    assert LeaseDoc.from_source(original.to_source()) == original


def test_renewal_keeps_the_first_acquisition_time_and_reaping_drops_expired_leases():
    first = doc(Settings(1)).with_lease(Lease("a", 2, 10.0, 20.0))
    renewed = first.with_lease(Lease("a", 3, 15.0, 40.0))
    assert renewed.leases == (Lease("a", 3, 10.0, 40.0),)
    both = renewed.with_lease(lease("b", 1, expires_at=30.0))
    kept, gone = both.reaped(now=35.0)
    assert [x.lease_id for x in kept.leases] == ["a"]
    assert [x.lease_id for x in gone] == ["b"]
    assert both.without_lease("a").lease("a") is None


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


def test_names_and_policies():
    assert lease_id_for("dag", "manual__1", "group") == "dag/manual__1/group"
    assert lease_id_for("dag", "manual__1", "group", "team-a") == "team-a:dag/manual__1/group"
    assert check_drift_policy("restore") == "restore"
    with pytest.raises(InvalidParameterError, match="on_drift must be one of"):
        check_drift_policy("ignore")


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


def test_a_lease_keeps_its_policy_and_an_old_lease_reads_as_disable():
    assert Lease.from_dict(lease("a", 2).to_dict()).adaptive_policy == "raise_min"
    old = {k: v for k, v in lease("a", 2).to_dict().items() if k != "adaptive_policy"}
    assert Lease.from_dict(old).adaptive_policy == "disable"  # what it was acquired under


def test_the_fail_policy_refuses_an_adaptive_baseline_only():
    assert adaptive_refusal("my-e5", Settings(1), "fail") is None
    assert adaptive_refusal("my-e5", Settings(1, ADAPTIVE), "raise_min") is None
    message = adaptive_refusal("my-e5", Settings(1, ADAPTIVE), "fail")
    assert message is not None and "adaptive_policy='fail': nothing was changed" in message


def test_on_serverless_the_restore_of_a_fixed_baseline_is_adaptive():
    goal = goal_settings(Settings(2), [], serverless=True)
    assert goal.adaptive_enabled and goal.adaptive_allocations == AdaptiveAllocations(True, 2, 2)
    assert goal_settings(Settings(2), []) == Settings(2)  # elsewhere the count is restored as it was


@pytest.mark.parametrize(
    ("floor", "requests", "expected"),
    [
        (1, [3], [2.0]),
        (1, [3, 5], [1.0, 3.0]),  # the layer 1..3 is shared, 3..5 is the second lease's alone
        (1, [4, 4], [1.5, 1.5]),
        (2, [1, 6, 2], [0.0, 4.0, 0.0]),  # at or below the floor: nothing held above it
        (1, [], []),
    ],
)
def test_capacity_shares_split_each_layer_among_the_leases_that_need_it(floor, requests, expected):
    shares = capacity_shares(floor, requests)
    assert shares == pytest.approx(expected)
    assert sum(shares) == pytest.approx(max([floor, *requests]) - floor)


def test_accrual_counts_each_interval_with_the_leases_live_in_it():
    held = replace(doc(Settings(1), lease("a", 3)), accrued_at=10.0)
    held = held.accrued(12.0).with_lease(lease("b", 5))  # a alone for 2 s: 2 x 2
    held = held.accrued(13.0).without_lease("a")  # both for 1 s: a 1, b 3
    a_share = 2 * 2 + 1
    held = held.accrued(15.0)  # b alone for 2 s: 4 x 2
    b = held.lease("b")
    assert b is not None and b.share == pytest.approx(3 + 8) and b.span == pytest.approx(5 * 3)
    assert a_share + b.share == pytest.approx(2 * 2 + 4 * 3)  # what was held above 1: 2 for 2 s, then 4 for 3 s
    assert held.accrued_at == 15.0
    assert LeaseDoc.from_source(held.to_source()) == held


def test_accrual_keeps_a_retried_acquires_share_and_skips_leases_written_before_shares():
    held = replace(doc(Settings(1), lease("a", 3)), accrued_at=0.0).accrued(4.0)
    again = held.with_lease(lease("a", 3))
    assert again.lease("a").share == pytest.approx(8.0)
    old = Lease.from_dict({k: v for k, v in lease("o", 3).to_dict().items() if k not in ("share", "span")})
    assert old.share is None and old.span is None
    legacy = LeaseDoc.from_source({k: v for k, v in doc(Settings(1), old).to_source().items() if k != "accrued_at"})
    assert legacy.accrued_at is None and legacy.accrued(5.0).lease("o").share is None
    assert legacy.accrued(5.0).accrued_at == 5.0


def test_held_floor_is_the_count_else_the_adaptive_minimum():
    assert held_floor(Settings(2)) == 2
    assert held_floor(Settings(None, AdaptiveAllocations(True, 3, 8))) == 3
    assert held_floor(Settings(None, AdaptiveAllocations(True, None, 8))) == 0
