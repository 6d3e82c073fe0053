"""Deployment leases: the lease document of a deployment, the state kept in Elasticsearch.

Several DAG runs may need one deployment at overlapping times. Each holds a *lease* (how many allocations it
needs, until when); the deployment's target is the larger of its *baseline* (its settings before the first
lease) and every live lease's request, and the baseline comes back when the last lease goes. The document's
parts are in :mod:`~airflow_esml.leases.lease` (a lease, the lock, lease ids) and
:mod:`~airflow_esml.leases.reaped` (reap records), the shares of the capacity held in
:mod:`~airflow_esml.leases.shares`, and what is decided from the document in :mod:`~airflow_esml.leases.decisions`.
The I/O (the lease document in Elasticsearch, its lock, the update calls) is in :mod:`airflow_esml.leases.store`.
Pure Python: no Airflow or Elasticsearch imports. See ``docs/leases.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from airflow_esml.core.settings import Settings
from airflow_esml.leases.lease import Lease, Lock, settings_or_none
from airflow_esml.leases.reaped import (
    Reaped,
    keep_reaped,
)
from airflow_esml.leases.shares import capacity_shares, held_floor


@dataclass(frozen=True)
class LeaseDoc:
    """The lease document of one deployment (its ``_id`` is the deployment id).

    :param baseline: what a restore puts back (replaced by a hand-made setting under ``on_drift="respect"``).
    :param original_baseline: the settings before the first lease, as recorded.
    :param applied: what the leases last gave the deployment (None before the first change).
    :param pending: what a lock holder is about to give it (set before the update call, cleared after).
    :param lock: the current lock, if any.
    :param drift: the latest drift records, newest last.
    :param write_id: a fresh id for every write, to recognise one's own write after a lost response.
    :param reaped_leases: traces of the leases reaped lately (see :class:`Reaped`), oldest first.
    :param accrued_at: until when the leases' shares of the capacity held are counted (:meth:`accrued`); None in a
        document written before the shares were kept.
    """

    deployment_id: str
    baseline: Settings
    original_baseline: Settings
    leases: tuple[Lease, ...] = ()
    applied: Settings | None = None
    pending: Settings | None = None
    lock: Lock | None = None
    drift: tuple[Mapping[str, Any], ...] = ()
    write_id: str = ""
    reaped_leases: tuple[Reaped, ...] = ()
    accrued_at: float | None = None

    @classmethod
    def new(cls, deployment_id: str, baseline: Settings) -> LeaseDoc:
        return cls(deployment_id, baseline, baseline)

    def accrued(self, now: float) -> LeaseDoc:
        """This document with the capacity held from ``accrued_at`` to ``now`` shared among its leases.

        Called under the lock before every change of the leases (so the set of leases and their requests were
        the same all that time): each lease's ``share`` grows by its :func:`capacity_shares` of what was held
        above the baseline, its ``span`` by what the deployment held. The shares of the live leases add up to
        the allocation-seconds held above the baseline, so overlapping windows do not count the overlap twice.
        """
        since = self.accrued_at
        if since is None or not self.leases or now <= since:
            return replace(self, accrued_at=now if since is None else max(since, now))
        elapsed = now - since
        floor = held_floor(self.baseline)
        requests = [lease.allocations for lease in self.leases]
        held = max(floor, *requests)
        leases = tuple(
            lease
            if lease.share is None
            else replace(lease, share=lease.share + part * elapsed, span=(lease.span or 0.0) + held * elapsed)
            for lease, part in zip(self.leases, capacity_shares(floor, requests), strict=True)
        )
        return replace(self, leases=leases, accrued_at=now)

    def lease(self, lease_id: str) -> Lease | None:
        return next((lease for lease in self.leases if lease.lease_id == lease_id), None)

    def with_lease(self, lease: Lease) -> LeaseDoc:
        """Add ``lease``, or renew the lease of the same id (its first ``acquired_at`` is kept)."""
        old = self.lease(lease.lease_id)
        if old is not None:
            lease = replace(lease, acquired_at=old.acquired_at, share=old.share, span=old.span)
        others = tuple(x for x in self.leases if x.lease_id != lease.lease_id)
        traces = tuple(r for r in self.reaped_leases if r.lease_id != lease.lease_id)  # taken again: not lost
        return replace(self, leases=(*others, lease), reaped_leases=traces)

    def with_renewed(self, lease_id: str, expires_at: float) -> LeaseDoc:
        """Extend the lease ``lease_id`` (which must be there) to ``expires_at``; nothing else changes."""
        leases = tuple(x.renewed(expires_at) if x.lease_id == lease_id else x for x in self.leases)
        return replace(self, leases=leases)

    def with_baseline(self, baseline: Settings) -> LeaseDoc:
        """An explicit new baseline (a plain update): what the last release leaves, replacing the recorded one."""
        return replace(self, baseline=baseline, original_baseline=baseline)

    def with_reaped(self, gone: Iterable[Lease], now: float, by: str) -> LeaseDoc:
        """Record the reap of ``gone`` (target still unknown), dropping records too old or too many."""
        records = (*self.reaped_leases, *(Reaped.of(lease, now, by) for lease in gone))
        return replace(self, reaped_leases=keep_reaped(records, now))

    def with_reap_target(self, target: Settings) -> LeaseDoc:
        """Fill in the target of the reap records that have none yet (those of the operation deciding ``target``)."""
        records = tuple(r if r.target is not None else replace(r, target=target) for r in self.reaped_leases)
        return replace(self, reaped_leases=records)

    def with_allocations(self, lease_id: str, allocations: int) -> LeaseDoc:
        """The lease ``lease_id`` holding ``allocations`` instead (what fits, under ``capacity_policy="fit"``)."""
        leases = tuple(replace(x, allocations=allocations) if x.lease_id == lease_id else x for x in self.leases)
        return replace(self, leases=leases)

    def without_lease(self, lease_id: str) -> LeaseDoc:
        return replace(self, leases=tuple(x for x in self.leases if x.lease_id != lease_id))

    def reaped(self, now: float) -> tuple[LeaseDoc, tuple[Lease, ...]]:
        """This document without its expired leases, and those leases."""
        gone = tuple(x for x in self.leases if x.expired(now))
        return replace(self, leases=tuple(x for x in self.leases if not x.expired(now))), gone

    def lock_held(self, now: float) -> bool:
        return self.lock is not None and now < self.lock.expires_at

    def expected(self) -> tuple[Settings, ...]:
        """Settings the deployment may have through leases: the last applied (or the baseline) and a pending one."""
        known = [self.applied or self.baseline]
        if self.pending is not None:
            known.append(self.pending)
        return tuple(known)

    def to_source(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "baseline": self.baseline.to_dict(),
            "original_baseline": self.original_baseline.to_dict(),
            "leases": [lease.to_dict() for lease in self.leases],
            "applied": self.applied.to_dict() if self.applied else None,
            "pending": self.pending.to_dict() if self.pending else None,
            "lock": self.lock.to_dict() if self.lock else None,
            "drift": [dict(d) for d in self.drift],
            "write_id": self.write_id,
            "reaped": [r.to_dict() for r in self.reaped_leases],
            "accrued_at": self.accrued_at,
        }

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> LeaseDoc:
        baseline = Settings.from_dict(source["baseline"])
        original = source.get("original_baseline")
        return cls(
            deployment_id=str(source["deployment_id"]),
            baseline=baseline,
            original_baseline=Settings.from_dict(original) if original else baseline,
            leases=tuple(Lease.from_dict(x) for x in source.get("leases") or ()),
            applied=settings_or_none(source.get("applied")),
            pending=settings_or_none(source.get("pending")),
            lock=Lock.from_dict(source["lock"]) if source.get("lock") else None,
            drift=tuple(source.get("drift") or ()),
            write_id=str(source.get("write_id", "")),
            reaped_leases=tuple(Reaped.from_dict(x) for x in source.get("reaped") or ()),
            accrued_at=None if source.get("accrued_at") is None else float(source["accrued_at"]),
        )
