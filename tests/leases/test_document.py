"""The lease document: its round trip, its leases (added, renewed, reaped) and the accrual of their shares."""

from __future__ import annotations

from dataclasses import replace

import pytest

from airflow_esml.core.settings import Settings
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.lease import Lease, Lock
from tests.lease_helpers import ADAPTIVE, doc, lease


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
