"""Deployment leases: the state kept in Elasticsearch and the pure decisions taken from it.

Several DAG runs may need one deployment at overlapping times. Each holds a *lease* (how many allocations it
needs, until when); the deployment's target is the larger of its *baseline* (its settings before the first
lease) and every live lease's request, and the baseline comes back when the last lease goes. The I/O (the
lease document in Elasticsearch, its lock, the update calls) is in :mod:`airflow_esml.leases.store`; this
module only decides. Pure Python: no Airflow or Elasticsearch imports. See ``docs/leases.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from airflow_esml.core.params import DEFAULT_ADAPTIVE_POLICY, AdaptivePolicy, DriftPolicy
from airflow_esml.core.settings import Settings
from airflow_esml.core.status import DeploymentStatus

#: how many drift records a lease document keeps
DRIFT_HISTORY = 10
#: how many reap records a lease document (and its tombstone document) keeps
REAPED_HISTORY = 20
#: seconds a reap record is kept: long enough for the reaped run's release to find it
REAPED_MAX_AGE = 7 * 24 * 3600.0


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
        what the deployment held above its baseline while it was live (:func:`capacity_shares`, docs/accounting.md).
        None for a lease read from a document written before the shares were kept.
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
            _settings_or_none(data.get("target")),
        )


def keep_reaped(records: Iterable[Reaped], now: float) -> tuple[Reaped, ...]:
    """The reap records still worth keeping: at most :data:`REAPED_HISTORY`, none older than :data:`REAPED_MAX_AGE`."""
    recent = sorted((r for r in records if now - r.at < REAPED_MAX_AGE), key=lambda r: r.at)
    return tuple(recent[-REAPED_HISTORY:])


def find_reaped(records: Iterable[Reaped], lease_id: str) -> Reaped | None:
    """The latest reap record of ``lease_id``, if any."""
    found = [r for r in records if r.lease_id == lease_id]
    return max(found, key=lambda r: r.at) if found else None


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
            applied=_settings_or_none(source.get("applied")),
            pending=_settings_or_none(source.get("pending")),
            lock=Lock.from_dict(source["lock"]) if source.get("lock") else None,
            drift=tuple(source.get("drift") or ()),
            write_id=str(source.get("write_id", "")),
            reaped_leases=tuple(Reaped.from_dict(x) for x in source.get("reaped") or ()),
            accrued_at=None if source.get("accrued_at") is None else float(source["accrued_at"]),
        )


def _settings_or_none(data: Mapping[str, Any] | None) -> Settings | None:
    return Settings.from_dict(data) if data else None


def held_floor(baseline: Settings) -> int:
    """The allocations the deployment has with no lease: what capacity is counted above (docs/accounting.md).

    The baseline's count (with adaptive allocations on, the scaler's count when it was recorded), else the minimum
    of its adaptive allocations.
    """
    if baseline.number_of_allocations is not None:
        return baseline.number_of_allocations
    adaptive = baseline.adaptive_allocations
    return (adaptive.min_number_of_allocations if adaptive else None) or 0


def capacity_shares(floor: int, requests: Sequence[int]) -> list[float]:
    """How the allocations held above ``floor`` for ``requests`` (the live leases) are shared among them, per second.

    The deployment holds ``max(requests)``: one layer of allocations from ``floor`` to the smallest request above
    it, the next up to the next request, and so on. Each layer is split equally among the leases that asked for
    it (the Shapley value of this cost, known as the airport problem): a lease pays for what it needs, the part
    it needs together with others is shared, and the shares add up to ``max(requests) - floor``. A request at or
    below ``floor`` holds nothing above it and gets 0.
    """
    shares = [0.0] * len(requests)
    low = floor
    for level in sorted({r for r in requests if r > floor}):
        needing = [i for i, r in enumerate(requests) if r >= level]
        for i in needing:
            shares[i] += (level - low) / len(needing)
        low = level
    return shares


def goal_settings(baseline: Settings, leases: Iterable[Lease], *, serverless: bool = False) -> Settings:
    """The target: the baseline when no lease is live, else at least every live lease's request.

    A baseline with adaptive allocations on keeps them on, with ``min_number_of_allocations`` raised to the
    largest request (and ``max_number_of_allocations`` when it is lower), unless a live lease was taken with
    ``adaptive_policy="disable"`` (then, as for a fixed baseline, a fixed ``max(baseline, every request)``).
    On Serverless (``serverless``) adaptive allocations are always on, so the target is always adaptive: a
    baseline recorded as a fixed count is restored in its :meth:`~airflow_esml.core.settings.Settings.adaptive_form`
    (``min = max =`` the count), the one place a restore's settings are decided.
    """
    live = list(leases)
    requests = [lease.allocations for lease in live]
    if not requests:
        return baseline.adaptive_form() if serverless else baseline
    disable = any(lease.adaptive_policy == "disable" for lease in live)
    if serverless or (baseline.adaptive_enabled and not disable):
        return baseline.raised_to(max(requests))
    return Settings(max(baseline.number_of_allocations or 0, *requests))


def adaptive_refusal(deployment_id: str, baseline: Settings, policy: AdaptivePolicy) -> str | None:
    """Why a lease taken with ``policy`` is refused on this baseline (``fail`` on adaptive allocations), or None."""
    if policy != "fail" or not baseline.adaptive_enabled:
        return None
    return (
        f"{deployment_id} has adaptive allocations enabled ({baseline.describe()}) and adaptive_policy='fail': "
        "nothing was changed. Pass adaptive_policy='raise_min' (the default) to raise their minimum while the "
        "lease is held, or 'disable' to switch them off until the last lease ends"
    )


def held_by_leases(live: int, baseline: Settings, goal: Settings) -> dict[str, Any]:
    """The ``leases`` entry of a plain update's XCom result: what the update set, and what the leases hold.

    ``deferred_until_leases_end``: the request is below what the leases hold; it becomes the deployment's
    setting when the last lease ends.
    """
    return {
        "live": live,
        "baseline": baseline.to_dict(),
        "target": goal.to_dict(),
        "deferred_until_leases_end": goal != baseline,
    }


@dataclass(frozen=True)
class Drift:
    """A deployment whose settings were changed by someone else while leases were held.

    :param expected: what the leases last gave it (or the baseline).
    :param found: what it has now.
    :param policy: the drift policy applied.
    """

    deployment_id: str
    expected: Settings
    found: Settings
    policy: DriftPolicy
    at: float

    def message(self, goal: Settings, leases_left: int) -> str:
        head = (
            f"{self.deployment_id}: its settings were changed outside the leases (expected "
            f"{self.expected.describe()}, found {self.found.describe()})"
        )
        if self.policy == "respect":
            if leases_left:
                tail = (
                    f"; keeping the hand-made setting as the new baseline; {leases_left} live lease(s) still get "
                    f"{goal.describe()}"
                )
            else:
                tail = "; on_drift='respect': leaving the hand-made setting in place instead of restoring the baseline"
            return head + tail + " (pass on_drift='restore' to overwrite it)"
        return head + f"; on_drift='restore': overwriting it with {goal.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "expected": self.expected.to_dict(),
            "found": self.found.to_dict(),
            "policy": self.policy,
        }


@dataclass(frozen=True)
class Decision:
    """What to do to the deployment, decided from the lease document and the deployment's status.

    :param goal: the settings the deployment should have.
    :param body: the ``_update`` body that gives them, None when it already has them.
    :param doc: the document to write once the deployment has ``goal`` (baseline, drift and applied updated).
    """

    goal: Settings
    body: dict[str, Any] | None
    doc: LeaseDoc
    drift: Drift | None


def decide(
    doc: LeaseDoc, status: DeploymentStatus, policy: DriftPolicy, now: float, *, serverless: bool = False
) -> Decision:
    """Decide the deployment's settings from ``doc`` (already reaped) and its current ``status``.

    Drift (the deployment has none of the settings the leases gave it) under ``"respect"`` makes the
    hand-made setting the new baseline, so it is never lowered and is what the last release leaves; live
    leases still get at least what they asked for. Under ``"restore"`` the baseline stays and is restored.
    ``serverless``: see :func:`goal_settings`.
    """
    drift = None
    baseline = doc.baseline
    if not any(s.matches(status) for s in doc.expected()):
        found = Settings.of(status)
        drift = Drift(doc.deployment_id, doc.applied or doc.baseline, found, policy, now)
        if policy == "respect":
            baseline = found
    goal = goal_settings(baseline, doc.leases, serverless=serverless)
    history = doc.drift if drift is None else (*doc.drift, drift.to_dict())[-DRIFT_HISTORY:]
    new_doc = replace(doc, baseline=baseline, drift=history, applied=goal, pending=None)
    return Decision(goal, goal.update_body(status), new_doc, drift)


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
