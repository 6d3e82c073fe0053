"""One lease of a deployment, the lock of its lease document, and lease ids.

The parts that reap records (:mod:`airflow_esml.leases.reaped`) and the lease document
(:mod:`airflow_esml.leases.document`) are built from. Pure Python: no Airflow or Elasticsearch imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from airflow_esml.core.params import DEFAULT_ADAPTIVE_POLICY, AdaptivePolicy
from airflow_esml.core.settings import Settings


def lease_id_for(dag_id: str, run_id: str, name: str, installation: str = "") -> str:
    """The lease id of one DAG run's use of a deployment: the same for every try of the run's tasks.

    :param installation: ``[esml] installation_id``: when set, it starts the id (``<installation>:<dag_id>/...``),
        so the runs of two Airflow installations that share the cluster never share a lease.
    """
    return with_installation(f"{dag_id}/{run_id}/{name}", installation)


def with_installation(lease_id: str, installation: str) -> str:
    """``lease_id`` prefixed with ``installation:`` when an installation id is set."""
    return f"{installation}:{lease_id}" if installation else lease_id


@dataclass(frozen=True)
class Lease:
    """One run's claim on a deployment.

    :param owner: who holds it (dag_id, run_id, task_id, try_number), for logs and the reaper.
    :param adaptive_policy: how the allocations are given when the baseline has adaptive allocations on:
        ``raise_min`` (their minimum is raised, they stay on) or ``disable`` (a fixed count, switched back on
        by the restore). A lease read from a document written before this field existed is ``disable``, what
        it was acquired under.
    :param share: the allocation-seconds above the baseline this lease is accountable for so far: its share of
        what the deployment held above its baseline while it was live
        (:func:`~airflow_esml.leases.shares.capacity_shares`, docs/accounting.md). None for a lease read from a
        document written before the shares were kept.
    :param span: the deployment's allocation-seconds (baseline included) while this lease was live, which its share
        of the deployment's busy time is taken in proportion to. None with ``share``.
    """

    lease_id: str
    allocations: int
    acquired_at: float
    expires_at: float
    owner: Mapping[str, Any] = field(default_factory=dict)
    adaptive_policy: AdaptivePolicy = DEFAULT_ADAPTIVE_POLICY
    share: float | None = 0.0
    span: float | None = 0.0

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def describe(self, now: float) -> str:
        left = self.expires_at - now
        when = f"expires in {left:.0f}s" if left > 0 else f"expired {-left:.0f}s ago"
        return f"lease {self.lease_id} ({self.allocations} allocations, {when})"

    def reap_message(self, deployment_id: str, now: float) -> str:
        """The WARNING of its reap: what is known (when it expired, who held it), not a guess at why."""
        return (
            f"{deployment_id}: reaping lease {self.lease_id} ({self.allocations} allocations): it expired at "
            f"{when(self.expires_at)} without renewal ({now - self.expires_at:.0f}s ago); its owner "
            f"{_who(self.owner) or 'unknown'} stopped renewing it (its keep_lease task is no longer running)"
        )

    def renewed(self, expires_at: float) -> Lease:
        """This lease, lasting until ``expires_at`` (never shortened)."""
        return replace(self, expires_at=max(self.expires_at, expires_at))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "allocations": self.allocations,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
            "owner": dict(self.owner),
            "adaptive_policy": self.adaptive_policy,
            "share": self.share,
            "span": self.span,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lease:
        share, span = data.get("share"), data.get("span")
        return cls(
            str(data["lease_id"]),
            int(data["allocations"]),
            float(data["acquired_at"]),
            float(data["expires_at"]),
            dict(data.get("owner") or {}),
            data.get("adaptive_policy", "disable"),
            None if share is None else float(share),
            None if share is None or span is None else float(span),
        )


@dataclass(frozen=True)
class Lock:
    """The short-lived lock that serialises every change of the deployment made through leases."""

    token: str
    holder: str
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "holder": self.holder, "expires_at": self.expires_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lock:
        return cls(str(data["token"]), str(data.get("holder", "")), float(data["expires_at"]))


def _who(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The owner as messages show it: who, without the capacity window's record (docs/accounting.md)."""
    return {k: v for k, v in owner.items() if k != "capacity_window"}


def when(at: float) -> str:
    """An epoch time as ISO 8601 UTC, to the second, for messages."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def settings_or_none(data: Mapping[str, Any] | None) -> Settings | None:
    """The settings a document's optional field holds, or None."""
    return Settings.from_dict(data) if data else None
