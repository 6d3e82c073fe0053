"""LeaseStore: acquire, release and reap deployment leases kept in Elasticsearch, and apply their target.

Every operation runs the same steps on the deployment's lease document:

1. take the document's lock with a conditional write that also makes the operation's change (add or renew
   a lease, drop one) and drops expired leases; the first lease creates the document with the baseline read
   from the deployment (``op_type=create``, so two first leases cannot both record one);
2. read the deployment and :func:`~airflow_esml.leases.model.decide` its settings (drift policy included);
3. if they change: record them as ``pending`` (conditional write), then call ``_update``;
4. record them as ``applied`` and free the lock, or delete the document when no lease is left.

The lock makes the changes of one deployment happen one at a time, so a release can never lower the target
under a lease that an acquire has just added. A lock whose holder died expires after ``lock_ttl``.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_esml.core.params import DEFAULT_LEASES_INDEX, DEFAULT_LOCK_TTL, DriftPolicy, check_drift_policy
from airflow_esml.core.settings import Settings
from airflow_esml.exceptions import LeaseLockTimeoutError, LockLostError
from airflow_esml.leases.documents import LeaseDocuments, Stored
from airflow_esml.leases.model import Decision, Lease, LeaseDoc, Lock, decide

if TYPE_CHECKING:
    from airflow_esml.core.status import DeploymentStatus
    from airflow_esml.hooks.ml import ElasticsearchMLHook

log = logging.getLogger(__name__)

Change = Callable[[LeaseDoc], LeaseDoc]


@dataclass(frozen=True)
class LeaseOutcome:
    """What one lease operation did.

    :param goal: the settings the deployment was given (or kept).
    :param changed: an ``_update`` call was made.
    :param leases: the leases live after the operation.
    :param reaped: the expired leases this operation removed.
    :param restored: no lease is left: the deployment has its baseline again and the document is gone.
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for XCom."""
        return {
            "deployment_id": self.deployment_id,
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
        }


@dataclass
class _Held:
    stored: Stored
    token: str
    reaped: tuple[Lease, ...] = field(default_factory=tuple)


class LeaseStore:
    """Deployment leases in one Elasticsearch index.

    :param hook: the hook whose client, retry policy and deployment calls are used.
    :param index: the lease index (a normal name: Elasticsearch restricts names starting with a dot).
    :param lock_ttl: seconds a lock lasts; must exceed the longest update (with retries) a holder makes.
    :param lock_wait: seconds an operation waits for a lock held by another one; default ``lock_ttl + 30``.
    :param clock: wall-clock time source (epoch seconds), the same on every worker (keep clocks in sync).
    """

    def __init__(
        self,
        hook: ElasticsearchMLHook,
        *,
        index: str = DEFAULT_LEASES_INDEX,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        lock_wait: float | None = None,
        clock: Callable[[], float] = time.time,
        attempts: int = 5,
    ) -> None:
        self.hook = hook
        self.docs = LeaseDocuments(hook, index)
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_ttl + 30.0 if lock_wait is None else lock_wait
        self.clock = clock
        self.attempts = attempts

    # -- public operations ----------------------------------------------------------------------------

    def acquire(
        self,
        deployment_id: str,
        lease_id: str,
        allocations: int,
        *,
        ttl: float,
        owner: Mapping[str, Any] | None = None,
        on_drift: str = "respect",
    ) -> LeaseOutcome:
        """Add (or renew) a lease, then give the deployment ``max(baseline, every live lease)``.

        The baseline is recorded only by the first lease, so a retried acquire never takes the value it set
        itself for the baseline. If the deployment cannot be scaled, the lease is released again before the
        error is raised, so nothing is left behind.
        """
        policy = check_drift_policy(on_drift)

        def add(doc: LeaseDoc) -> LeaseDoc:
            now = self.clock()
            if doc.lease(lease_id) is not None:
                log.info(
                    "%s: lease %s exists (a retry); renewing it, the baseline stays %s",
                    deployment_id,
                    lease_id,
                    doc.original_baseline.describe(),
                )
            return doc.with_lease(Lease(lease_id, allocations, now, now + ttl, dict(owner or {})))

        try:
            outcome = self._run(deployment_id, add, policy, create=True, holder=lease_id)
        except LeaseLockTimeoutError:
            raise
        except Exception:
            log.warning("%s: acquiring lease %s failed; releasing it again", deployment_id, lease_id)
            self._release_quietly(deployment_id, lease_id, policy)
            raise
        mine = next((x for x in outcome.leases if x.lease_id == lease_id), None)
        return replace(outcome, lease_id=lease_id, lease=mine)

    def release(self, deployment_id: str, lease_id: str, *, on_drift: str = "respect") -> LeaseOutcome:
        """Drop a lease (if still there), then set the deployment from the leases left, or restore the baseline."""
        policy = check_drift_policy(on_drift)
        outcome = self._run(deployment_id, lambda doc: doc.without_lease(lease_id), policy, holder=lease_id)
        return replace(outcome, lease_id=lease_id)

    def reconcile(self, deployment_id: str, *, on_drift: str = "respect") -> LeaseOutcome:
        """Reap expired leases and set the deployment from the live ones (restoring it when none is left)."""
        policy = check_drift_policy(on_drift)
        return self._run(deployment_id, lambda doc: doc, policy, holder="reaper")

    def deployment_ids(self) -> list[str]:
        return self.docs.deployment_ids()

    def read(self, deployment_id: str) -> LeaseDoc | None:
        stored = self.docs.get(deployment_id)
        return stored.doc if stored else None

    # -- the steps ------------------------------------------------------------------------------------

    def _release_quietly(self, deployment_id: str, lease_id: str, policy: DriftPolicy) -> None:
        try:
            self._run(deployment_id, lambda doc: doc.without_lease(lease_id), policy, holder=lease_id)
        except Exception as exc:  # the lease expires on its own; the original error matters more
            log.warning("%s: could not release lease %s (%s); it will expire", deployment_id, lease_id, exc)

    def _run(
        self, deployment_id: str, change: Change, policy: DriftPolicy, *, holder: str, create: bool = False
    ) -> LeaseOutcome:
        for attempt in range(1, self.attempts + 1):
            try:
                held = self._lock(deployment_id, change, create=create, holder=holder)
                if held is None:
                    log.info("%s: no lease document; nothing to do", deployment_id)
                    return LeaseOutcome(deployment_id, None, None, None, None)
                return self._settle(held, policy)
            except LockLostError as exc:
                log.warning("%s: %s (attempt %d of %d)", deployment_id, exc, attempt, self.attempts)
        raise LockLostError(f"{deployment_id}: lost the lease lock {self.attempts} times in a row")

    def _lock(self, deployment_id: str, change: Change, *, create: bool, holder: str) -> _Held | None:
        """Take the document's lock, making ``change`` and reaping expired leases in the same write."""
        token = uuid.uuid4().hex
        deadline = self.clock() + self.lock_wait
        pause = 0.02
        while True:
            stored = self.docs.get(deployment_id)
            now = self.clock()
            if stored is None:
                if not create:
                    return None
                held = self._create(deployment_id, change, token, holder)
                if held is not None:
                    return held
            elif stored.doc.lock is not None and stored.doc.lock.token == token:
                return _Held(stored, token)  # our write landed but its answer was lost
            elif stored.doc.lock_held(now):
                if now > deadline:
                    lock = stored.doc.lock
                    assert lock is not None
                    raise LeaseLockTimeoutError(
                        f"{deployment_id}: the lease document stayed locked by {lock.holder} for {self.lock_wait:.0f}s"
                    )
            else:
                held = self._take(stored, change, token, holder, now)
                if held is not None:
                    return held
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, 1.0)

    def _create(self, deployment_id: str, change: Change, token: str, holder: str) -> _Held | None:
        status = self.hook.get_deployment(deployment_id)
        baseline = Settings.of(status)
        log.info("%s: first lease; recording the baseline %s", deployment_id, baseline.describe())
        doc = replace(change(LeaseDoc.new(deployment_id, baseline)), lock=self._new_lock(token, holder))
        version = self.docs.create(doc)
        return None if version is None else _Held(Stored(doc, version), token)

    def _take(self, stored: Stored, change: Change, token: str, holder: str, now: float) -> _Held | None:
        doc = stored.doc
        if doc.lock is not None:
            log.warning("%s: taking over the expired lease lock of %s", doc.deployment_id, doc.lock.holder)
        doc, reaped = change(doc).reaped(now)
        for lease in reaped:
            log.warning(
                "%s: reaping %s held by %s: its run ended without releasing it",
                doc.deployment_id,
                lease.describe(now),
                dict(lease.owner) or "an unknown owner",
            )
        doc = replace(doc, lock=self._new_lock(token, holder))
        version = self.docs.replace(doc, stored.version)
        return None if version is None else _Held(Stored(doc, version), token, reaped)

    def _new_lock(self, token: str, holder: str) -> Lock:
        return Lock(token, holder, self.clock() + self.lock_ttl)

    def _settle(self, held: _Held, policy: DriftPolicy) -> LeaseOutcome:
        """With the lock held: decide, apply, then record and unlock (or delete the document)."""
        doc = held.stored.doc
        try:
            status = self.hook.get_deployment(doc.deployment_id)
            decision = decide(doc, status, policy, self.clock())
            if decision.body is not None and status.state == "starting":
                decision = decide(doc, self._started(status), policy, self.clock())
            self._report(decision)
            if decision.body is not None:
                holder = doc.lock.holder if doc.lock else ""
                # the adopted baseline and drift record travel with the pending settings; applied stays as it was
                pending = replace(decision.doc, applied=doc.applied, pending=decision.goal)
                self._write(held, replace(pending, lock=self._new_lock(held.token, holder)))
                self._check_lock(held)
                log.info(
                    "%s: setting %s (%d live lease(s))", doc.deployment_id, decision.goal.describe(), len(doc.leases)
                )
                self.hook.update_deployment(doc.deployment_id, **decision.body)
        except LockLostError:
            raise
        except Exception:
            self._unlock_quietly(held)
            raise
        restored = self._finish(held, decision)
        return LeaseOutcome(
            doc.deployment_id,
            None,
            decision.doc.baseline,
            doc.original_baseline,
            decision.goal,
            changed=decision.body is not None,
            leases=doc.leases,
            reaped=held.reaped,
            restored=restored,
            drift=decision.drift.to_dict() if decision.drift else None,
        )

    def _started(self, status: DeploymentStatus) -> DeploymentStatus:
        """The deployment's status, once it is ``started`` (Elasticsearch refuses updates while it is ``starting``,
        which it can be again for a moment when a scale-down removes its only started route).

        Waits at most a third of ``lock_ttl``; after that the status is returned as it is.
        """
        deployment_id = status.deployment_id
        deadline = self.clock() + self.lock_ttl / 3
        pause = 0.1
        while status.state == "starting" and self.clock() < deadline:
            log.info("%s: deployment is starting; waiting until it is started before changing it", deployment_id)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            status = self.hook.get_deployment(deployment_id)
        return status

    def _report(self, decision: Decision) -> None:
        doc = decision.doc
        if decision.drift is not None:
            log.warning("%s", decision.drift.message(decision.goal, len(doc.leases)))
        if not doc.leases and decision.goal != doc.original_baseline and decision.drift is None:
            log.warning(
                "%s: restoring %s (adopted after a hand-made change), not %s recorded before the first lease",
                doc.deployment_id,
                decision.goal.describe(),
                doc.original_baseline.describe(),
            )

    def _finish(self, held: _Held, decision: Decision) -> bool:
        """Record the applied settings and unlock; delete the document when no lease is left."""
        final = replace(decision.doc, lock=None)
        if final.leases:
            self._write(held, final)
            return False
        deleted = self.docs.delete(final.deployment_id, held.stored.version)
        if not deleted and self.docs.get(final.deployment_id) is not None:
            raise LockLostError("the lease document changed while it was locked")
        log.info("%s: no lease left; the deployment has %s", final.deployment_id, decision.goal.describe())
        return True

    def _write(self, held: _Held, doc: LeaseDoc) -> None:
        """A conditional write under the lock; a conflict that is not our own lost write means the lock is lost."""
        doc = replace(doc, write_id=uuid.uuid4().hex)
        version = self.docs.replace(doc, held.stored.version)
        if version is None:
            current = self.docs.get(doc.deployment_id)
            if current is None or current.doc.write_id != doc.write_id:
                raise LockLostError("the lease lock expired and another operation took it")
            version = current.version
        held.stored = Stored(doc, version)

    def _check_lock(self, held: _Held) -> None:
        lock = held.stored.doc.lock
        if lock is None or self.clock() >= lock.expires_at:
            raise LockLostError("the lease lock expired before the deployment could be updated")

    def _unlock_quietly(self, held: _Held) -> None:
        try:
            self._write(held, replace(held.stored.doc, lock=None))
        except Exception as exc:
            log.warning(
                "%s: could not free the lease lock (%s); it expires by itself", held.stored.doc.deployment_id, exc
            )
