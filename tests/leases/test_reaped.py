"""Reap records (the traces of reaped leases) and what a renewal finds when its lease is gone."""

from __future__ import annotations

import pytest

from airflow_esml.core.settings import Settings
from airflow_esml.leases.reaped import (
    REAPED_HISTORY,
    REAPED_MAX_AGE,
    Reaped,
    Renewal,
    find_reaped,
    keep_reaped,
    missing_lease,
)
from tests.lease_helpers import lease


def record(lease_id: str, at: float, target: Settings | None = None) -> Reaped:
    return Reaped(lease_id, 3, at - 10.0, at, "reaper", {"dag_id": "d"}, target)


def test_a_record_is_made_from_its_lease_and_survives_its_round_trip():
    made = Reaped.of(lease("a", 4, expires_at=50.0), 60.0, "other/run/scaled")
    assert made == Reaped("a", 4, 50.0, 60.0, "other/run/scaled", {"dag_id": "d"})
    assert Reaped.from_dict(made.to_dict()) == made
    with_target = record("a", 60.0, Settings(2))
    assert Reaped.from_dict(with_target.to_dict()) == with_target


def test_a_record_says_when_by_whom_and_the_target_then():
    message = record("a", 60.0, Settings(2)).message("my-e5")
    assert message.startswith("my-e5: lease a was reaped at 1970-01-01T00:01:00Z by reaper")
    assert "target was then 2 allocations" in message
    assert "not recorded" in record("a", 60.0).message("my-e5")


def test_kept_records_are_the_newest_and_none_too_old():
    now = REAPED_MAX_AGE + 1000.0
    old = record("old", now - REAPED_MAX_AGE)
    recent = [record(f"r{i}", now - i) for i in range(REAPED_HISTORY + 5)]
    kept = keep_reaped([old, *recent], now)
    assert len(kept) == REAPED_HISTORY
    assert [r.at for r in kept] == sorted(r.at for r in recent)[-REAPED_HISTORY:]  # oldest first
    assert old not in kept


def test_the_latest_record_of_a_lease_is_found():
    records = [record("a", 5.0), record("b", 9.0), record("a", 7.0)]
    found = find_reaped(records, "a")
    assert found is not None and found.at == 7.0
    assert find_reaped(records, "c") is None


def test_a_missing_lease_is_lost_when_reaped_else_released():
    lost = missing_lease("my-e5", "a", [record("a", 60.0, Settings(2))])
    assert lost.state == "lost" and "lease a was reaped at" in lost.message
    released = missing_lease("my-e5", "a", [record("b", 60.0)])
    assert released == Renewal("released", "my-e5: lease a is released")


@pytest.mark.parametrize(("state", "status"), [("renewed", "running"), ("released", "success"), ("lost", "failed")])
def test_a_renewal_becomes_the_keepers_event(state, status):
    event = Renewal(state, "m", 5.0).to_event()
    assert event == {"status": status, "state": state, "message": "m", "expires_at": 5.0}
