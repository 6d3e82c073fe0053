"""Reap records (the traces of leases reaped after they expired) and what a renewal of a lease finds.

Pure Python: no Airflow or Elasticsearch imports. See ``docs/leases.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_esml.core.settings import Settings
from airflow_esml.leases.lease import Lease, settings_or_none, when

#: how many reap records a lease document (and its tombstone document) keeps
REAPED_HISTORY = 20
#: seconds a reap record is kept: long enough for the reaped run's release to find it
REAPED_MAX_AGE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Reaped:
    """The trace of a lease that was reaped (removed after it expired without renewal).

    Kept so that the reaped run's keeper and release learn what happened instead of ending green.

    :param at: when it was reaped; ``by``: the operation that reaped it (a lease id, or ``reaper``).
    :param target: the deployment's target after the reap (None until the reaping operation decided it).
    """

    lease_id: str
    allocations: int
    expired_at: float
    at: float
    by: str
    owner: Mapping[str, Any] = field(default_factory=dict)
    target: Settings | None = None

    @classmethod
    def of(cls, lease: Lease, at: float, by: str) -> Reaped:
        return cls(lease.lease_id, lease.allocations, lease.expires_at, at, by, dict(lease.owner))

    def message(self, deployment_id: str) -> str:
        target = self.target.describe() if self.target else "not recorded (the reaping operation did not finish)"
        return (
            f"{deployment_id}: lease {self.lease_id} was reaped at {when(self.at)} by {self.by}: it had expired at "
            f"{when(self.expired_at)} without renewal; the deployment's target was then {target}. Its "
            f"{self.allocations} allocations were not guaranteed from then on"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "allocations": self.allocations,
            "expired_at": self.expired_at,
            "at": self.at,
            "by": self.by,
            "owner": dict(self.owner),
            "target": self.target.to_dict() if self.target else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reaped:
        return cls(
            str(data["lease_id"]),
            int(data["allocations"]),
            float(data["expired_at"]),
            float(data["at"]),
            str(data.get("by", "")),
            dict(data.get("owner") or {}),
            settings_or_none(data.get("target")),
        )


def keep_reaped(records: Iterable[Reaped], now: float) -> tuple[Reaped, ...]:
    """The reap records still worth keeping: at most :data:`REAPED_HISTORY`, none older than :data:`REAPED_MAX_AGE`."""
    recent = sorted((r for r in records if now - r.at < REAPED_MAX_AGE), key=lambda r: r.at)
    return tuple(recent[-REAPED_HISTORY:])


def find_reaped(records: Iterable[Reaped], lease_id: str) -> Reaped | None:
    """The latest reap record of ``lease_id``, if any."""
    found = [r for r in records if r.lease_id == lease_id]
    return max(found, key=lambda r: r.at) if found else None


RenewalState = Literal["renewed", "released", "lost"]


@dataclass(frozen=True)
class Renewal:
    """What one renewal of a lease found.

    ``renewed``: the lease lasts until ``expires_at``; ``released``: it is gone without a trace (its release
    ran); ``lost``: it was reaped, and ``message`` says when, by whom and what the target was then.
    """

    state: RenewalState
    message: str
    expires_at: float | None = None

    def to_event(self) -> dict[str, Any]:
        status = {"renewed": "running", "released": "success", "lost": "failed"}[self.state]
        return {"status": status, "state": self.state, "message": self.message, "expires_at": self.expires_at}


def missing_lease(deployment_id: str, lease_id: str, records: Iterable[Reaped]) -> Renewal:
    """What a lease not in its document means: ``lost`` when a reap record names it, else ``released``."""
    record = find_reaped(records, lease_id)
    if record is not None:
        return Renewal("lost", record.message(deployment_id))
    return Renewal("released", f"{deployment_id}: lease {lease_id} is released")
