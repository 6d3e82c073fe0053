"""What one operation of the lease store did (:class:`LeaseOutcome`), and its XCom result.

Pure Python: loads neither Airflow nor the ``elasticsearch`` client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_esml.core.settings import Settings
from airflow_esml.leases.lease import Lease


@dataclass(frozen=True)
class LeaseOutcome:
    """What one lease operation did.

    :param goal: the settings the deployment was given (or kept).
    :param changed: an ``_update`` call was made.
    :param leases: the leases live after the operation.
    :param reaped: the expired leases this operation removed.
    :param restored: no lease is left: the deployment has its baseline again and the document is gone.
    :param capacity: what the capacity check of an acquire found, when it was checked or skipped, or when it cut
        the lease to what fits (``capacity_policy="fit"``).
    :param leased_deployment_id: the physical deployment whose lease document this is (``deployment_id`` is the id
        as the caller passed it, an inference id for instance); None when it is ``deployment_id``.
    :param released: a release's lease as it was when dropped, with its share of the capacity held
        (docs/accounting.md); None for other operations, or when the lease was not there.
    :param released_at: when it was dropped (its share is counted up to then).
    """

    deployment_id: str
    lease_id: str | None
    baseline: Settings | None
    original_baseline: Settings | None
    goal: Settings | None
    changed: bool = False
    leases: tuple[Lease, ...] = ()
    reaped: tuple[Lease, ...] = ()
    restored: bool = False
    drift: Mapping[str, Any] | None = None
    lease: Lease | None = None
    capacity: Mapping[str, Any] | None = None
    leased_deployment_id: str | None = None
    released: Lease | None = None
    released_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for XCom."""
        return {
            "deployment_id": self.deployment_id,
            "leased_deployment_id": self.leased_deployment_id or self.deployment_id,
            "lease_id": self.lease_id,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "original_baseline": self.original_baseline.to_dict() if self.original_baseline else None,
            "target": self.goal.to_dict() if self.goal else None,
            "number_of_allocations": self.goal.number_of_allocations if self.goal else None,
            "changed": self.changed,
            "leases": [x.to_dict() for x in self.leases],
            "reaped": [x.to_dict() for x in self.reaped],
            "restored": self.restored,
            "drift": dict(self.drift) if self.drift else None,
            "expires_at": self.lease.expires_at if self.lease else None,
            "capacity": dict(self.capacity) if self.capacity else None,
            "released": {**self.released.to_dict(), "released_at": self.released_at} if self.released else None,
        }
